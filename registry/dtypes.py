"""The one place that names floating-point dtypes: user spellings, canonical names, safetensors codes.

A dtype given by a user ("bf16", "torch.float16", "half") is normalised here once, at the entry
point; everything below it (catalog rows, cache keys, merge engines, verification) sees only
the canonical torch names "float32", "float16" and "bfloat16".
"""

from __future__ import annotations

from registry.errors import InvalidInput

CANONICAL = ("float32", "float16", "bfloat16")
ALIASES = {"float32": "float32", "fp32": "float32", "float": "float32",
           "float16": "float16", "fp16": "float16", "half": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}
# canonical name <-> safetensors header code
TO_SAFETENSORS = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
FROM_SAFETENSORS = {v: k for k, v in TO_SAFETENSORS.items()}


def canonical(dtype: object) -> str:
    """The canonical name of a dtype given as "bf16", "bfloat16", "torch.bfloat16" or a torch.dtype.

    Raises:
        InvalidInput: not one of the floating-point dtypes a merged model can have
    """
    key = str(dtype).removeprefix("torch.").lower()
    if key not in ALIASES:
        raise InvalidInput(f"dtype must be one of bfloat16 (bf16), float16 (fp16), float32 (fp32), not {dtype!r}")
    return ALIASES[key]


def optional(dtype: object | None) -> str | None:
    """`canonical(dtype)`, or None when no dtype was given."""
    return None if dtype is None else canonical(dtype)


def or_default(dtype: object | None, base_dtype: str | None) -> str:
    """The dtype asked for, else the base's own (when it is a float dtype), else float32."""
    if dtype is not None:
        return canonical(dtype)
    return base_dtype if base_dtype in CANONICAL else "float32"
