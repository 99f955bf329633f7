"""Following a job to its end: one loop for the local queue and for the HTTP client.

Pure polling over a `get(job_id)` function, so `registry.Client` can use it without importing
the queue (or SQLAlchemy).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from registry import types as T
from registry.enums import JobState
from registry.errors import JobTimeout


def wait_for(get: Callable[[int], T.Job], job_id: int, *, timeout: float | None = None, poll_s: float = 0.5,
             progress: Callable[[T.Job], None] | None = None) -> T.Job:
    """Poll `get(job_id)` until the job succeeded, failed or was cancelled.

    Raises:
        JobTimeout: `timeout` seconds passed first (the job goes on)
    """
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        job = get(job_id)
        if progress:
            progress(job)
        if JobState(job.state).terminal:
            return job
        if end is not None and time.monotonic() >= end:
            raise JobTimeout(f"job {job_id} is still {job.state} after {timeout:g}s", job_id=job_id,
                             hint=f"follow it with: adapter-registry jobs show {job_id}")
        time.sleep(poll_s)
