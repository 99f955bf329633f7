"""`registry.jobs`: the queue as the Registry's sub-object (what the CLI and the HTTP API call).

    job = reg.jobs.verify("support-bot@3")             # enqueue; a worker runs it
    job = reg.jobs.wait(job.id)                        # follow it to its end
    reg.jobs.publish("support-bot@3", to="s3://b/p", dtype="bf16", wait=True, inline=True)
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from registry import dtypes
from registry import types as T
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog import queries as Q
from registry.catalog.rows import row
from registry.core import Core
from registry.enums import JobKind, JobState
from registry.errors import BaseModelNotFound, InvalidInput
from registry.jobs import queue
from registry.jobs.follow import wait_for
from registry.refs import parse_ref
from registry.tokens import read_prefix


class JobsAPI:
    """Durable jobs (verify, merge, publish) over the catalog database: `reg.jobs`.

    The job-kind methods only enqueue (after the same pre-checks the job itself makes, so a
    request the job would refuse is refused at once); workers run them (`run` and `work` make
    this process one).
    """

    def __init__(self, core: Core):
        self.core = core
        self.db = core.db

    # -- the queue ---------------------------------------------------------------------------------
    def enqueue(self, kind: str, payload: dict[str, Any] | None = None, *, unique_key: str | None = None,
                priority: int = 0, max_attempts: int = 3, run_after: dt.datetime | None = None) -> T.Job:
        """Add a job. With `unique_key`, a queued or running job with that key is returned instead
        (its `created` is False)."""
        return queue.enqueue(self.db, kind, dict(payload or {}), unique_key=unique_key, priority=priority,
                             max_attempts=max_attempts, run_after=run_after, actor=self.core.actor)
    def get(self, job_id: int) -> T.Job:
        """Raises JobNotFound (also for a job outside the namespace an HTTP caller's reads are narrowed to)."""
        return queue.get(self.db, job_id, prefix=read_prefix(self.core))

    def list(self, *, state: str | None = None, kind: str | None = None, limit: int = 50) -> builtins.list[T.Job]:
        """Newest first (with closed reads, a namespaced HTTP caller sees the jobs of its namespace only)."""
        return queue.list_jobs(self.db, state=state, kind=kind, limit=limit, prefix=read_prefix(self.core))

    def cancel(self, job_id: int) -> T.Job:
        """Cancel a queued job now, or ask a running one to stop (it stops at its next check)."""
        return queue.cancel(self.db, job_id)

    def retry(self, job_id: int) -> T.Job:
        """Queue a failed or cancelled job again (with one more attempt if it had used them all)."""
        return queue.retry(self.db, job_id)

    def workers(self, *, include_stopped: bool = False) -> builtins.list[T.WorkerInfo]:
        """Registered workers, most recently seen first."""
        return queue.list_workers(self.db, include_stopped=include_stopped)

    def wait(self, job_id: int, *, timeout: float | None = None, poll_s: float = 0.5,
             progress: Callable[[T.Job], None] | None = None) -> T.Job:
        """Poll until the job succeeded, failed or was cancelled. Raises JobTimeout."""
        return wait_for(self.get, job_id, timeout=timeout, poll_s=poll_s, progress=progress)

    def run(self, job_id: int, *, device: str = "cpu", **worker_options: Any) -> T.Job:
        """Run one queued job in this process (no worker needed) and return it finished."""
        from registry.jobs.worker import Worker

        w = Worker(self.core, device=device, **worker_options)
        queue.register_worker(self.db, w.info())
        try:
            job = queue.claim(self.db, w.id, lease_s=w.lease_s, only_id=job_id)
            if job is not None:
                w.run_job(job)
        finally:
            queue.touch_worker(self.db, w.id, state="stopped")
        return self.get(job_id)

    def work(self, *, device: str = "cpu", kinds: Iterable[str] | None = None, once: bool = True,
             max_jobs: int | None = None,
             **worker_options: Any) -> int:
        """Be a worker in this process (by default until nothing is ready); returns jobs run."""
        from registry.jobs.worker import Worker

        return Worker(self.core, device=device, kinds=kinds, **worker_options).run(once=once, max_jobs=max_jobs)

    # -- the job kinds ------------------------------------------------------------------------------
    def verify(self, ref: str, *, base: str | None = None, dtype: str | None = None, engine: str = "peft",
               wait: bool = False, timeout: float | None = None, inline: bool = False, device: str = "cpu") -> T.Job:
        """Enqueue a dynamic verification of a version (on its base, or `base`).

        One verify of the same version, base, dtype and engine at a time: a second call returns the
        first job. `engine` "peft" is the reference check; "vllm" or "llama.cpp" runs that serving
        engine (in its pinned environment on the worker) and compares its output with peft's.
        """
        from registry.workflows.verify import ENGINES

        if engine not in ENGINES:
            raise InvalidInput(f"unknown verify engine {engine!r}", hint="one of " + ", ".join(ENGINES))
        v = self._version(ref, base)
        dt_ = dtypes.optional(dtype)
        payload = {"ref": v["ref"], "requested": ref, "base": v["base"], "dtype": dt_}
        if engine != "peft":  # peft jobs keep the payload (and unique key) they always had
            payload["engine"] = engine
        key = f"verify:{v['digest']}:{v['base_fp']}:{dt_ or 'default'}" + (f":{engine}" if engine != "peft" else "")
        job = self.enqueue(JobKind.VERIFY, payload, unique_key=key)
        return self._follow(job, wait=wait, timeout=timeout, inline=inline, device=device)

    def merge_async(self, ref: str, *, dtype: str | None = None, engine: str = "auto", validate: bool = False,
                    device: str | None = None, wait: bool = False, timeout: float | None = None,
                    inline: bool = False) -> T.Job:
        """Enqueue a merge (on `device`, else on the device of the worker that takes it).

        When the merged artifact is already in the catalog, the job returned is already succeeded,
        with the artifact as its result; no worker is involved.
        """
        from registry.jobs.tasks import merged_result
        from registry.workflows.merge import find_cached

        v = self._version(ref, None)
        dt_ = dtypes.optional(dtype)
        payload = {"ref": v["ref"], "requested": ref, "dtype": dt_, "engine": engine, "device": device}
        for dev in ([device] if device else ["cpu", "cuda"]):
            hit = find_cached(self.core, v["ref"], dtype=dt_, engine=engine, device=dev, validated=validate)
            if hit is not None:
                with self.db.read() as s:
                    art = convert.merged(hit, v["ref"], row(s, M.BaseModelRow, hit.base_model_id))
                return queue.enqueue(self.db, JobKind.MERGE, {**payload, "cached": True}, state=JobState.SUCCEEDED,
                                     result=merged_result(art), actor=self.core.actor)
        job = self.enqueue(JobKind.MERGE, {**payload, "validate": validate},
                           unique_key=(f"merge:{v['digest']}:{v['base_fp']}:{dt_ or 'default'}:{engine}:"
                                       f"{device or 'any'}"))
        return self._follow(job, wait=wait, timeout=timeout, inline=inline, device=device or "cpu")

    def publish(self, ref: str, *, to: str, dtype: str | None = None, force: bool = False, engine: str = "auto",
                wait: bool = False, timeout: float | None = None, inline: bool = False,
                device: str = "cpu") -> T.Job:
        """Enqueue: merge if needed, then publish to `to` (dir:///path, s3://bucket/prefix,
        hf://org/repo[@revision]).

        Raises:
            PolicyViolation: the version is not verified against its base in the dtype it will be
                published in (registry/gates.py), and not `force`; the job would refuse the same
            InvalidInput: the target is not understood
        """
        from registry.workflows.publish import precheck

        t = precheck(self.core, ref, to=to, dtype=dtype, force=force)
        job = self.enqueue(JobKind.PUBLISH, {"ref": t.ref, "requested": ref, "to": to, "dtype": t.dtype,
                                             "force": force, "engine": engine},
                           unique_key=f"publish:{t.digest}:{t.dtype}:{to}")
        return self._follow(job, wait=wait, timeout=timeout, inline=inline, device=device)

    # -- helpers -------------------------------------------------------------------------------------
    def _follow(self, job: T.Job, *, wait: bool, timeout: float | None, inline: bool, device: str) -> T.Job:
        if inline and job.state == JobState.QUEUED:
            return self.run(job.id, device=device)
        return self.wait(job.id, timeout=timeout) if wait else job

    def _version(self, ref: str, base: str | None) -> dict[str, Any]:
        with self.db.read() as s:
            adapter, row = Q.get_version(s, parse_ref(ref))
            b = Q.get_base(s, base, namespace=Q.namespace_prefix(adapter.name)) if base else row.base_model
            if b is None:
                raise BaseModelNotFound(f"{ref} has no base model recorded; pass --base NAME")
            return {"ref": f"{adapter.name}@{row.version}", "id": row.id, "digest": row.content_digest,
                    "base": f"{b.name}@{b.fingerprint}", "base_id": b.id, "base_fp": b.fingerprint,
                    "base_dtype": b.dtype}
