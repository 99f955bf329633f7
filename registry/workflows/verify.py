"""Verify a version: the static check against its base, then the dynamic checks on a device.

`run()` does the work and returns what to record; the caller decides where the record is
written: `Registry.verify()` writes it at once, the verify job writes it inside the queue's
guarded finish (so a rescued worker's late result records nothing). registry/gates.py says what
a recorded verification counts for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from registry import dtypes
from registry import types as T
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.catalog.rows import row as need
from registry.core import Core
from registry.errors import BaseModelNotFound
from registry.refs import parse_ref
from registry.workflows.push import check
from registry.workflows.resolve import adapter_folder, base_folder

Stage = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    """One verification, ready to be recorded (`record`) and reported (`to_dict`)."""

    ref: str
    version_id: int
    base_id: int
    passed: bool
    reasons: tuple[str, ...]
    device_kind: str
    dtype: str
    figures: dict[str, Any]
    duration_s: float
    versions: dict[str, Any] = field(default_factory=dict)

    def record(self, s: Session, *, job_id: int | None = None) -> M.Verification:
        row = M.Verification(version_id=self.version_id, base_model_id=self.base_id, device_kind=self.device_kind,
                             dtype=self.dtype, versions=self.versions, passed=self.passed, figures=self.figures,
                             duration_s=self.duration_s, job_id=job_id)
        s.add(row)
        return row

    def to_dict(self) -> dict[str, Any]:
        """The verify job's result."""
        return {"ref": self.ref, "passed": self.passed, "reasons": list(self.reasons), "device_kind": self.device_kind,
                "dtype": self.dtype, "figures": self.figures, "duration_s": self.duration_s}


def run(core: Core, ref: str, *, base: str | None = None, dtype: str | None = None, device: str = "cpu",
        models: Any = None, check_stop: Callable[[], None] | None = None, stage: Stage | None = None) -> Result:
    """Static check, then (when it passes) the dynamic checks with the base from `models`.

    Args:
        models: a registry.verify.cache.ModelCache (a worker's, so bases stay loaded); a fresh
            one on `device` when None
        check_stop: called between steps; raises to stop (a job's cancellation point)
        stage: told the name of each step ("static check", "load", "probe")
    """
    from registry import verify as V
    from registry.versions import library_versions

    say = stage or (lambda _s: None)
    say("static check")
    report = check(core, ref, base=base)
    with core.db.read() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        base_row = Q.get_base(s, base) if base else row.base_model
        if base_row is None:
            raise BaseModelNotFound(f"{ref} has no base model recorded; pass --base NAME")
        vid, digest, bid = row.id, row.content_digest, base_row.id
        base_ref, base_fp = f"{base_row.name}@{base_row.fingerprint}", base_row.fingerprint
        out_dtype = dtypes.or_default(dtype, base_row.dtype)
    if report.status == "fail":
        outcome = V.Outcome(False, {"static": report.status, "static_errors": list(report.errors)},
                            tuple(report.errors))
    else:
        say("load")
        adapter_dir, base_dir = adapter_folder(core, ref), base_folder(core, base_ref)
        if models is None:
            from registry.verify.cache import ModelCache

            models = ModelCache(device=device)
        say("probe")
        outcome = V.verify(base_dir, adapter_dir, cache=models, base_key=base_fp, adapter_key=digest,
                           dtype=out_dtype, check=check_stop)
        outcome.figures["static"] = report.status
    return Result(ref, vid, bid, outcome.passed, tuple(outcome.reasons), V.device_kind(device), out_dtype,
                  {**outcome.figures, "reasons": list(outcome.reasons)}, outcome.duration_s,
                  library_versions(device))


def verify(core: Core, ref: str, *, base: str | None, dtype: str | None, device: str) -> T.Verification:
    """Run a verification in this process and record it; returns the recorded verification."""
    res = run(core, ref, base=base, dtype=dtype, device=device)
    with core.db.write() as s:
        row = res.record(s)
        s.flush()
        return convert.verification(row, res.ref, need(s, M.BaseModelRow, res.base_id))
