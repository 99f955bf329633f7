"""What a task sees while it runs: the core (database, store, settings, actor), its job, progress
reporting and cooperative stops.

A task calls `ctx.progress(...)` (or `ctx.check()`) at natural points; both raise `StopTask` when
the job was cancelled, when the worker is shutting down past its grace period, or when the lease
was lost (the job was rescued and belongs to another attempt now). Stopping is cooperative: a
task that never checks runs to its end, and its late writes are fenced off by the queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from registry import types as T
from registry.core import Core
from registry.errors import StopTask
from registry.jobs.queue import Effects

if TYPE_CHECKING:  # pragma: no cover
    from registry.verify.cache import ModelCache

__all__ = ["StopTask", "Task", "TaskContext"]


class TaskContext:
    """Handed to every task as its first argument."""

    def __init__(self, core: Core, job: T.Job, *, device: str = "cpu",
                 models: Callable[[], ModelCache] | None = None, throttle_s: float = 0.0):
        self.core = core
        self.job = job
        self.device = device
        self._models = models
        self._throttle_s = throttle_s
        self._stop: str | None = None
        self._lock = threading.Lock()
        self._progress: dict[str, Any] | None = None
        self._progress_seq = 0
        self.effects: list[Effects] = []

    # -- called by the task --------------------------------------------------------------------
    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def models(self) -> ModelCache:
        """The worker's base-model cache (a registry.verify.cache.ModelCache)."""
        if self._models is None:
            from registry.verify.cache import ModelCache

            cache = ModelCache(device=self.device)
            self._models = lambda: cache
        return self._models()

    def progress(self, stage: str, done: int = 0, total: int = 0) -> None:
        """Report progress (stored with the next heartbeat) and stop here if asked to."""
        with self._lock:
            self._progress = {"stage": stage, "done": done, "total": total, "at": time.time()}
            self._progress_seq += 1
        if self._throttle_s:
            time.sleep(self._throttle_s)
        self.check()

    def check(self) -> None:
        """Raise StopTask if the job should stop now."""
        if self._stop is not None:
            raise StopTask(self._stop)

    def on_finish(self, effect: Effects) -> None:
        """Run `effect(session)` in the transaction that marks the job succeeded, if the lease holds.

        This is how a task makes its catalog write conditional: a rescued worker's late finish
        applies nothing.
        """
        self.effects.append(effect)

    # -- called by the worker's heartbeat thread -----------------------------------------------
    def request_stop(self, why: str) -> None:
        if self._stop is None or why == "lost":
            self._stop = why

    @property
    def stop_reason(self) -> str | None:
        return self._stop

    def take_progress(self, since: int) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            if self._progress is None or self._progress_seq == since:
                return self._progress_seq, None
            return self._progress_seq, dict(self._progress)


Task = Callable[[TaskContext, dict[str, Any]], "dict[str, Any] | None"]
