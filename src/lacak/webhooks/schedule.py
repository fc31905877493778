"""When to try a webhook again, and when to stop: the spec's retry rules as one pure function.

After the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts over ~27.6 h),
each ±20 % jitter. A timeout or a 429 waits at least 60 s; a `Retry-After` is honoured up to
`RETRY_AFTER_CAP`. 410 Gone disables the endpoint at once, so does a permanent transport
failure (a URL that can never work); an endpoint failing without a single success for
`disable_after` is disabled too. `scale` divides every duration: tests run the real schedule
on a compressed clock instead of sleeping for hours.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.2
THROTTLED_FLOOR = 60.0  # after a timeout or a 429 the receiver is overloaded: back off properly
RETRY_AFTER_CAP = 6 * 3600.0  # a receiver cannot park its events for days with one header
_RNG = random.Random()


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # attempts spent: recoverable by hand
    DISABLED = "disabled"  # the endpoint is switched off; this and later events wait as paused


@dataclass(frozen=True, slots=True)
class Result:
    """What one attempt got: an HTTP status, or a transport error class."""

    status: int | None = None
    error_class: str | None = None
    permanent: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    disable_after: float = 24 * 3600.0
    scale: float = 1.0

    def decide(
        self,
        result: Result,
        attempt: int,
        now: datetime,
        failing_since: datetime | None,
        rng: random.Random | None = None,
    ) -> Decision:
        """`attempt` is the number of the attempt just made (1 for the first)."""
        if result.ok:
            return Decision(Verdict.DELIVERED)
        if result.status == 410:
            return Decision(Verdict.DISABLED, reason="the endpoint answered 410 Gone")
        if result.permanent:
            return Decision(Verdict.DISABLED, reason=f"the endpoint cannot be reached ({result.error_class})")
        since = failing_since or now
        if (now - since).total_seconds() >= self.disable_after / self.scale:
            hours = self.disable_after / 3600
            return Decision(Verdict.DISABLED, reason=f"failing continuously for {hours:g} h")
        if attempt >= MAX_ATTEMPTS:
            return Decision(Verdict.FAILED, reason=f"no success after {attempt} attempts")
        delay = self.delay(result, attempt, rng or _RNG)
        return Decision(Verdict.RETRY, now + timedelta(seconds=delay / self.scale))

    @staticmethod
    def delay(result: Result, attempt: int, rng: random.Random) -> float:
        """Seconds (unscaled) before attempt `attempt + 1`."""
        base = SCHEDULE[min(attempt, len(SCHEDULE)) - 1]
        delay = base * rng.uniform(1 - JITTER, 1 + JITTER)
        if result.status == 429 or result.error_class == "timeout":
            delay = max(delay, THROTTLED_FLOOR)
        if result.retry_after is not None:
            delay = max(delay, min(result.retry_after, RETRY_AFTER_CAP))
        return delay
