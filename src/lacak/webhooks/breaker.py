"""Holding back the deliveries of an endpoint that cannot be reached (a circuit breaker).

Each delivery keeps its own retry schedule (`schedule.Policy`), but a merchant whose server
is down would still get a first attempt for every new event, and a retry for every old one,
each failing after a connect or a timeout: work that healthy endpoints pay for. After
`threshold` transport failures in a row (no HTTP answer: `timeout`, `connect`, `dns`, `tls`,
`ssrf-blocked`) the endpoint is *open*: none of its scheduled deliveries is claimed for a
cooldown of `base` seconds, doubled each time it opens again without an answer in between, up
to `cap`. After the cooldown it is *half-open*: one delivery at a time goes, as a probe. A
manual resend is a probe too: while the endpoint is held back, manual deliveries go one at a
time (a bulk recover to a server still down does not flood it). Any HTTP answer, whatever its
status, closes it (the server is reachable; a 500 about one event is that event's business).
Deliveries held back stay `pending` and spend no attempt; a claim that meets them moves them to
the end of the hold in the database (`store.defer`), so a down endpoint's backlog, which keeps
growing, is not scanned past by every claim. When it opens, the end of the hold is also written
on the endpoint's row (`store._holds`, with the result that opened it): events enqueued after
that are scheduled at the end of the hold from the start, so they wake no claim meanwhile.

Results of sends that started before the endpoint last opened are ignored (a send may take
the whole request timeout, longer than a cooldown): only what was sent since says anything new.

Per process and in memory, like the per-endpoint concurrency cap: it only decides what this
process claims (the end of a hold written on the endpoint's row only schedules new events, for
every process: a probe still decides). Pure: the clock is passed in, and `record` takes when the
send started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

log = logging.getLogger("lacak.webhooks")

UNREACHABLE = frozenset({"timeout", "connect", "dns", "tls", "ssrf-blocked"})


class Hold(NamedTuple):
    """How a held-back endpoint's deliveries may go: `cap` scheduled ones in flight (0 open,
    1 half-open), and for how many seconds the others can be put aside."""

    cap: int
    wait: float

    def allows(self, manual: bool) -> int:
        """In flight at most: a manual resend is a probe, so one goes even while open."""
        return max(self.cap, 1) if manual else self.cap


@dataclass(slots=True)
class _Endpoint:
    failures: int = 0  # transport failures in a row while closed
    opened: int = 0  # times opened since the last answer
    opened_at: float = 0.0  # when it last opened (clock seconds)
    until: float = 0.0  # open until then
    last: float = 0.0  # the last failure counted


class Breaker:
    def __init__(
        self,
        clock: Callable[[], float],
        *,
        threshold: int = 3,
        base: float = 5.0,
        cap: float = 60.0,
        scale: float = 1.0,
    ) -> None:
        self.clock = clock
        self.threshold = threshold
        self.base = base / scale  # the retry clock's scale: tests compress it the same way
        self.cap = cap / scale
        self._endpoints: dict[int, _Endpoint] = {}

    def record(self, merchant_id: int, error_class: str | None, started: float) -> float | None:
        """One attempt's result (`error_class` None or "http" for an HTTP answer of any
        status) of a send that began at `started` (clock seconds). Returns the cooldown in
        seconds when this result (re)opened the endpoint, else None."""
        if error_class not in UNREACHABLE:
            self._endpoints.pop(merchant_id, None)
            return None
        e = self._endpoints.setdefault(merchant_id, _Endpoint())
        if e.opened and started < e.opened_at:
            return None  # sent before it opened: already counted in
        now = self.clock()
        e.failures, e.last = e.failures + 1, now
        if e.failures >= self.threshold or e.opened:  # a failed probe reopens at once
            cooldown: float = min(self.base * 2.0**e.opened, self.cap)
            e.until, e.opened_at, e.opened, e.failures = now + cooldown, now, e.opened + 1, 0
            log.info(
                "webhook endpoint unreachable: holding its deliveries",
                extra={"merchant_id": merchant_id, "seconds": round(cooldown, 3), "times": e.opened},
            )
            return cooldown
        return None

    def holding(self, merchant_id: int) -> bool:
        """Whether the endpoint is open or half-open (held back in some way)."""
        e = self._endpoints.get(merchant_id)
        return e is not None and e.opened > 0

    def holds(self) -> dict[int, Hold]:
        """The endpoints held back now (merchants not listed go as usual)."""
        now = self.clock()
        out: dict[int, Hold] = {}
        stale: list[int] = []
        for merchant_id, e in self._endpoints.items():
            if e.until > now:
                out[merchant_id] = Hold(0, e.until - now)
            elif e.opened:  # half-open: the probe's answer decides, within a request timeout
                out[merchant_id] = Hold(1, self.base)
            elif now - e.last > self.cap:
                stale.append(merchant_id)  # a failure or two long ago, never followed up
        for merchant_id in stale:
            del self._endpoints[merchant_id]
        return out

    def next_change(self) -> float | None:
        """Seconds until the first open endpoint turns half-open (None: none is open)."""
        now = self.clock()
        waits = [e.until - now for e in self._endpoints.values() if e.until > now]
        return min(waits) if waits else None
