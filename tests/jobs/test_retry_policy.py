"""The retry policy is a pure function: no database, no clock but the one passed in."""

from __future__ import annotations

import datetime as dt

from registry.errors import Incompatible, InvalidInput, StorageError, VersionNotFound
from registry.jobs.retry import RetryPolicy, decide, is_retryable

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def test_backoff_grows_exponentially_and_is_capped():
    p = RetryPolicy(base_s=2, factor=4, max_s=100, jitter=0)
    assert [p.delay(a) for a in (1, 2, 3, 4, 5)] == [2, 8, 32, 100, 100]


def test_jitter_spreads_the_delay_within_its_bounds():
    p = RetryPolicy(base_s=10, factor=2, jitter=0.1)
    assert p.delay(1, rand=lambda: 0.0) == 9.0 and p.delay(1, rand=lambda: 1.0) == 11.0
    assert p.delay(1, rand=lambda: 0.5) == 10.0


def test_failed_attempt_with_attempts_left_is_retried_after_the_backoff():
    d = decide(1, 3, retryable=True, now=NOW, policy=RetryPolicy(base_s=5, jitter=0))
    assert d.retry and d.run_after == NOW + dt.timedelta(seconds=5)


def test_last_attempt_fails_for_good():
    d = decide(3, 3, retryable=True, now=NOW)
    assert not d.retry and d.run_after is None and "no attempts left" in d.reason


def test_error_that_retrying_cannot_fix_fails_at_once():
    assert not decide(1, 10, retryable=False, now=NOW).retry


def test_client_errors_are_not_retryable_and_transient_ones_are():
    assert not is_retryable(InvalidInput("x")) and not is_retryable(VersionNotFound("x"))
    assert not is_retryable(Incompatible("x")) and not is_retryable(ValueError("x"))
    assert is_retryable(StorageError("s3 is down")) and is_retryable(OSError("disk")) and is_retryable(RuntimeError())
