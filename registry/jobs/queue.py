"""The job queue in the catalog database: enqueue, claim, heartbeat, finish, fail, rescue.

Every statement that decides who owns a job is in this module. Two rules make it safe with any
number of workers on any number of machines sharing one database:

1. A claim is ONE statement that picks and takes a row (see `claim`): on PostgreSQL the pick
   locks the row with FOR UPDATE SKIP LOCKED, so two workers can never pick the same row; on
   SQLite the write transaction begins IMMEDIATE, so claims run one at a time.
2. Every later write by a worker (heartbeat, finish, fail, cancel, hand back) is guarded by
   (id, attempt, worker_id, state='running'). When a job is rescued from a lost worker its
   attempt changes, so a late write from the old worker matches no row and changes nothing.

Times are UTC from the caller's clock (`now`); leases are tens of seconds, so clocks synchronised
by NTP are close enough, and tests can pass `now` to step through time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry import types as T
from registry.catalog import convert
from registry.catalog import models as M
from registry.catalog.rows import row as need
from registry.db import Database
from registry.enums import ACTIVE_STATES, JobState
from registry.errors import Conflict, InvalidInput, JobNotFound
from registry.jobs.retry import RetryPolicy, decide

J = M.Job
ACTIVE = ACTIVE_STATES
STATES = tuple(JobState)
# Must be the predicate of ix_jobs_unique_active, word for word, so ON CONFLICT can infer it.
ACTIVE_PREDICATE = "state IN ('queued', 'running')"
MAX_ERRORS_KEPT = 20

Effects = Callable[[Session], None]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def aware(t: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return t.replace(tzinfo=dt.timezone.utc) if t is not None and t.tzinfo is None else t


@dataclass(frozen=True)
class Lease:
    """What a worker holds while it runs a job: the guard of all its later writes."""

    job_id: int
    attempt: int
    worker_id: str


@dataclass(frozen=True)
class Beat:
    """The answer to a heartbeat: `alive` False means the job is no longer ours (rescued)."""

    alive: bool
    cancel_requested: bool = False


# -- enqueue -----------------------------------------------------------------------------------
def enqueue(db: Database, kind: str, payload: dict[str, Any], *, unique_key: str | None = None, priority: int = 0,
            max_attempts: int = 3, run_after: dt.datetime | None = None, actor: str = "",
            state: str = JobState.QUEUED, result: dict[str, Any] | None = None) -> T.Job:
    """Insert a job; with `unique_key`, return the queued or running job holding that key instead.

    The partial unique index ix_jobs_unique_active makes the check race-free: two enqueues of
    the same key at once cannot both insert, and the loser reads the winner's row.
    """
    if not kind or len(kind) > 50:
        raise InvalidInput(f"invalid job kind {kind!r}")
    if max_attempts < 1:
        raise InvalidInput("max_attempts must be at least 1")
    now = utcnow()
    values = dict(kind=kind, payload=payload, state=state, priority=priority, attempt=0, max_attempts=max_attempts,
                  run_after=run_after or now, unique_key=unique_key, created_at=now, created_by=actor, errors=[],
                  cancel_requested=False, result=result, finished_at=now if state == JobState.SUCCEEDED else None)
    for _ in range(5):
        with db.write() as s:
            if unique_key is None or state not in ACTIVE:
                row = M.Job(**values)
                s.add(row)
                s.flush()
                return convert.job(row, created=True)
            ins = (sqlite.insert if db.sqlite else postgresql.insert)(J)
            new_id = s.scalar(ins.values(values).on_conflict_do_nothing(
                index_elements=["unique_key"], index_where=text(ACTIVE_PREDICATE)).returning(J.id))
            if new_id is not None:
                return convert.job(need(s, J, new_id), created=True)
            held = s.scalar(select(J).where(J.unique_key == unique_key, J.state.in_(ACTIVE)))
            if held is not None:
                return convert.job(held, created=False)
        # The holder finished between our insert and our read: the key is free again; try again.
    raise Conflict(f"could not enqueue {kind} job {unique_key!r}: the key keeps changing hands")


# -- claim -------------------------------------------------------------------------------------
def claim(db: Database, worker_id: str, *, kinds: Iterable[str] | None = None, lease_s: float = 60.0,
          now: dt.datetime | None = None, only_id: int | None = None) -> T.Job | None:
    """Take the next ready job (highest priority, then oldest run_after) for `worker_id`.

    The pick and the take are one UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING:
    - PostgreSQL: the sub-select is an InitPlan run once; FOR UPDATE locks the row it returns and
      SKIP LOCKED makes a concurrent claimer skip to the next row instead of waiting for ours (and
      then finding it taken). The outer `state = 'queued'` re-check is belt and braces.
    - SQLite: no row locks, but `db.write()` begins the transaction IMMEDIATE, which takes the
      database's one write lock before the sub-select reads, so no two claims interleave.
    `only_id` claims that job or nothing (running one job in-process). Returns None when nothing is ready.
    """
    now = now or utcnow()
    pick = select(J.id).where(J.state == JobState.QUEUED, J.run_after <= now)
    kinds = list(kinds or ())
    if kinds:
        pick = pick.where(J.kind.in_(kinds))
    if only_id is not None:
        pick = pick.where(J.id == only_id)
    pick = pick.order_by(J.priority.desc(), J.run_after, J.id).limit(1)
    if not db.sqlite:
        pick = pick.with_for_update(skip_locked=True)
    stmt = (update(J).where(J.id == pick.scalar_subquery(), J.state == JobState.QUEUED)
            .values(state=JobState.RUNNING, attempt=J.attempt + 1, worker_id=worker_id, started_at=now,
                    heartbeat_at=now,
                    lease_expires_at=now + dt.timedelta(seconds=lease_s), progress=None)
            .returning(J).execution_options(synchronize_session=False))
    with db.write() as s:
        row = s.scalars(stmt).first()
        if row is None:
            return None
        _set_worker(s, worker_id, "busy", row.id, now)  # bookkeeping in the same transaction: no extra commit
        return convert.job(row)


def _set_worker(s: Session, worker_id: str | None, state: str, job_id: int | None, now: dt.datetime) -> None:
    if worker_id:
        s.execute(update(M.Worker).where(M.Worker.id == worker_id)
                  .values(state=state, current_job_id=job_id, last_seen=now)
                  .execution_options(synchronize_session=False))


# -- while running -----------------------------------------------------------------------------
def _guard(lease: Lease) -> tuple[ColumnElement[bool], ...]:
    return (J.id == lease.job_id, J.attempt == lease.attempt, J.worker_id == lease.worker_id,
            J.state == JobState.RUNNING)


def heartbeat(db: Database, lease: Lease, *, lease_s: float, progress: dict[str, Any] | None = None,
              now: dt.datetime | None = None) -> Beat:
    """Extend the lease (and store progress); tells whether the job is still ours and if cancel was asked."""
    now = now or utcnow()
    values: dict[str, Any] = dict(heartbeat_at=now, lease_expires_at=now + dt.timedelta(seconds=lease_s))
    if progress is not None:
        values["progress"] = progress
    stmt = (update(J).where(*_guard(lease)).values(**values).returning(J.cancel_requested)
            .execution_options(synchronize_session=False))
    with db.write() as s:
        got = s.execute(stmt).first()
        s.execute(update(M.Worker).where(M.Worker.id == lease.worker_id).values(last_seen=now)
                  .execution_options(synchronize_session=False))
    return Beat(False) if got is None else Beat(True, bool(got[0]))


def _locked_row(s: Session, db: Database, lease: Lease) -> M.Job | None:
    q = select(J).where(*_guard(lease))
    return s.scalar(q if db.sqlite else q.with_for_update())


def finish(db: Database, lease: Lease, result: dict[str, Any] | None, *, effects: Effects | None = None,
           now: dt.datetime | None = None) -> bool:
    """Mark the job succeeded, and apply `effects` (catalog writes) in the same transaction.

    Both happen only if the lease still holds, so a rescued worker's late finish writes nothing.
    Returns whether it did.
    """
    with db.write() as s:
        row = _locked_row(s, db, lease)
        if row is None:
            return False
        if effects is not None:
            effects(s)
        now = now or utcnow()
        row.state, row.result, row.error = JobState.SUCCEEDED, result, None
        row.finished_at, row.lease_expires_at = now, None
        _set_worker(s, lease.worker_id, "idle", None, now)
        return True


def fail(db: Database, lease: Lease, error: str, *, retryable: bool, policy: RetryPolicy = RetryPolicy(),
         now: dt.datetime | None = None) -> str | None:
    """Record a failed attempt: back to queued after a backoff, or failed for good.

    Returns the new state, or None when the lease no longer holds (nothing written).
    """
    now = now or utcnow()
    with db.write() as s:
        row = _locked_row(s, db, lease)
        if row is None:
            return None
        d = decide(row.attempt, row.max_attempts, retryable=retryable, now=now, policy=policy)
        _record_error(row, error, now, d.reason)
        if d.retry:
            row.state, row.run_after = JobState.QUEUED, d.run_after or now
        else:
            row.state, row.finished_at = JobState.FAILED, now
        row.worker_id, row.lease_expires_at = None, None
        _set_worker(s, lease.worker_id, "idle", None, now)
        return row.state


def stop_cancelled(db: Database, lease: Lease, *, now: dt.datetime | None = None) -> bool:
    """The worker saw cancel_requested and stopped: running -> cancelled."""
    with db.write() as s:
        row = _locked_row(s, db, lease)
        if row is None:
            return False
        now = now or utcnow()
        row.state, row.finished_at, row.lease_expires_at = JobState.CANCELLED, now, None
        row.error = "cancelled while running"
        _set_worker(s, lease.worker_id, "idle", None, now)
        return True


def hand_back(db: Database, lease: Lease, *, now: dt.datetime | None = None) -> bool:
    """A worker stopping gracefully returns its job: running -> queued, the attempt not counted."""
    with db.write() as s:
        row = _locked_row(s, db, lease)
        if row is None:
            return False
        now = now or utcnow()
        row.state, row.attempt, row.run_after = JobState.QUEUED, row.attempt - 1, now
        row.worker_id, row.lease_expires_at, row.progress = None, None, None
        _set_worker(s, lease.worker_id, "idle", None, now)
        return True


def _record_error(row: M.Job, error: str, now: dt.datetime, outcome: str) -> None:
    row.error = error
    entry = {"at": now.isoformat(), "attempt": row.attempt, "worker": row.worker_id, "error": error[:4000],
             "outcome": outcome}
    row.errors = (list(row.errors or []) + [entry])[-MAX_ERRORS_KEPT:]  # a new list, so the ORM sees the change


# -- rescue --------------------------------------------------------------------------------------
def rescue(db: Database, *, policy: RetryPolicy = RetryPolicy(), now: dt.datetime | None = None,
           limit: int = 100) -> list[tuple[int, str]]:
    """Requeue (or fail, or cancel) running jobs whose lease expired: their worker is gone.

    Every worker runs this in its loop; on PostgreSQL SKIP LOCKED lets two sweeps split the work.
    A rescued job gets the normal retry backoff; its old worker's late writes are fenced off by
    the attempt guard. Returns [(job id, new state)].
    """
    now = now or utcnow()
    q = select(J).where(J.state == JobState.RUNNING, J.lease_expires_at < now).order_by(J.id).limit(limit)
    out: list[tuple[int, str]] = []
    with db.write() as s:
        for row in s.scalars(q if db.sqlite else q.with_for_update(skip_locked=True)):
            msg = f"lease expired: worker {row.worker_id} stopped heartbeating"
            if row.cancel_requested:
                _record_error(row, msg, now, JobState.CANCELLED)
                row.state, row.finished_at = JobState.CANCELLED, now
            else:
                d = decide(row.attempt, row.max_attempts, retryable=True, now=now, policy=policy)
                _record_error(row, msg, now, d.reason)
                if d.retry:
                    row.state, row.run_after = JobState.QUEUED, d.run_after or now
                else:
                    row.state, row.finished_at = JobState.FAILED, now
            row.worker_id, row.lease_expires_at = None, None
            out.append((row.id, row.state))
    return out


# -- operator actions ------------------------------------------------------------------------------
def _subject_in(prefix: str) -> ColumnElement[bool]:
    """The job is about a version inside `prefix` ("team-a/"): its payload's ref starts with it,
    literally (the JSON path works on SQLite and PostgreSQL alike). A job without a ref is outside."""
    cond: ColumnElement[bool] = J.payload["ref"].as_string().startswith(prefix, autoescape=True)
    return cond


def get(db: Database, job_id: int, *, prefix: str | None = None) -> T.Job:
    """One job; with `prefix`, a job about a name outside it is not found (its existence is not told)."""
    with db.read() as s:
        row = s.get(J, job_id)
        if row is not None and prefix is not None and not s.scalar(select(J.id).where(J.id == job_id,
                                                                                      _subject_in(prefix))):
            row = None
        if row is None:
            raise JobNotFound(f"no job {job_id}", job_id=job_id, hint="list jobs with: adapter-registry jobs ls")
        return convert.job(row)


def list_jobs(db: Database, *, state: str | None = None, kind: str | None = None, limit: int = 50,
              prefix: str | None = None) -> list[T.Job]:
    """Jobs, newest first; with `prefix`, only jobs about names inside it."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}, not {state!r}")
    q = select(J).order_by(J.id.desc()).limit(max(1, min(limit, 10_000)))
    if state:
        q = q.where(J.state == state)
    if kind:
        q = q.where(J.kind == kind)
    if prefix is not None:
        q = q.where(_subject_in(prefix))
    with db.read() as s:
        return [convert.job(r) for r in s.scalars(q)]


def cancel(db: Database, job_id: int, *, now: dt.datetime | None = None) -> T.Job:
    """queued -> cancelled at once; running -> cancel_requested (the worker stops at its next check)."""
    now = now or utcnow()
    with db.write() as s:
        row = s.get(J, job_id, with_for_update=not db.sqlite)
        if row is None:
            raise JobNotFound(f"no job {job_id}", job_id=job_id)
        if row.state == JobState.QUEUED:
            row.state, row.finished_at, row.error = JobState.CANCELLED, now, "cancelled before it ran"
        elif row.state == JobState.RUNNING:
            row.cancel_requested = True
        elif row.state in (JobState.SUCCEEDED, JobState.FAILED):
            raise Conflict(f"job {job_id} already {row.state}", job_id=job_id, state=row.state)
        return convert.job(row)


def retry(db: Database, job_id: int, *, now: dt.datetime | None = None) -> T.Job:
    """failed/cancelled -> queued now; an exhausted job gets one more attempt."""
    now = now or utcnow()
    try:
        with db.write() as s:
            row = s.get(J, job_id, with_for_update=not db.sqlite)
            if row is None:
                raise JobNotFound(f"no job {job_id}", job_id=job_id)
            if row.state not in (JobState.FAILED, JobState.CANCELLED):
                raise Conflict(f"job {job_id} is {row.state}; only failed or cancelled jobs can be retried",
                               job_id=job_id, state=row.state)
            row.state, row.run_after, row.cancel_requested, row.finished_at = JobState.QUEUED, now, False, None
            row.max_attempts = max(row.max_attempts, row.attempt + 1)
            s.flush()
            return convert.job(row)
    except IntegrityError as e:
        raise Conflict(f"job {job_id}: another job with the same key is queued or running",
                       job_id=job_id) from e


# -- workers ---------------------------------------------------------------------------------------
def register_worker(db: Database, info: dict[str, Any]) -> None:
    now = utcnow()
    with db.write() as s:
        row = s.get(M.Worker, info["id"])
        if row is None:
            s.add(M.Worker(**info, state="idle", started_at=now, last_seen=now))
        else:
            for k, v in info.items():
                setattr(row, k, v)
            row.state, row.last_seen = "idle", now


def touch_worker(db: Database, worker_id: str, *, state: str, job_id: int | None = None) -> None:
    with db.write() as s:
        _set_worker(s, worker_id, state, job_id, utcnow())


def list_workers(db: Database, *, include_stopped: bool = False) -> list[T.WorkerInfo]:
    q = select(M.Worker).order_by(M.Worker.last_seen.desc())
    if not include_stopped:
        q = q.where(M.Worker.state != "stopped")
    with db.read() as s:
        return [convert.worker(r) for r in s.scalars(q)]
