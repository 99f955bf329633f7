"""A worker process: register, then loop: rescue expired leases, claim a job, run it, report.

While a task runs, a heartbeat thread extends the lease, stores progress, and turns a cancel
request (or a lost lease) into a cooperative stop. SIGTERM (or SIGINT) stops the loop: the
current job may finish within `grace_s`, after which it is asked to stop and is handed back to
the queue without using up an attempt; a second signal asks at once. torch is not imported here:
only the tasks that need it import it, when they run.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from registry import types as T
from registry.core import Core
from registry.errors import InvalidInput, StopTask
from registry.jobs import queue
from registry.jobs.context import Task, TaskContext
from registry.jobs.retry import RetryPolicy, is_retryable
from registry.jobs.tasks import BUILTIN
from registry.versions import library_versions

if TYPE_CHECKING:  # pragma: no cover
    from registry.verify.cache import ModelCache

log = logging.getLogger("registry.jobs")


class Worker:
    """Runs jobs from the catalog's queue with one Core on one device."""

    def __init__(self, core: Core, *, device: str = "cpu", kinds: Iterable[str] | None = None,
                 tasks: dict[str, Task] | None = None, lease_s: float = 60.0, heartbeat_s: float | None = None,
                 poll_s: float = 1.0, rescue_every_s: float = 5.0, retry: RetryPolicy = RetryPolicy(),
                 grace_s: float = 30.0, cache_bytes: int | None = None, cache_enabled: bool = True,
                 worker_id: str | None = None, throttle_s: float = 0.0):
        self.core = core
        self.db = core.db
        self.device = device
        self.tasks = {**BUILTIN, **(tasks or {})}
        self.kinds = sorted(set(kinds) if kinds else set(self.tasks))
        unknown = [k for k in self.kinds if k not in self.tasks]
        if unknown:
            raise InvalidInput(f"unknown job kinds: {', '.join(unknown)} (known: {', '.join(sorted(self.tasks))})")
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s or lease_s / 4
        self.poll_s = poll_s
        self.rescue_every_s = rescue_every_s
        self.retry = retry
        self.grace_s = grace_s
        self.throttle_s = throttle_s
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._cache_bytes, self._cache_enabled = cache_bytes, cache_enabled
        self._models: ModelCache | None = None
        self._stop_at: float | None = None  # monotonic deadline after which the running job is stopped
        self._wake = threading.Event()
        self._last_rescue = 0.0
        self.jobs_run = 0

    # -- life cycle ---------------------------------------------------------------------------------
    def run(self, *, once: bool = False, max_jobs: int | None = None) -> int:
        """Work until stopped; `once`: until nothing is ready; `max_jobs`: at most that many jobs."""
        queue.register_worker(self.db, self.info())
        log.info("worker %s on %s, kinds %s", self.id, self.device, ",".join(self.kinds))
        try:
            while self._stop_at is None and (max_jobs is None or self.jobs_run < max_jobs):
                try:
                    self.sweep()
                    job = queue.claim(self.db, self.id, kinds=self.kinds, lease_s=self.lease_s)
                except OperationalError as e:  # the database is away: wait, the loop goes on
                    log.warning("queue unavailable: %s", str(e).splitlines()[0])
                    self._wake.wait(self.poll_s * 5)
                    continue
                if job is None:
                    if once:
                        break
                    self._wake.wait(self.poll_s * (0.5 + random.random()))  # jitter: workers do not poll in step
                    continue
                self.run_job(job)
        finally:
            queue.touch_worker(self.db, self.id, state="stopped")
        return self.jobs_run

    def request_stop(self, *, now: bool = False) -> None:
        """Stop after the current job (or after `grace_s`; with `now`, at the job's next check)."""
        deadline = time.monotonic() + (0 if now or self._stop_at is not None else self.grace_s)
        self._stop_at = deadline if self._stop_at is None else min(self._stop_at, deadline)
        self._wake.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT: graceful stop; the second one: stop the current job at once."""

        def handler(signum: int, _frame: object) -> None:
            log.warning("signal %s: stopping%s", signum, " now" if self._stop_at is not None else "")
            self.request_stop(now=self._stop_at is not None)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def sweep(self) -> None:
        """The rescue sweep, at most every `rescue_every_s` per worker."""
        if time.monotonic() - self._last_rescue < self.rescue_every_s:
            return
        self._last_rescue = time.monotonic()
        for job_id, state in queue.rescue(self.db, policy=self.retry):
            log.warning("job %s: lease expired, now %s", job_id, state)

    @property
    def models(self) -> ModelCache:
        if self._models is None:
            from registry.verify.cache import ModelCache

            self._models = ModelCache(device=self.device, max_bytes=self._cache_bytes, enabled=self._cache_enabled)
        return self._models

    # -- one job ------------------------------------------------------------------------------------
    def run_job(self, job: T.Job) -> str:
        """Run a claimed job to its end; returns what became of it (a state, or "lost")."""
        lease = queue.Lease(job.id, job.attempt, self.id)
        ctx = TaskContext(self.core, job, device=self.device, models=lambda: self.models,
                          throttle_s=float(job.payload.get("throttle_s", 0)) or self.throttle_s)
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(ctx, lease, done), daemon=True, name=f"heartbeat-{job.id}")
        beat.start()
        t0 = time.monotonic()
        try:
            result = self.tasks[job.kind](ctx, dict(job.payload)) or {}
            effects = ctx.effects

            def apply(s: Session) -> None:
                for e in effects:
                    e(s)

            outcome = "succeeded" if queue.finish(self.db, lease, result, effects=apply) else "lost"
        except StopTask as e:
            if e.why == "cancelled":
                outcome = "cancelled" if queue.stop_cancelled(self.db, lease) else "lost"
            elif e.why == "stopping":
                outcome = "handed back" if queue.hand_back(self.db, lease) else "lost"
            else:
                outcome = "lost"
        except Exception as e:  # the task failed: record it, the retry policy decides what next
            log.debug("job %s failed:\n%s", job.id, traceback.format_exc())
            outcome = queue.fail(self.db, lease, _describe(e), retryable=is_retryable(e), policy=self.retry) or "lost"
        finally:
            done.set()
            beat.join()
        if outcome == "lost":  # the guarded writes above did nothing, the worker's row included
            queue.touch_worker(self.db, self.id, state="idle")
        self.jobs_run += 1
        log.info("job %s (%s, attempt %s): %s in %.2fs", job.id, job.kind, job.attempt, outcome, time.monotonic() - t0)
        return outcome

    def _beat(self, ctx: TaskContext, lease: queue.Lease, done: threading.Event) -> None:
        seq, last = 0, time.monotonic()
        tick = min(self.heartbeat_s, 0.5)
        while not done.wait(tick):
            now = time.monotonic()
            if self._stop_at is not None and now >= self._stop_at:
                ctx.request_stop("stopping")
            new_seq, progress = ctx.take_progress(seq)
            if now - last < self.heartbeat_s and (progress is None or now - last < 1.0):
                continue
            try:
                b = queue.heartbeat(self.db, lease, lease_s=self.lease_s, progress=progress)
            except Exception as e:  # a database blip: the lease still runs for a while, try again
                log.warning("job %s: heartbeat failed: %s", lease.job_id, e)
                continue
            seq, last = new_seq, now
            if not b.alive:
                log.warning("job %s: lease lost (rescued by another worker)", lease.job_id)
                ctx.request_stop("lost")
            elif b.cancel_requested:
                ctx.request_stop("cancelled")

    # -- registration --------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        gpu_name, gpu_mem = _gpu(self.device)
        return dict(id=self.id, host=socket.gethostname(), pid=os.getpid(), device=self.device, gpu_name=gpu_name,
                    gpu_memory=gpu_mem, kinds=list(self.kinds), versions=library_versions(), current_job_id=None)


def _describe(e: BaseException) -> str:
    msg = getattr(e, "message", None) or str(e)
    return f"{type(e).__name__}: {msg}"


def _gpu(device: str) -> tuple[str | None, int | None]:
    """GPU name and memory from nvidia-smi, so that registering does not import torch."""
    if not device.startswith("cuda"):
        return None, None
    idx = device.partition(":")[2] or "0"
    try:
        out = subprocess.run(["nvidia-smi", "-i", idx, "--query-gpu=name,memory.total",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
        name, mem = out.stdout.strip().splitlines()[0].rsplit(",", 1)
        return name.strip(), int(float(mem)) * 1024 * 1024
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None, None
