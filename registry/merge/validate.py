"""Evidence that a merge did what it says, stored with the artifact.

1. Probes (always, nearly free): for each merged module, a few output features are checked on
   random vectors, in float64: W' x against W x + s * B (A x) (times the DoRA factor), relative to
   |W'_row| |x|. A correct merge is off by the rounding to the stored dtype only, so the bound is
   a few units of roundoff of that dtype (TOLERANCE).
2. Logits (validate=True): the merged folder loaded with transformers against base + unmerged
   adapter with peft, on fixed probe prompts; max |logit difference| relative to max |logit|.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from registry.dtypes import FROM_SAFETENSORS, TO_SAFETENSORS
from registry.errors import MergeError

# unit roundoff of each stored dtype; a merge may round twice (Embedding), and the check allows 4
UNIT_ROUNDOFF = {"F32": 2.0**-24, "F16": 2.0**-11, "BF16": 2.0**-8, "F64": 2.0**-53}
PROBE_TOLERANCE = {k: 4 * u for k, u in UNIT_ROUNDOFF.items()}
# logits: merged vs unmerged forward passes differ by every rounding on the way, not just the merge
LOGIT_TOLERANCE = {"F32": 1e-4, "F16": 2e-2, "BF16": 1e-1}
PROBE_PROMPTS = ["the adapter registry", "merge the adapter into its base model", "hello world"]
_ROWS = 4
_VECTORS = 2


class Probe:
    """Captures a few output features of W before an op, then checks them after."""

    def __init__(self, op, w, a, b, magnitude):
        import torch

        self.op = op
        g = torch.Generator().manual_seed(zlib.crc32(op.module.encode()))
        a64, b64 = a.double().cpu(), b.double().cpu()
        s = op.scaling
        wc = w.detach().cpu()
        if op.kind == "lora":
            n_out = b.shape[0]
            self.idx = torch.randperm(n_out, generator=g)[:_ROWS]
            rows = (wc.T if op.fan_in_fan_out else wc)[self.idx].double()  # (k, in)
            self.x = torch.randn(rows.shape[1], _VECTORS, generator=g, dtype=torch.float64)
            expected_rows = rows + s * (b64[self.idx] @ a64)
            self.expected = rows @ self.x + s * (b64[self.idx] @ (a64 @ self.x))
            if magnitude is not None:
                factor = magnitude.double().cpu()[self.idx] / torch.linalg.norm(expected_rows, dim=1)
                self.expected = factor[:, None] * self.expected
        else:  # embedding: x is a one-hot token id, W x is a row
            n_tok = w.shape[0]
            self.idx = torch.randperm(n_tok, generator=g)[:_ROWS]
            rows = wc[self.idx].double()
            delta_rows = s * (a64[:, self.idx].T @ b64.T)
            self.expected = rows + delta_rows
            if magnitude is not None:
                self.expected = (magnitude.double().cpu() / self._column_norms(wc, a64, b64, s)) * self.expected

    @staticmethod
    def _column_norms(w, a64, b64, s, chunk: int = 4096):
        import torch

        acc = torch.zeros(w.shape[1], dtype=torch.float64)
        for i in range(0, w.shape[0], chunk):
            part = w[i:i + chunk].double() + s * (a64[:, i:i + chunk].T @ b64.T)
            acc += (part * part).sum(0)
        return acc.sqrt()

    def check(self, w_new) -> dict:
        import torch

        wc = w_new.detach().cpu()
        if self.op.kind == "lora":
            rows = (wc.T if self.op.fan_in_fan_out else wc)[self.idx].double()
            got = rows @ self.x
            scale = torch.linalg.norm(rows, dim=1)[:, None] * torch.linalg.norm(self.x, dim=0)[None, :]
            err = ((got - self.expected).abs() / scale.clamp_min(1e-300)).max().item()
        else:
            got = wc[self.idx].double()
            err = (torch.linalg.norm(got - self.expected, dim=1)
                   / torch.linalg.norm(self.expected, dim=1).clamp_min(1e-300)).max().item()
        dtype = TO_SAFETENSORS.get(str(w_new.dtype).removeprefix("torch."), "F64")
        return {"module": self.op.module, "dtype": dtype, "error": err}


def summarize_probes(probes: list[dict]) -> dict:
    """Figures for the manifest; raises MergeError if a module is off by more than rounding."""
    if not probes:
        return {"modules": 0, "max_rel_error": 0.0, "passed": True}
    worst = max(probes, key=lambda p: p["error"] / PROBE_TOLERANCE[p["dtype"]])
    failed = [p for p in probes if not p["error"] <= PROBE_TOLERANCE[p["dtype"]]]
    summary = {
        "modules": len(probes),
        "rows_per_module": _ROWS,
        "vectors": _VECTORS,
        "max_rel_error": worst["error"],
        "worst_module": worst["module"],
        "tolerance": PROBE_TOLERANCE[worst["dtype"]],
        "passed": not failed,
    }
    if failed:
        raise MergeError(
            f"merged weights fail the probe check in {len(failed)} modules, worst {worst['module']}: "
            f"relative error {worst['error']:.3g} > {PROBE_TOLERANCE[worst['dtype']]:.3g}",
            validation=summary)
    return summary


def check_logits(merged_dir: Path, base_dir: Path, adapter_dir: Path, *, dtype: str, device: str = "cpu") -> dict:
    """Logits of the merged folder vs base + unmerged adapter (peft) on the probe prompts."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tdtype = getattr(torch, FROM_SAFETENSORS[dtype])
    tok = AutoTokenizer.from_pretrained(merged_dir)
    batch = [tok(p, return_tensors="pt").input_ids.to(device) for p in PROBE_PROMPTS]

    def logits(model):
        with torch.no_grad():
            return [model(ids).logits.float().cpu() for ids in batch]

    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=tdtype, device_map=device).eval()
    got = logits(merged)
    del merged
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=tdtype, device_map=device)
    ref_model = PeftModel.from_pretrained(base, adapter_dir).eval()
    ref = logits(ref_model)
    del ref_model, base
    diff = max((g - r).abs().max().item() for g, r in zip(got, ref))
    scale = max(r.abs().max().item() for r in ref)
    rel = diff / max(scale, 1e-30)
    same_argmax = all(bool((g.argmax(-1) == r.argmax(-1)).all()) for g, r in zip(got, ref))
    out = {"prompts": len(PROBE_PROMPTS), "max_abs_diff": diff, "max_abs_logit": scale, "rel_diff": rel,
           "tolerance": LOGIT_TOLERANCE[dtype], "same_argmax": same_argmax,
           "passed": rel <= LOGIT_TOLERANCE[dtype]}
    if not out["passed"]:
        raise MergeError(f"merged logits differ from base + adapter by {rel:.3g} (relative) > "
                         f"{LOGIT_TOLERANCE[dtype]}", validation=out)
    return out
