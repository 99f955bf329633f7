"""The job kinds a worker knows: verify, merge, publish, and the diagnostic noop and sleep.

A task is `fn(ctx, payload) -> result dict`: it turns the payload into a workflow call
(registry/workflows/) and the workflow's outcome into the job's result. It may run twice (a
rescued job runs again), so each one is idempotent: merged output is content-addressed and
cached, a publication overwrites the same bytes, and catalog rows are written through
`ctx.on_finish`, inside the guarded finish.

Results and errors are read by whoever may read the job, so they carry no server paths: a
result names digests, sizes and the target the user gave; an error's message has the registry's
home, store and cache folders replaced by <home>, <store> and <cache>.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from registry import types as T
from registry.core import Core
from registry.enums import JobKind
from registry.errors import RegistryError, StorageError
from registry.jobs.context import Task, TaskContext
from registry.workflows import merge as merge_wf
from registry.workflows import publish as publish_wf
from registry.workflows import verify as verify_wf


def noop(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Does nothing (queue benchmarks, smoke tests)."""
    return {"ok": True}


def sleep(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Sleeps `seconds`, checking for cancellation every 50 ms (tests, demos)."""
    seconds = float(payload.get("seconds", 1.0))
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ctx.progress("sleep", int((seconds - left) * 1000), int(seconds * 1000))
        time.sleep(min(0.05, left))
    return {"slept": seconds}


def merge(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Merge an adapter version into its base (workflows.merge: cached, content-addressed)."""
    with no_server_paths(ctx.core):
        m = merge_wf.merge(ctx.core, payload["ref"], dtype=payload.get("dtype"),
                           engine=payload.get("engine", "auto"), device=payload.get("device") or ctx.device,
                           validate=bool(payload.get("validate")), out=None, max_shard_size="5GB",
                           progress=_merge_progress(ctx))
    return merged_result(m)


def _merge_progress(ctx: TaskContext) -> merge_wf.MergeProgress:
    """The merge reports (done, total, what) per tensor; each report is also a cancellation point."""

    def report(done: int, total: int, what: str | None = None) -> None:
        ctx.progress("merge", done, total)

    return report


def merged_result(m: T.MergedArtifact) -> dict[str, Any]:
    return {"merged_id": m.id, "ref": m.ref, "dtype": m.dtype, "engine": m.engine,
            "engine_version": m.engine_version, "manifest_digest": m.manifest_digest, "size_bytes": m.size_bytes,
            "created": m.created}  # no local folder: a server path is nobody else's business


def verify(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Static check, then the dynamic checks on this worker's device (peft's, or a serving engine's
    output against peft's with payload["engine"]); records a Verification."""
    res = verify_wf.run(ctx.core, payload["ref"], base=payload.get("base"), dtype=payload.get("dtype"),
                        device=ctx.device, models=ctx.models, check_stop=ctx.check, stage=ctx.progress,
                        engine=payload.get("engine") or "peft", serving=payload.get("serving"))

    def record(s: Session) -> None:
        res.record(s, job_id=ctx.job.id)

    ctx.on_finish(record)
    return res.to_dict()


def publish(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Merge if needed, then publish to the target; records a Publication (as the job's creator)."""
    core = ctx.core.as_actor(ctx.job.created_by) if ctx.job.created_by else ctx.core
    with no_server_paths(core):
        out = publish_wf.run(core, payload["ref"], to=payload["to"], dtype=payload.get("dtype"),
                             engine=payload.get("engine", "auto"), device=payload.get("device") or ctx.device,
                             force=bool(payload.get("force")), progress=ctx.progress,
                             merge_progress=_merge_progress(ctx))
    ctx.on_finish(out.record)
    return out.result


def server_paths(core: Core) -> list[tuple[str, str]]:
    """(folder, placeholder) for the registry's own folders, longest first (the cache is under home)."""
    st = core.settings
    named = [(st.cache_dir, "<cache>"), (st.home, "<home>")]
    if "://" not in st.store_url or st.store_url.startswith("file://"):
        named.append((Path(st.store_url.removeprefix("file://")), "<store>"))
    pairs = {(str(p), label) for p, label in named} | {(os.path.realpath(p), label) for p, label in named}
    return sorted(pairs, key=lambda x: -len(x[0]))


def scrub(text: str, pairs: list[tuple[str, str]]) -> str:
    for path, label in pairs:
        text = text.replace(path, label)
    return text


@contextmanager
def no_server_paths(core: Core) -> Iterator[None]:
    """Re-raise what the block raises with the registry's folders taken out of its message."""
    try:
        yield
    except RegistryError as e:
        pairs = server_paths(core)
        e.message = scrub(e.message, pairs)
        e.args = (e.message,)
        for k, v in e.context.items():
            if isinstance(v, str):
                e.context[k] = scrub(v, pairs)
                setattr(e, k, e.context[k])
        raise
    except OSError as e:  # not one of ours: ours says the same without the path
        raise StorageError(scrub(str(e), server_paths(core))) from e
    except Exception as e:
        text = scrub(str(e), server_paths(core))
        if text != str(e):
            e.args = (text,)
        raise


BUILTIN: dict[str, Task] = {JobKind.NOOP: noop, JobKind.SLEEP: sleep, JobKind.VERIFY: verify,
                            JobKind.MERGE: merge, JobKind.PUBLISH: publish}
