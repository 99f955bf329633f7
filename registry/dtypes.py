"""The one place that names dtypes: user spellings, canonical names, safetensors codes.

A dtype given by a user ("bf16", "torch.float16", "half") is normalised here once, at the entry
point; everything below it (catalog rows, cache keys, merge engines, verification) sees only
the canonical torch names "float32", "float16" and "bfloat16". The safetensors tables at the end
(sizes, torch names, which codes are floating point) serve the header reader and the shard writer.
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


# Every safetensors dtype code, for reading headers and laying out shards. F4 is absent on purpose:
# it packs two values per byte, so a tensor's size is not numel * a whole number of bytes.
ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
SAFETENSORS_CODES = frozenset(ITEMSIZE) | {"F4"}
# safetensors code -> the name torch (and config.json) uses, for the codes torch has a dtype for
TORCH_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
               "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32",
               "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
# Floating-point codes: loading a model in a dtype (`from_pretrained(dtype=...)`) casts these
# tensors to it and leaves the others (integer buffers, F8_E8M0 scales) as they are.
FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
