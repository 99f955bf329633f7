"""The retry policy: a pure function of the attempt, the error and the clock (no database).

Backoff is exponential with full jitter around its centre (`base * factor**(attempt-1)`, capped,
then multiplied by a random factor in [1-jitter, 1+jitter]) so that a burst of jobs failing
together (a storage outage) does not come back as a burst. Errors that retrying cannot fix
(bad input, not found, incompatible: the registry's 4xx errors) fail at once.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    Attributes:
        base_s: the delay after the first failed attempt (before jitter)
        factor: growth per attempt
        max_s: cap on the delay (before jitter)
        jitter: relative spread, 0.1 = +-10 %
    """

    base_s: float = 5.0
    factor: float = 4.0
    max_s: float = 3600.0
    jitter: float = 0.1

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        centre = min(self.max_s, self.base_s * self.factor ** max(0, attempt - 1))
        return max(0.0, centre * (1 + self.jitter * (2 * rand() - 1)))


@dataclass(frozen=True)
class Decision:
    """What to do with a job whose attempt failed: requeue at `run_after`, or fail for good."""

    retry: bool
    run_after: dt.datetime | None
    reason: str


def is_retryable(exc: BaseException) -> bool:
    """Whether another attempt could succeed: our 4xx errors are about the input, not the moment."""
    from registry.errors import RegistryError

    if isinstance(exc, RegistryError):
        return not (400 <= exc.status < 500)
    return not isinstance(exc, (ValueError, TypeError, KeyError, LookupError, NotImplementedError))


def decide(attempt: int, max_attempts: int, *, retryable: bool, now: dt.datetime,
           policy: RetryPolicy = RetryPolicy(), rand: Callable[[], float] = random.random) -> Decision:
    """The fate of a failed attempt.

    Args:
        attempt: the attempt that just failed (1 for the first run)
        max_attempts: attempts allowed in total
        retryable: whether the error could go away (see `is_retryable`)
        now: the current time (UTC)
    """
    if not retryable:
        return Decision(False, None, "not retryable")
    if attempt >= max_attempts:
        return Decision(False, None, f"no attempts left ({attempt}/{max_attempts})")
    return Decision(True, now + dt.timedelta(seconds=policy.delay(attempt, rand)),
                    f"retry {attempt + 1}/{max_attempts}")
