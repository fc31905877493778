"""A token bucket per client address, in memory (one process's share of the traffic).

Each process counts on its own: with N API processes a client gets up to N times the rate,
which is fine for what this guards (a page scraped or hammered, not a quota).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_KEYS = 50_000  # addresses remembered; the least recently seen is forgotten first


def client_key(host: str) -> str:
    """The bucket of an address: IPv6 clients by their /64 (one subscriber's whole range)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{host}/64", strict=False))
    return host


class RateLimit:
    def __init__(
        self,
        per_minute: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        # key -> (tokens, at), least recently seen first: a hard bound costing O(1) per request,
        # so a flood of new addresses cannot make the bookkeeping itself the expensive part.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when `key` may go ahead (one token spent), else the seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1.0 - tokens) / self.rate
