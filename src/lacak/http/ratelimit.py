"""A token bucket per client address, in memory (one process's share of the traffic).

Each process counts on its own: with N API processes a client gets up to N times the rate,
which is fine for what this guards (a page scraped or hammered, not a quota).
"""

from __future__ import annotations

import time
from collections.abc import Callable

_MAX_KEYS = 50_000  # beyond this many addresses, forget the ones whose bucket is full again


class RateLimit:
    def __init__(self, per_minute: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 when `key` may go ahead (one token spent), else the seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > _MAX_KEYS:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        full = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
