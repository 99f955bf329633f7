"""Served equals verified: an engine's greedy output, without and with the adapter, against peft's.

On the same device and in the same dtype, for the probe prompts (as token ids, so no tokenizer can
differ), peft (transformers + peft, the reference) and the engine each generate `max_tokens`
greedy tokens, EOS ignored, and report the logprob of each chosen token. The engine passes when:
1. it accepted the adapter (vLLM and llama.cpp refuse some at load time: their message is the reason);
2. its greedy token ids equal peft's, with the adapter and without it (same base, same adapter);
3. the logprobs of those tokens are within LOGPROB_TOLERANCE of peft's (absolute, per token; where
   the engine reports one: llama-server leaves out tokens whose text is not complete UTF-8 yet,
   counted in `engine_logprobs_missing`);
4. the adapter changes the engine's output (an adapter the engine loads but silently does not
   apply fails here and in 2.).
torch is imported only inside the functions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from registry.verify import PROBE_PROMPTS

MAX_TOKENS = 8
# |engine logprob - peft logprob| per generated token, by dtype: float32 kernels differ by ~1e-5
# (accumulation order); half precision engines keep activations in that dtype.
LOGPROB_TOLERANCE = {"float32": 1e-2, "float16": 0.1, "bfloat16": 0.25}
# smallest max |logprob(adapter) - logprob(base)| that counts as "the adapter changes the output"
MIN_EFFECT = 1e-3


def probe_token_ids(base_dir: Path, prompts: tuple[str, ...] = PROBE_PROMPTS) -> list[list[int]]:
    """The prompts as token ids with the base's tokenizer (ids < vocab; fixed random ids without one)."""
    import json

    vocab = int(json.loads((Path(base_dir) / "config.json").read_text()).get("vocab_size", 256))
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(base_dir))
        ids = [list(tok(p).input_ids) for p in prompts]
        if all(0 <= i < vocab for row in ids for i in row) and all(ids):
            return ids
    except (OSError, ValueError):
        pass
    import random

    rng = random.Random(0)
    return [[rng.randrange(3, vocab) for _ in range(8)] for _ in prompts]


def peft_greedy(model: Any, prompts: list[list[int]], *, max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    """Greedy tokens and their logprobs from a (peft) causal LM, EOS ignored, one prompt at a time."""
    import torch

    t = time.monotonic()
    device = next(model.parameters()).device
    tokens, logprobs = [], []
    with torch.no_grad():
        for p in prompts:
            seq = list(p)
            out_t, out_lp = [], []
            for _ in range(max_tokens):  # whole sequence each step: tiny probes, and no cache API to track
                logits = model(input_ids=torch.tensor([seq], device=device)).logits
                lp = torch.log_softmax(logits[0, -1].float(), dim=-1)
                nxt = int(lp.argmax())
                out_t.append(nxt)
                out_lp.append(float(lp[nxt]))
                seq.append(nxt)
            tokens.append(out_t)
            logprobs.append(out_lp)
    return {"tokens": tokens, "logprobs": logprobs, "seconds": time.monotonic() - t}


def reference(cache: Any, base_dir: Path, adapter_dir: Path, *, base_key: str, adapter_key: str, dtype: str,
              prompts: list[list[int]], max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    """peft's runs with the adapter and without it (the base from the worker's ModelCache)."""
    with cache.adapter(base_dir, adapter_dir, base_key=base_key, adapter_key=adapter_key, dtype=dtype) as (pm, _tok):
        adapted = peft_greedy(pm, prompts, max_tokens=max_tokens)
        with pm.disable_adapter():
            base = peft_greedy(pm, prompts, max_tokens=max_tokens)
    return {"adapter": adapted, "base": base}


def _first_divergence(a: list[list[int]], b: list[list[int]]) -> tuple[int, int] | None:
    for i, (x, y) in enumerate(zip(a, b)):
        for k, (u, v) in enumerate(zip(x, y)):
            if u != v:
                return i, k
        if len(x) != len(y):
            return i, min(len(x), len(y))
    return None


def _max_lp_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Max |logprob| difference over the tokens both runs chose alike (up to their first divergence)."""
    worst = 0.0
    for ta, tb, la, lb in zip(a["tokens"], b["tokens"], a["logprobs"], b["logprobs"]):
        for u, v, x, y in zip(ta, tb, la, lb):
            if u != v:
                break
            if x is not None and y is not None:  # llama-server reports no logprob for some byte tokens
                worst = max(worst, abs(x - y))
    return worst


def judge(engine: str, ref: dict[str, Any], base_run: dict[str, Any] | None, adapter_run: dict[str, Any] | None,
          *, dtype: str, refused: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Figures and the reasons it fails (none: it passes) for one adapter on one engine."""
    tol = LOGPROB_TOLERANCE[dtype]
    figures: dict[str, Any] = {"logprob_tolerance": tol, "min_effect": MIN_EFFECT,
                               "max_tokens": len(ref["adapter"]["tokens"][0]) if ref["adapter"]["tokens"] else 0,
                               "prompts": len(ref["adapter"]["tokens"]), "peft_tokens": ref["adapter"]["tokens"]}
    reasons: list[str] = []
    if refused is not None or adapter_run is None or base_run is None:
        reasons.append(f"{engine} refused the adapter: {refused or 'no output'}")
        return figures, reasons
    figures["engine_tokens"] = adapter_run["tokens"]
    for label, mine, theirs in (("with the adapter", adapter_run, ref["adapter"]),
                                ("without the adapter", base_run, ref["base"])):
        key = "adapter" if label.startswith("with ") else "base"
        div = _first_divergence(mine["tokens"], theirs["tokens"])
        figures[f"{key}_tokens_equal"] = div is None
        diff = _max_lp_diff(mine, theirs)
        figures[f"{key}_max_logprob_diff"] = diff
        if div is not None:
            i, k = div
            got = mine["tokens"][i][k] if k < len(mine["tokens"][i]) else None
            want = theirs["tokens"][i][k] if k < len(theirs["tokens"][i]) else None
            reasons.append(f"{engine}'s greedy tokens {label} differ from peft's (prompt {i}, token {k}: "
                           f"{got} vs {want})")
        if not diff <= tol:
            reasons.append(f"{engine}'s logprobs {label} differ from peft's by {diff:.3g} > {tol:g}")
    figures["engine_logprobs_missing"] = sum(x is None for run in (adapter_run, base_run)
                                             for row in run["logprobs"] for x in row)
    changed = _first_divergence(adapter_run["tokens"], base_run["tokens"]) is not None
    effect = _max_lp_diff(adapter_run, base_run)
    figures["engine_effect"] = effect
    figures["engine_tokens_changed_by_adapter"] = changed
    if not changed and not effect >= MIN_EFFECT:
        reasons.append(f"the adapter does not change {engine}'s output (max logprob change {effect:.3g} < "
                       f"{MIN_EFFECT:g}): {engine} loaded it but does not apply it")
    return figures, reasons
