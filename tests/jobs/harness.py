"""Worker processes for the concurrency tests (started with multiprocessing spawn).

Each process appends the id of every job its task body runs to its own file, so the test can
count executions independently of what the queue says. `unsafe=True` swaps the claim for a
deliberately broken one (read, then update without any lock or re-check): the negative control
that proves the detector would see double claims.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _registry(db_url: str, home: str):
    from registry.app import Registry
    from registry.settings import Settings

    return Registry(Settings.from_env(env={}, home=Path(home), db=db_url, store=str(Path(home) / "store"),
                                      actor="harness"), upgrade=False)


def unsafe_claim(db, worker_id: str):
    """BROKEN ON PURPOSE: select a queued job, commit, then take it without checking it is still queued."""
    import datetime as dt

    from sqlalchemy import select, update

    from registry.catalog import convert
    from registry.catalog import models as M

    with db.read() as s:
        job_id = s.scalar(select(M.Job.id).where(M.Job.state == "queued").order_by(M.Job.id).limit(1))
    if job_id is None:
        return None
    time.sleep(0.001)  # the window a real scheduler hiccup would open
    now = dt.datetime.now(dt.timezone.utc)
    with db.write() as s:
        s.execute(update(M.Job).where(M.Job.id == job_id).values(
            state="running", attempt=M.Job.attempt + 1, worker_id=worker_id, started_at=now,
            lease_expires_at=now + dt.timedelta(seconds=60)).execution_options(synchronize_session=False))
        return convert.job(s.get(M.Job, job_id))


def drain(db_url: str, home: str, out: str, barrier, unsafe: bool = False) -> None:
    """Run `record` jobs until none is ready; log each execution to `out`."""
    from registry.jobs.worker import Worker

    reg = _registry(db_url, home)
    log = open(out, "a", buffering=1)

    def record(ctx, payload):
        log.write(f"{ctx.job.id}\n")
        return {"pid": os.getpid()}

    w = Worker(reg.core, kinds=["record"], tasks={"record": record}, poll_s=0.05, rescue_every_s=3600)
    barrier.wait(timeout=60)
    if not unsafe:
        w.run(once=True)
    else:
        from registry.jobs import queue

        queue.register_worker(reg.db, w.info())
        while (job := unsafe_claim(reg.db, w.id)) is not None:
            w.run_job(job)
    log.close()
    reg.close()
