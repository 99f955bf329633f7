"""The job kinds a worker knows: verify, merge, publish, and the diagnostic noop and sleep.

A task is `fn(ctx, payload) -> result dict`. It may run twice (a rescued job runs again), so each
one is idempotent: merged output is content-addressed and cached, a publication overwrites the
same bytes, and catalog rows are written through `ctx.on_finish`, inside the guarded finish.
"""

from __future__ import annotations

import time
from typing import Any

from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.errors import InvalidInput, PolicyViolation
from registry.jobs.context import Task, TaskContext
from registry.refs import parse_ref


def noop(ctx: TaskContext, payload: dict) -> dict:
    """Does nothing (queue benchmarks, smoke tests)."""
    return {"ok": True}


def sleep(ctx: TaskContext, payload: dict) -> dict:
    """Sleeps `seconds`, checking for cancellation every 50 ms (tests, demos)."""
    seconds = float(payload.get("seconds", 1.0))
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ctx.progress("sleep", int((seconds - left) * 1000), int(seconds * 1000))
        time.sleep(min(0.05, left))
    return {"slept": seconds}


def merge(ctx: TaskContext, payload: dict) -> dict:
    """Merge an adapter version into its base (Registry.merge: cached, content-addressed)."""
    m = ctx.registry.merge(payload["ref"], dtype=payload.get("dtype"), engine=payload.get("engine", "auto"),
                           device=payload.get("device") or ctx.device, validate=bool(payload.get("validate")),
                           progress=_merge_progress(ctx))
    return merged_result(m)


def _merge_progress(ctx: TaskContext):
    """Registry.merge reports (done, total, what) per tensor; each report is also a cancellation point."""
    return lambda done, total, what=None: ctx.progress("merge", done, total)


def merged_result(m) -> dict[str, Any]:
    return {"merged_id": m.id, "ref": m.ref, "dtype": m.dtype, "engine": m.engine,
            "engine_version": m.engine_version, "manifest_digest": m.manifest_digest, "size_bytes": m.size_bytes,
            "path": str(m.path) if m.path else None, "created": m.created}


def verify(ctx: TaskContext, payload: dict) -> dict:
    """Static check, then the dynamic checks on this worker's device; records a Verification."""
    from registry import verify as V
    from registry.merge import DTYPES

    reg = ctx.registry
    ref, base = payload["ref"], payload.get("base")
    ctx.progress("static check")
    report = reg.check(ref, base=base)
    with reg.db.read() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        base_row = Q.get_base(s, base) if base else row.base_model
        vid, digest, bid = row.id, row.content_digest, base_row.id
        base_ref = f"{base_row.name}@{base_row.fingerprint}"
        base_fp, base_dtype = base_row.fingerprint, base_row.dtype
    dtype = DTYPES.get(str(payload.get("dtype") or base_dtype or "float32"))
    if dtype is None:
        raise InvalidInput(f"dtype must be one of float32, float16, bfloat16, not {payload.get('dtype')!r}")
    dkind, versions = V.device_kind(ctx.device), V.library_versions(ctx.device)
    if report.status == "fail":
        outcome = V.Outcome(False, {"static": report.status, "static_errors": list(report.errors)},
                            tuple(report.errors))
    else:
        ctx.progress("load")
        adapter_dir, base_dir = reg.resolve(ref), reg.base_folder(base_ref)
        ctx.progress("probe")
        outcome = V.verify(base_dir, adapter_dir, cache=ctx.models, base_key=base_fp, adapter_key=digest,
                           dtype=dtype, check=ctx.check)
        outcome.figures["static"] = report.status
    figures = {**outcome.figures, "reasons": list(outcome.reasons)}

    def record(s) -> None:
        s.add(M.Verification(version_id=vid, base_model_id=bid, device_kind=dkind, dtype=dtype, versions=versions,
                             passed=outcome.passed, figures=figures, duration_s=outcome.duration_s,
                             job_id=ctx.job.id))

    ctx.on_finish(record)
    return {"ref": ref, "passed": outcome.passed, "reasons": list(outcome.reasons), "device_kind": dkind,
            "dtype": dtype, "figures": figures, "duration_s": outcome.duration_s}


def publish(ctx: TaskContext, payload: dict) -> dict:
    """Merge if needed, then publish to the target; records a Publication."""
    from registry.publish import open_publisher

    reg = ctx.registry
    ref, to, force = payload["ref"], payload["to"], bool(payload.get("force"))
    publisher = open_publisher(to, settings=reg.settings)  # a bad target fails before the merge
    ctx.progress("merge")
    m = reg.merge(ref, dtype=payload.get("dtype"), engine=payload.get("engine", "auto"),
                  device=payload.get("device") or ctx.device, progress=_merge_progress(ctx))
    with reg.db.read() as s:
        _a, row = Q.get_version(s, parse_ref(ref))
        vid = row.id
        base_id = s.get(M.MergedArtifact, m.id).base_model_id
        why = verified_by(s, vid, base_id, m.validation)
    if why is None and not force:
        raise PolicyViolation(f"{ref}: the merge is not verified; publishing needs a verified merge",
                              ref=ref, hint=f"run: adapter-registry verify {ref} --wait (or pass --force)")
    folder = m.path or _materialize(reg, m)
    ctx.progress("publish")
    res = publisher.publish(folder, progress=ctx.progress)
    actor = ctx.job.created_by or reg.actor

    def record(s) -> None:
        s.add(M.Publication(merged_id=m.id, version_id=vid, target=publisher.kind, uri=res.uri, revision=res.revision,
                            manifest_digest=res.manifest_digest, forced=why is None, actor=actor))

    ctx.on_finish(record)
    return {"ref": ref, "target": publisher.kind, "uri": res.uri, "revision": res.revision,
            "manifest_digest": res.manifest_digest, "files": res.files, "merged_id": m.id,
            "verified_by": why, "forced": why is None}


def verified_by(s, version_id: int, base_id: int | None, validation: dict | None) -> str | None:
    """What makes a merge count as verified: a passing verification of the version on that base,
    or the merge's own logits validation. None when neither exists."""
    from sqlalchemy import select

    V = M.Verification
    q = select(V.id).where(V.version_id == version_id, V.passed.is_(True)).order_by(V.id.desc()).limit(1)
    if base_id is not None:
        q = q.where(V.base_model_id == base_id)
    vid = s.scalar(q)
    if vid is not None:
        return f"verification:{vid}"
    if ((validation or {}).get("logits") or {}).get("passed"):
        return "merge-validation"
    return None


def _materialize(reg, m):
    from registry.storage import materialize

    files = {rel: (v["digest"] if isinstance(v, dict) else v) for rel, v in m.files.items()}
    return materialize(reg.store, files, reg.settings.cache_dir / "merged" / m.manifest_digest,
                       cache_root=reg.settings.cache_dir / "blobs")


BUILTIN: dict[str, Task] = {"noop": noop, "sleep": sleep, "verify": verify, "merge": merge, "publish": publish}
ML_KINDS = ("verify", "merge", "publish")
