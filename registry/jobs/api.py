"""`registry.jobs`: the queue as the Registry's sub-object (what the CLI and the HTTP API call).

    job = reg.jobs.verify("support-bot@3")             # enqueue; a worker runs it
    job = reg.jobs.wait(job.id)                        # follow it to its end
    reg.jobs.publish("support-bot@3", to="s3://b/p", dtype="bf16", wait=True, inline=True)
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import select

from registry import types as T
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.errors import InvalidInput, PolicyViolation, RegistryError
from registry.jobs import queue
from registry.refs import parse_ref

if TYPE_CHECKING:  # pragma: no cover
    from registry.app import Registry

TERMINAL = ("succeeded", "failed", "cancelled")


class JobTimeout(RegistryError, TimeoutError):
    """Waiting for the job timed out (the job goes on)."""

    status = 504
    code = "job_timeout"


class JobsAPI:
    """Durable jobs (verify, merge, publish) over the catalog database."""

    def __init__(self, registry: "Registry"):
        self.registry = registry
        self.db = registry.db

    # -- the queue ---------------------------------------------------------------------------------
    def enqueue(self, kind: str, payload: dict[str, Any] | None = None, *, unique_key: str | None = None,
                priority: int = 0, max_attempts: int = 3, run_after: dt.datetime | None = None) -> T.Job:
        """Add a job. With `unique_key`, a queued or running job with that key is returned instead
        (its `created` is False)."""
        return queue.enqueue(self.db, kind, dict(payload or {}), unique_key=unique_key, priority=priority,
                             max_attempts=max_attempts, run_after=run_after, actor=self.registry.actor)

    def get(self, job_id: int) -> T.Job:
        """Raises JobNotFound."""
        return queue.get(self.db, job_id)

    def list(self, *, state: str | None = None, kind: str | None = None, limit: int = 50) -> list[T.Job]:
        """Newest first."""
        return queue.list_jobs(self.db, state=state, kind=kind, limit=limit)

    def cancel(self, job_id: int) -> T.Job:
        """Cancel a queued job now, or ask a running one to stop (it stops at its next check)."""
        return queue.cancel(self.db, job_id)

    def retry(self, job_id: int) -> T.Job:
        """Queue a failed or cancelled job again (with one more attempt if it had used them all)."""
        return queue.retry(self.db, job_id)

    def workers(self, *, include_stopped: bool = False) -> list[T.WorkerInfo]:
        """Registered workers, most recently seen first."""
        return queue.list_workers(self.db, include_stopped=include_stopped)

    def wait(self, job_id: int, *, timeout: float | None = None, poll_s: float = 0.5,
             progress: Callable[[T.Job], None] | None = None) -> T.Job:
        """Poll until the job succeeded, failed or was cancelled. Raises JobTimeout."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if progress:
                progress(job)
            if job.state in TERMINAL:
                return job
            if end is not None and time.monotonic() >= end:
                raise JobTimeout(f"job {job_id} is still {job.state} after {timeout:g}s", job_id=job_id,
                                 hint=f"follow it with: adapter-registry jobs show {job_id}")
            time.sleep(poll_s)

    def run(self, job_id: int, *, device: str = "cpu", **worker_options: Any) -> T.Job:
        """Run one queued job in this process (no worker needed) and return it finished."""
        from registry.jobs.worker import Worker

        w = Worker(self.registry, device=device, **worker_options)
        queue.register_worker(self.db, w.info())
        try:
            job = queue.claim(self.db, w.id, lease_s=w.lease_s, only_id=job_id)
            if job is not None:
                w.run_job(job)
        finally:
            queue.touch_worker(self.db, w.id, state="stopped")
        return self.get(job_id)

    def work(self, *, device: str = "cpu", kinds=None, once: bool = True, max_jobs: int | None = None,
             **worker_options: Any) -> int:
        """Be a worker in this process (by default until nothing is ready); returns jobs run."""
        from registry.jobs.worker import Worker

        return Worker(self.registry, device=device, kinds=kinds, **worker_options).run(once=once, max_jobs=max_jobs)

    # -- the job kinds ------------------------------------------------------------------------------
    def verify(self, ref: str, *, base: str | None = None, dtype: str | None = None, wait: bool = False,
               timeout: float | None = None, inline: bool = False, device: str = "cpu") -> T.Job:
        """Enqueue a dynamic verification of a version (on its base, or `base`).

        One verify of the same version, base and dtype at a time: a second call returns the first job.
        """
        v = self._version(ref, base)
        dt_ = _dtype(dtype)
        job = self.enqueue("verify", {"ref": v["ref"], "requested": ref, "base": v["base"], "dtype": dt_},
                           unique_key=f"verify:{v['digest']}:{v['base_fp']}:{dt_ or 'default'}")
        return self._follow(job, wait=wait, timeout=timeout, inline=inline, device=device)

    def merge_async(self, ref: str, *, dtype: str | None = None, engine: str = "auto", validate: bool = False,
                    device: str | None = None, wait: bool = False, timeout: float | None = None,
                    inline: bool = False) -> T.Job:
        """Enqueue a merge (on `device`, else on the device of the worker that takes it).

        When the merged artifact is already in the catalog, the job returned is already succeeded,
        with the artifact as its result; no worker is involved.
        """
        from registry.jobs.tasks import merged_result
        from registry.catalog import convert
        from registry.merging import find_merged

        v = self._version(ref, None)
        dt_ = _dtype(dtype)
        for dev in ([device] if device else ["cpu", "cuda"]):
            _key, hit = find_merged(self.registry, v["ref"], dtype=dt_, engine=engine, device=dev)
            if hit is not None and not (validate and "logits" not in (hit.validation or {})):
                with self.db.read() as s:
                    art = convert.merged(hit, v["ref"], s.get(M.BaseModelRow, hit.base_model_id))
                return queue.enqueue(self.db, "merge", {"ref": v["ref"], "requested": ref, "dtype": dt_,
                                                        "engine": engine, "device": device, "cached": True},
                                     state="succeeded", result=merged_result(art), actor=self.registry.actor)
        job = self.enqueue("merge", {"ref": v["ref"], "requested": ref, "dtype": dt_, "engine": engine,
                                     "validate": validate, "device": device},
                           unique_key=(f"merge:{v['digest']}:{v['base_fp']}:{dt_ or 'default'}:{engine}:"
                                       f"{device or 'any'}"))
        return self._follow(job, wait=wait, timeout=timeout, inline=inline, device=device or "cpu")

    def publish(self, ref: str, *, to: str, dtype: str | None = None, force: bool = False, engine: str = "auto",
                wait: bool = False, timeout: float | None = None, inline: bool = False,
                device: str = "cpu") -> T.Job:
        """Enqueue: merge if needed, then publish to `to` (dir:///path, s3://bucket/prefix,
        hf://org/repo[@revision]).

        Raises:
            PolicyViolation: no passing verification and no validated merge, and not `force`
            InvalidInput: the target is not understood
        """
        from registry.jobs.tasks import verified_by
        from registry.publish import parse_target

        parse_target(to)
        v = self._version(ref, None)
        dt_ = _dtype(dtype)
        if not force:
            with self.db.read() as s:
                ok = verified_by(s, v["id"], v["base_id"], None) or any(
                    ((m.validation or {}).get("logits") or {}).get("passed")
                    for m in s.scalars(select(M.MergedArtifact).where(M.MergedArtifact.version_id == v["id"])))
            if not ok:
                raise PolicyViolation(f"{v['ref']} has no passing verification; publishing needs a verified merge",
                                      ref=v["ref"], hint=f"run: adapter-registry verify {v['ref']} --wait "
                                                         "(or publish with --force)")
        job = self.enqueue("publish", {"ref": v["ref"], "requested": ref, "to": to, "dtype": dt_, "force": force,
                                       "engine": engine},
                           unique_key=f"publish:{v['digest']}:{dt_ or 'default'}:{to}")
        return self._follow(job, wait=wait, timeout=timeout, inline=inline, device=device)

    # -- helpers -------------------------------------------------------------------------------------
    def _follow(self, job: T.Job, *, wait: bool, timeout: float | None, inline: bool, device: str) -> T.Job:
        if inline and job.state == "queued":
            return self.run(job.id, device=device)
        return self.wait(job.id, timeout=timeout) if wait else job

    def _version(self, ref: str, base: str | None) -> dict[str, Any]:
        with self.db.read() as s:
            adapter, row = Q.get_version(s, parse_ref(ref))
            b = Q.get_base(s, base) if base else row.base_model
            if b is None:
                from registry.errors import BaseModelNotFound

                raise BaseModelNotFound(f"{ref} has no base model recorded; pass --base NAME")
            return {"ref": f"{adapter.name}@{row.version}", "id": row.id, "digest": row.content_digest,
                    "base": f"{b.name}@{b.fingerprint}", "base_id": b.id, "base_fp": b.fingerprint,
                    "base_dtype": b.dtype}


def _dtype(dtype: str | None) -> str | None:
    if dtype is None:
        return None
    from registry.merge import DTYPES

    key = str(dtype).removeprefix("torch.")
    if key not in DTYPES:
        raise InvalidInput(f"dtype must be one of bfloat16 (bf16), float16 (fp16), float32 (fp32), not {dtype!r}")
    return DTYPES[key]
