"""Dynamic verification: does this adapter, loaded on this device in this dtype, really work?

On the worker's device, with the base from the worker's ModelCache and the adapter hot-swapped in:
1. outputs on probe prompts are finite (no NaN/inf from a broken adapter or an overflowing dtype);
2. the adapter changes them measurably (an adapter with zero B, or scaled to nothing, fails);
3. merged and unmerged outputs agree within the dtype's tolerance (the same bound the merge
   validation uses), so that the merged checkpoint we ship behaves like base + adapter.

The merged pass merges into the cached base in place, so the targeted base weights are copied
first and copied back afterwards bit for bit: the cache never drifts, however many adapters pass
through it. torch is imported only inside the functions.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROBE_PROMPTS = (
    "the adapter registry keeps every lora adapter",
    "merge the adapter into its base model and ship it",
    "hello world, this is a probe",
    "production staging canary",
)
# merged vs unmerged, relative to max |logit|: every rounding on the way, not just the merge
MERGE_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 1e-1}
# smallest change (relative to max |logit|) that counts as "the adapter does something"
MIN_EFFECT = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1e-2}


@dataclass(frozen=True)
class Outcome:
    passed: bool
    figures: dict[str, Any]
    reasons: tuple[str, ...] = ()
    duration_s: float = 0.0
    versions: dict[str, Any] = field(default_factory=dict)


def device_kind(device: str) -> str:
    """"cpu", or "cuda/<GPU name>": results are comparable across machines with the same kind."""
    if not device.startswith("cuda"):
        return device.split(":")[0]
    import torch

    return f"cuda/{torch.cuda.get_device_name(torch.device(device))}"[:50]


def verify(base_dir: Path, adapter_dir: Path, *, cache, base_key: str, adapter_key: str, dtype: str,
           prompts: tuple[str, ...] = PROBE_PROMPTS, check: Callable[[], None] | None = None) -> Outcome:
    """Run the three dynamic checks; `check` is called between steps (cooperative cancellation)."""
    import torch

    t0 = time.monotonic()
    check = check or (lambda: None)
    with cache.adapter(base_dir, adapter_dir, base_key=base_key, adapter_key=adapter_key, dtype=dtype) as (pm, tok):
        check()
        device = next(pm.parameters()).device
        batch = _encode(tok, prompts, pm.get_base_model().config.vocab_size, device)
        with torch.no_grad():
            adapted = _logits(pm, batch)
            check()
            with pm.disable_adapter():
                base = _logits(pm, batch)
            check()
            merged = _merged_logits(pm, batch)
    figures, reasons = _judge(base, adapted, merged, dtype)
    figures["prompts"] = len(prompts)
    return Outcome(not reasons, figures, tuple(reasons), time.monotonic() - t0)


def _encode(tok, prompts, vocab: int, device) -> dict:
    """All prompts as one padded batch: one forward pass per check, whatever the number of prompts."""
    import torch

    if tok is None:
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(3, vocab, (len(prompts), 8), generator=g)
        return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    tok.padding_side = "right"
    enc = tok(list(prompts), return_tensors="pt", padding=True)
    return {"input_ids": enc.input_ids.to(device), "attention_mask": enc.attention_mask.to(device)}


def _logits(model, batch) -> list:
    """Logits of the real (not padding) positions of each prompt."""
    out = model(**batch).logits.float().cpu()
    mask = batch["attention_mask"].bool().cpu()
    return [out[i][mask[i]] for i in range(out.shape[0])]


def _merged_logits(pm, batch) -> list:
    """Logits with the active adapter merged into the weights; the base is restored exactly after."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    name = pm.active_adapter
    saved = []
    for module in pm.modules():
        holds = isinstance(module, BaseTunerLayer) and any(name in getattr(module, a, {})
                                                           for a in module.adapter_layer_names)
        if holds:
            base_layer = module.get_base_layer()
            for _pname, p in base_layer.named_parameters(recurse=False):
                saved.append((p, p.detach().clone()))
    pm.merge_adapter([name])
    try:
        return _logits(pm, batch)
    finally:
        with warnings.catch_warnings():  # layers the adapter does not touch say "Already unmerged"
            warnings.simplefilter("ignore", UserWarning)
            pm.unmerge_adapter()
        for p, copy in saved:  # unmerge subtracts in floating point; put back the exact bits
            p.data.copy_(copy)


def _judge(base: list, adapted: list, merged: list, dtype: str) -> tuple[dict[str, Any], list[str]]:
    import torch

    finite = all(bool(torch.isfinite(t).all()) for t in adapted + merged + base)
    scale = max(float(t.abs().max()) for t in base) or 1e-30
    effect = max(float((a - b).abs().max()) for a, b in zip(adapted, base)) / scale
    mean_effect = sum(float((a - b).abs().mean()) for a, b in zip(adapted, base)) / len(base) / scale
    diff = max(float((m - a).abs().max()) for m, a in zip(merged, adapted)) / scale
    argmax_changed = sum(int((a.argmax(-1) != b.argmax(-1)).sum()) for a, b in zip(adapted, base))
    same_argmax = all(bool((m.argmax(-1) == a.argmax(-1)).all()) for m, a in zip(merged, adapted))
    tol, min_effect = MERGE_TOLERANCE[dtype], MIN_EFFECT[dtype]
    figures = {"finite": finite, "max_abs_logit": scale, "effect": effect, "mean_effect": mean_effect,
               "min_effect": min_effect, "merge_rel_diff": diff, "merge_tolerance": tol,
               "merged_same_argmax": same_argmax, "tokens_changed_by_adapter": argmax_changed}
    reasons = []
    if not finite:
        reasons.append("outputs are not finite (NaN or inf)")
    if not effect >= min_effect:
        reasons.append(f"the adapter has no measurable effect ({effect:.3g} < {min_effect:g} of max |logit|)")
    if not diff <= tol:
        reasons.append(f"merged and unmerged outputs differ by {diff:.3g} > {tol:g} of max |logit|")
    return figures, reasons
