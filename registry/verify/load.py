"""Load what the registry resolved into torch: a PeftModel on its base, or a merged checkpoint.

The one place besides merge and verify that imports torch, transformers and peft, and only
inside these calls (Registry.load / load_merged and the Client's twins). Everything is read from
local folders with `local_files_only`: loading never goes to the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry import dtypes


def peft_model(adapter_dir: Path, base_dir: Path, *, device: str = "cpu", dtype: str | None = None) -> Any:
    """`PeftModel.from_pretrained` of `adapter_dir` on the base in `base_dir`, on `device`, in eval mode.

    `dtype`: the base's weights in this dtype ("bf16", "float32", ...); None: as stored.
    """
    from peft import PeftModel

    base = _causal_lm(base_dir, dtype=dtype)
    return PeftModel.from_pretrained(base, str(adapter_dir)).to(device).eval()


def merged_model(folder: Path, *, device: str = "cpu", dtype: str | None = None) -> Any:
    """A merged checkpoint folder as a transformers causal LM, on `device`, in eval mode."""
    return _causal_lm(folder, dtype=dtype).to(device).eval()


def _causal_lm(folder: Path, *, dtype: str | None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    want: Any = getattr(torch, dtypes.canonical(dtype)) if dtype is not None else "auto"
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=want, local_files_only=True)
