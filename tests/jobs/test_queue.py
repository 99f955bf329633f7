"""The queue's SQL on SQLite and PostgreSQL: claims, guards, rescue, uniqueness, cancel and retry."""

from __future__ import annotations

import datetime as dt

import pytest

from registry.errors import Conflict, JobNotFound
from registry.jobs import queue
from registry.jobs.retry import RetryPolicy

LATER = dt.timedelta(seconds=3600)


def lease(job, worker):
    return queue.Lease(job.id, job.attempt, worker)


def test_second_enqueue_with_same_unique_key_returns_the_active_job(registry):
    a = registry.jobs.enqueue("noop", {"x": 1}, unique_key="merge:abc:bf16")
    b = registry.jobs.enqueue("noop", {"x": 2}, unique_key="merge:abc:bf16")
    assert a.created and not b.created and a.id == b.id and b.payload == {"x": 1}
    queue.claim(registry.db, "w")  # still the same while it runs
    assert registry.jobs.enqueue("noop", {}, unique_key="merge:abc:bf16").id == a.id


def test_unique_key_is_free_again_once_the_job_finished(registry):
    a = registry.jobs.enqueue("noop", {}, unique_key="k")
    job = queue.claim(registry.db, "w")
    assert queue.finish(registry.db, lease(job, "w"), {})
    b = registry.jobs.enqueue("noop", {}, unique_key="k")
    assert b.created and b.id != a.id


def test_claim_takes_highest_priority_first_then_oldest(registry):
    low = registry.jobs.enqueue("noop", {}, priority=0)
    high = registry.jobs.enqueue("noop", {}, priority=5)
    low2 = registry.jobs.enqueue("noop", {}, priority=0)
    got = [queue.claim(registry.db, "w").id for _ in range(3)]
    assert got == [high.id, low.id, low2.id]
    assert queue.claim(registry.db, "w") is None


def test_claim_skips_jobs_not_ready_yet_and_kinds_not_asked_for(registry):
    registry.jobs.enqueue("noop", {}, run_after=queue.utcnow() + LATER)
    other = registry.jobs.enqueue("sleep", {})
    assert queue.claim(registry.db, "w", kinds=["noop"]) is None
    job = queue.claim(registry.db, "w", kinds=["sleep"])
    assert job.id == other.id and job.state == "running" and job.attempt == 1 and job.worker_id == "w"


def test_late_finish_by_a_rescued_worker_changes_nothing(registry):
    registry.jobs.enqueue("noop", {}, max_attempts=3)
    first = queue.claim(registry.db, "A", lease_s=1)
    later = queue.utcnow() + dt.timedelta(seconds=5)
    assert queue.rescue(registry.db, now=later, policy=RetryPolicy(base_s=0, jitter=0)) == [(first.id, "queued")]
    second = queue.claim(registry.db, "B", now=later)
    assert second.attempt == 2
    # A wakes up and reports: every write it tries is fenced off by the attempt guard
    assert not queue.finish(registry.db, lease(first, "A"), {"by": "A"})
    assert queue.fail(registry.db, lease(first, "A"), "late", retryable=True) is None
    assert not queue.heartbeat(registry.db, lease(first, "A"), lease_s=60).alive
    assert queue.finish(registry.db, lease(second, "B"), {"by": "B"})
    done = registry.jobs.get(first.id)
    assert done.state == "succeeded" and done.result == {"by": "B"} and done.attempt == 2


def test_rescue_retries_an_expired_lease_then_fails_after_max_attempts(registry):
    job = registry.jobs.enqueue("noop", {}, max_attempts=2)
    t = queue.utcnow()
    for attempt, expected in ((1, "queued"), (2, "failed")):
        got = queue.claim(registry.db, f"w{attempt}", lease_s=10, now=t)
        assert got.attempt == attempt
        assert queue.rescue(registry.db, now=t + dt.timedelta(seconds=5)) == []  # lease still valid
        t += dt.timedelta(seconds=11)
        assert queue.rescue(registry.db, now=t, policy=RetryPolicy(base_s=0, jitter=0)) == [(job.id, expected)]
    final = registry.jobs.get(job.id)
    assert final.state == "failed" and len(final.errors) == 2 and "lease expired" in final.error


def test_rescue_of_a_job_whose_cancel_was_requested_cancels_it(registry):
    job = registry.jobs.enqueue("noop", {})
    queue.claim(registry.db, "w", lease_s=1)
    registry.jobs.cancel(job.id)
    assert queue.rescue(registry.db, now=queue.utcnow() + dt.timedelta(seconds=2)) == [(job.id, "cancelled")]


def test_failed_attempt_backs_off_and_is_not_claimable_before_run_after(registry):
    job = registry.jobs.enqueue("noop", {}, max_attempts=2)
    t = queue.utcnow()
    got = queue.claim(registry.db, "w", now=t)
    state = queue.fail(registry.db, lease(got, "w"), "boom", retryable=True, now=t,
                       policy=RetryPolicy(base_s=30, jitter=0))
    assert state == "queued"
    assert queue.aware(registry.jobs.get(job.id).run_after) == t + dt.timedelta(seconds=30)
    assert queue.claim(registry.db, "w", now=t + dt.timedelta(seconds=29)) is None
    again = queue.claim(registry.db, "w", now=t + dt.timedelta(seconds=31))
    assert again.attempt == 2
    assert queue.fail(registry.db, lease(again, "w"), "boom", retryable=True) == "failed"


def test_heartbeat_extends_the_lease_and_reports_a_cancel_request(registry):
    job = registry.jobs.enqueue("noop", {})
    got = queue.claim(registry.db, "w", lease_s=1)
    assert queue.heartbeat(registry.db, lease(got, "w"), lease_s=60, progress={"stage": "x"}).alive
    assert queue.rescue(registry.db, now=queue.utcnow() + dt.timedelta(seconds=5)) == []
    registry.jobs.cancel(job.id)
    beat = queue.heartbeat(registry.db, lease(got, "w"), lease_s=60)
    assert beat.alive and beat.cancel_requested
    assert registry.jobs.get(job.id).progress == {"stage": "x"}


def test_cancel_of_a_queued_job_is_immediate_and_of_a_finished_job_refused(registry):
    job = registry.jobs.enqueue("noop", {})
    assert registry.jobs.cancel(job.id).state == "cancelled"
    assert queue.claim(registry.db, "w") is None
    done = registry.jobs.enqueue("noop", {})
    queue.finish(registry.db, lease(queue.claim(registry.db, "w"), "w"), {})
    with pytest.raises(Conflict):
        registry.jobs.cancel(done.id)
    with pytest.raises(JobNotFound):
        registry.jobs.cancel(10_000)


def test_retry_requeues_a_failed_job_with_one_more_attempt(registry):
    job = registry.jobs.enqueue("noop", {}, max_attempts=1)
    got = queue.claim(registry.db, "w")
    assert queue.fail(registry.db, lease(got, "w"), "boom", retryable=True) == "failed"
    again = registry.jobs.retry(job.id)
    assert again.state == "queued" and again.max_attempts == 2
    assert queue.claim(registry.db, "w").attempt == 2
    with pytest.raises(Conflict):
        registry.jobs.retry(job.id)  # running


def test_retry_refuses_when_another_job_holds_the_unique_key(registry):
    old = registry.jobs.enqueue("noop", {}, unique_key="k")
    registry.jobs.cancel(old.id)
    registry.jobs.enqueue("noop", {}, unique_key="k")
    with pytest.raises(Conflict):
        registry.jobs.retry(old.id)


def test_hand_back_returns_the_job_without_using_an_attempt(registry):
    job = registry.jobs.enqueue("noop", {})
    got = queue.claim(registry.db, "w")
    assert queue.hand_back(registry.db, lease(got, "w"))
    back = registry.jobs.get(job.id)
    assert back.state == "queued" and back.attempt == 0 and back.worker_id is None


def test_list_filters_by_state_and_kind_newest_first(registry):
    a = registry.jobs.enqueue("noop", {})
    b = registry.jobs.enqueue("sleep", {})
    c = registry.jobs.enqueue("noop", {})
    registry.jobs.cancel(c.id)
    assert [j.id for j in registry.jobs.list()] == [c.id, b.id, a.id]
    assert [j.id for j in registry.jobs.list(kind="noop", state="queued")] == [a.id]
