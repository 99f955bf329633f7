"""The peft engine: peft's own merge, with its default flags. The reference, and the fallback.

`from_pretrained` + `PeftModel.from_pretrained` + `merge_and_unload()` + `save_pretrained`, exactly
as users run it. The flags are left at their defaults on purpose: `safe_merge=True`,
`low_cpu_mem_usage=True` and `autocast_adapter_dtype=False` each change the merged bits
(reference §2). It holds the whole model in memory; the streaming engine exists because of that.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from registry.errors import DiskFull, Incompatible, MergeError, translate_os_error
from registry.merge.checkpoint import INDEX, write_index


def peft_merge(base_dir: Path, adapter_dir: Path, out: Path, *, dtype: str, device: str,
               max_shard_size: str | int, resize_vocab: int | None = None) -> dict:
    """Merge with peft into `out` (shards + index + config.json + generation_config.json).

    `resize_vocab` resizes the base's embeddings first, for adapters trained with a resized
    vocabulary that carry every resized tensor (so the resize's random rows are all overwritten).

    Returns:
        The weight map (tensor -> shard file).
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tdtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=tdtype, device_map=device)
    if resize_vocab:
        model.resize_token_embeddings(resize_vocab, mean_resizing=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pm = PeftModel.from_pretrained(model, adapter_dir)
        except RuntimeError as e:
            if "size mismatch" in str(e):
                raise Incompatible(f"the adapter does not fit the base: {str(e)[:500]}",
                                   hint="is the adapter for another base (or a resized vocabulary)?") from e
            raise MergeError(f"peft could not load the adapter: {e}") from e
        except ValueError as e:
            if "not found in the base model" in str(e):
                raise Incompatible(f"the adapter does not fit the base: {e}",
                                   hint="is the adapter for another base model?") from e
            raise MergeError(f"peft could not load the adapter: {e}") from e
    missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message)]
    if missing:
        raise Incompatible(f"the adapter lacks tensors for modules its config targets: {missing[0][:500]}",
                           hint="peft would merge their random initialisation")
    try:
        merged = pm.merge_and_unload()
    except ValueError as e:
        raise MergeError(f"peft refused to merge: {e}") from e
    from registry.merge.math import has_nonfinite

    bad = [n for n, p in merged.state_dict().items() if p.is_floating_point() and has_nonfinite(p)]
    if bad:
        raise MergeError(f"non-finite values after merging in {bad[:10]}: the adapter seems broken", names=bad)
    try:
        merged.save_pretrained(out, max_shard_size=max_shard_size)
    except OSError as e:
        raise translate_os_error(e, path=str(out)) from e
    except Exception as e:  # safetensors' Rust writer raises its own error type for I/O errors
        if "os error 28" in str(e) or "No space left" in str(e):
            raise DiskFull(f"no space left on device while writing {out}", path=str(out)) from e
        raise
    return _normalize_layout(out)


def _normalize_layout(out: Path) -> dict:
    """Always sharded names + index (transformers writes a lone model.safetensors), mode 0644."""
    import json

    single = out / "model.safetensors"
    if single.exists():
        from registry.adapters.safetensors import read_header
        from registry.merge.st import shard_name

        name = shard_name(0, 1)
        os.rename(single, out / name)
        weight_map = dict.fromkeys(read_header(out / name).tensors, name)
        write_index(out, weight_map)
    else:
        weight_map = json.loads((out / INDEX).read_text())["weight_map"]
    for p in out.iterdir():
        os.chmod(p, 0o644)
    return weight_map
