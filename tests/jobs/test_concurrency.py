"""Acceptance: real worker processes against one SQLite file or one PostgreSQL database."""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections import Counter

import pytest

from tests.factories import drain, start_worker, wait_for

JOBS, WORKERS = 500, 4


def _drain_with(registry, tmp_path, *, unsafe: bool, jobs: int = JOBS) -> Counter:
    with registry.db.write() as s:  # one bulk insert: the test is about claiming, not enqueueing
        from registry.catalog import models as M

        s.add_all([M.Job(kind="record", payload={"i": i}) for i in range(jobs)])
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    outs = [tmp_path / f"ran-{i}.txt" for i in range(WORKERS)]
    procs = [ctx.Process(target=drain, args=(registry.settings.db_url, str(registry.settings.home), str(o), barrier,
                                             unsafe)) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return Counter(int(line) for o in outs if o.exists() for line in o.read_text().split())


@pytest.mark.slow
def test_four_workers_drain_500_jobs_each_run_exactly_once(registry, tmp_path):
    runs = _drain_with(registry, tmp_path, unsafe=False)
    assert len(runs) == JOBS and set(runs.values()) == {1}, [j for j, n in runs.items() if n > 1][:10]
    jobs = registry.jobs.list(limit=JOBS + 10)
    assert Counter(j.state for j in jobs) == {"succeeded": JOBS}
    assert {j.attempt for j in jobs} == {1}


@pytest.mark.slow
def test_unsafe_claim_without_locking_is_caught_double_claiming(registry, tmp_path):
    """The negative control: the same harness and detector catch a claim that does not lock."""
    runs = _drain_with(registry, tmp_path, unsafe=True, jobs=100)
    doubles = [j for j, n in runs.items() if n > 1]
    assert doubles, "the detector saw no double claim from the unsafe protocol"


@pytest.fixture
def pg_registry(migrated_pg_url, settings_for):
    """PostgreSQL only: on SQLite the same path is covered by test_merge_rescue.py."""
    from registry.app import Registry

    reg = Registry(settings_for(migrated_pg_url))
    yield reg
    reg.close()


def test_worker_killed_with_sigkill_has_its_job_rescued_and_completed_by_another(pg_registry):
    registry = pg_registry
    job = registry.jobs.enqueue("sleep", {"seconds": 1.5})
    a = start_worker(registry.settings, "--lease", "1.5", "--heartbeat", "0.3", "--poll", "0.1")
    try:
        wait_for(lambda: registry.jobs.get(job.id).state == "running", timeout=30, what="worker A to claim")
        wait_for(lambda: registry.jobs.get(job.id).progress, timeout=10, what="progress")
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
    assert registry.jobs.get(job.id).state == "running"  # nobody knows yet: the lease still runs
    b = start_worker(registry.settings, "--lease", "5", "--poll", "0.1", "--rescue-every", "0.2",
                     "--retry-base", "0.1")
    try:
        done = wait_for(lambda: (j := registry.jobs.get(job.id)).state == "succeeded" and j, timeout=40,
                        what="worker B to rescue and finish the job")
    finally:
        b.kill()
        b.wait(timeout=10)
    assert done.attempt == 2 and done.worker_id != job.worker_id
    assert "lease expired" in done.errors[0]["error"] and done.errors[0]["attempt"] == 1


def test_cancelled_running_job_stops_and_worker_goes_on(sqlite_registry):
    registry = sqlite_registry
    job = registry.jobs.enqueue("sleep", {"seconds": 60})
    w = start_worker(registry.settings, "--heartbeat", "0.2", "--poll", "0.1")
    try:
        wait_for(lambda: registry.jobs.get(job.id).state == "running", timeout=30, what="claim")
        assert registry.jobs.cancel(job.id).cancel_requested
        stopped = wait_for(lambda: (j := registry.jobs.get(job.id)).state == "cancelled" and j, timeout=10,
                           what="the job to stop")
        assert stopped.attempt == 1
        nxt = registry.jobs.enqueue("noop", {})
        wait_for(lambda: registry.jobs.get(nxt.id).state == "succeeded", timeout=10, what="the next job")
    finally:
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=15) == 0


def test_sigterm_hands_the_running_job_back_after_the_grace_period(sqlite_registry):
    registry = sqlite_registry
    job = registry.jobs.enqueue("sleep", {"seconds": 60})
    w = start_worker(registry.settings, "--heartbeat", "0.2", "--poll", "0.1", "--grace", "0.5")
    try:
        wait_for(lambda: registry.jobs.get(job.id).state == "running", timeout=30, what="claim")
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=15) == 0
    finally:
        w.kill()
    back = registry.jobs.get(job.id)
    assert back.state == "queued" and back.attempt == 0 and back.worker_id is None
    assert [x.state for x in registry.jobs.workers(include_stopped=True)] == ["stopped"]
