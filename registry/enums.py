"""The registry's closed sets, each value commented with the transition or meaning it records.

They are `str` enums: a value compares equal to its string, is stored in the catalog as that
string and is written to JSON as it, so the wire and database formats stay plain strings.
"""

from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10
    class StrEnum(str, enum.Enum):
        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, format_spec: str) -> str:
            return str.__format__(self, format_spec)


class JobState(StrEnum):
    """Where a job is in its life (registry/jobs/queue.py makes every transition)."""

    QUEUED = "queued"  # enqueued, handed back by a stopping worker, rescued, or waiting out a retry backoff
    RUNNING = "running"  # claimed by a worker, which holds its lease by heartbeats
    SUCCEEDED = "succeeded"  # the task returned and its catalog writes were applied in the guarded finish
    FAILED = "failed"  # the task raised and the retry policy gave up (or the error is not retryable)
    CANCELLED = "cancelled"  # cancelled while queued, or stopped at a check after a cancel request

    @property
    def terminal(self) -> bool:
        """True for the states a job never leaves by itself."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
TERMINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobKind(StrEnum):
    """The job kinds a worker knows (registry/jobs/tasks.py runs each)."""

    VERIFY = "verify"  # static check + probes of a version on the worker's device; records a verification
    MERGE = "merge"  # merge a version into its base; records a merged artifact
    PUBLISH = "publish"  # merge if needed, then ship the merged model; records a publication
    NOOP = "noop"  # does nothing (queue benchmarks, smoke tests)
    SLEEP = "sleep"  # sleeps, checking for cancellation (tests, demos)


ML_KINDS = (JobKind.VERIFY, JobKind.MERGE, JobKind.PUBLISH)


class Scope(StrEnum):
    """What an API token may do; each scope includes the ones before it."""

    READ = "read"  # reads (also needed when reads are closed)
    WRITE = "write"  # push, evals, aliases, jobs, inside the token's namespace
    ADMIN = "admin"  # tokens, the audit log, forced moves and publishes

    def includes(self, other: str) -> bool:
        order = list(Scope)
        return order.index(self) >= order.index(Scope(other))


class Engine(StrEnum):
    """Which merge engine to run."""

    AUTO = "auto"  # streaming, falling back to peft for what streaming cannot do exactly
    STREAMING = "streaming"  # shard by shard, bit-identical to peft's merge_and_unload
    PEFT = "peft"  # peft's own merge_and_unload (the reference)
