"""The one answer to "is this version verified?" and the other gate questions built on it.

Alias gates (release/aliases.py), publishing (workflows/publish.py, both the API's pre-check and
the job itself), the HTTP API, the pages and the CLI all ask here, so they cannot disagree.

What counts as verified, exactly:
- **Which base:** a verification of the version against that exact base row, i.e. that base
  fingerprint (revision, config, tensor layout, tokenizer, sampled weights). A verification
  against another revision of the same base name does not count.
- **Which dtype:** with `dtype` given, only verifications in that dtype (publishing a float16
  checkpoint needs a float16 verification: an adapter that is fine in bfloat16 can overflow in
  float16); with `dtype` None (alias gates), any dtype.
- **How recent:** the newest such verification decides. A failure recorded after a pass means
  "not verified" until a new verification passes; nothing expires by age.
- **Device kind and library versions** (torch, transformers, peft, CUDA, GPU) are recorded with
  each verification and shown, but do not restrict it: a CPU verification counts for a GPU merge.
- **Which engine:** "verified" means verified by peft (the reference: merged equals unmerged)
  unless an engine is asked for: `engine="vllm"` (or "llama.cpp") counts only that engine's
  verifications (its greedy output equal to peft's, registry/verify/engine.py), and a vLLM
  verification never counts as, nor overrides, a peft one. The engine is the verification's
  `engine` column (rows from before engines are peft's).
- **Where verifications come from:** `verify` jobs (and `Registry.verify`), and `merge
  --validate`, whose logits comparison of the merged checkpoint against base + adapter is
  recorded as a verification of the version in the merge's dtype.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as M


@dataclass(frozen=True)
class Verdict:
    """The answer for one (version, base, dtype): verified, failed, or never verified (None)."""

    verified: bool | None
    verification_id: int | None = None
    dtype: str | None = None

    @property
    def passed(self) -> bool:
        return self.verified is True

    @property
    def evidence(self) -> str | None:
        """What made it verified ("verification:ID"), for job results and publication records."""
        return f"verification:{self.verification_id}" if self.passed else None


PEFT = "peft"


def verdict(s: Session, version_id: int, base_id: int, *, dtype: str | None = None,
            engine: str | None = None) -> Verdict:
    """The newest verification of `version_id` against `base_id` by `engine` (None: peft), in `dtype`
    when given, decides."""
    V = M.Verification
    q = select(V.id, V.passed, V.dtype).where(V.version_id == version_id, V.base_model_id == base_id,
                                              V.engine == (engine or PEFT))
    if dtype is not None:
        q = q.where(V.dtype == dtype)
    row = s.execute(q.order_by(V.id.desc()).limit(1)).first()
    if row is None:
        return Verdict(None, dtype=dtype)
    return Verdict(bool(row.passed), row.id, row.dtype)


def latest_verdicts(s: Session, version_ids: list[int]) -> dict[int, dict[int, bool]]:
    """`verdict` (any dtype) for many versions at once: version id -> base id -> passed.

    Bases a version was never verified against are absent. Impact reports and bulk promotion
    read this, so they judge by the same rule as the gates.
    """
    out: dict[int, dict[int, bool]] = defaultdict(dict)
    if not version_ids:
        return out
    V = M.Verification
    for vid, bid, passed in s.execute(select(V.version_id, V.base_model_id, V.passed)
                                      .where(V.version_id.in_(version_ids), V.engine == PEFT).order_by(V.id)):
        out[vid][bid] = bool(passed)  # later rows overwrite: the newest decides
    return out


def describe(ref: str, base_label: str, v: Verdict, *, engine: str | None = None) -> str:
    """One line for a refusal: why `ref` does not count as verified against the base."""
    where = f"against {base_label}" + (f" in {v.dtype}" if v.dtype else "") + (f" on {engine}" if engine else "")
    if v.verified is None:
        return f"{ref} has no verification {where}"
    if v.verified is False:
        return f"the latest verification of {ref} {where} failed"
    return f"{ref} passed verification {where}"


def engine_verdicts(s: Session, version_id: int, base_id: int, engines: tuple[str, ...] | list[str]
                    ) -> dict[str, bool | None]:
    """`verdict(..., engine=e).verified` for each serving engine a policy requires (alias gates)."""
    return {e: verdict(s, version_id, base_id, engine=e).verified for e in engines}
