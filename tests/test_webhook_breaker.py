"""The per-endpoint breaker: an unreachable endpoint's deliveries are held back, then probed."""

from __future__ import annotations

import pytest

from lacak.webhooks.breaker import Breaker, Hold


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def caps(b: Breaker) -> dict[int, int]:
    return {m: h.cap for m, h in b.holds().items()}


def fail(b: Breaker, clock: Clock, times: int = 1, kind: str = "connect", merchant: int = 7) -> None:
    for _ in range(times):
        b.record(merchant, kind, clock.now)  # sent now, failed now


def test_closed_until_three_transport_failures_in_a_row(clock: Clock) -> None:
    b = Breaker(clock)
    assert [b.record(7, "connect", clock.now) for _ in range(2)] == [None, None]
    assert caps(b) == {} and b.next_change() is None
    assert b.record(7, "timeout", clock.now) == 5.0  # it opened: the dispatcher defers for 5 s
    assert caps(b) == {7: 0}  # open: no scheduled delivery of merchant 7 is claimed
    assert b.holds()[7].wait == pytest.approx(5.0)  # the others are put aside that long
    assert b.next_change() == pytest.approx(5.0)
    assert b.record(7, "connect", clock.now - 1) is None  # sent before: no news


@pytest.mark.parametrize("answer", [None, "http"])
def test_any_http_answer_resets_the_count(clock: Clock, answer: str | None) -> None:
    b = Breaker(clock)
    fail(b, clock, 2)
    b.record(7, answer, clock.now)  # a 2xx (None) or any other status ("http"): the server is there
    fail(b, clock, 2)
    assert caps(b) == {}


def test_half_open_allows_one_then_an_answer_closes_it(clock: Clock) -> None:
    b = Breaker(clock)
    fail(b, clock, 2, kind="dns")
    assert not b.holding(7)  # two failures: not yet
    fail(b, clock, 1, kind="dns")
    assert b.holding(7)
    clock.now += 5.0
    assert b.next_change() is None
    assert caps(b) == {7: 1} and b.holding(7)  # one delivery at a time: the probe
    b.record(7, None, clock.now)
    assert caps(b) == {} and not b.holding(7)


def test_a_failed_probe_reopens_at_once_for_twice_as_long_up_to_the_cap(clock: Clock) -> None:
    b = Breaker(clock, base=5.0, cap=60.0)
    fail(b, clock, 3)
    cooldowns = []
    for _ in range(6):
        clock.now += b.next_change() or 0.0
        fail(b, clock)  # the probe, sent after the cooldown, fails
        cooldowns.append(b.next_change())
    assert cooldowns == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]


def test_results_of_sends_made_before_it_opened_change_nothing(clock: Clock) -> None:
    b = Breaker(clock)
    sent = clock.now  # ten sends go out at once
    clock.now += 0.2
    for _ in range(3):
        b.record(7, "connect", sent)  # three are refused: it opens
    clock.now += 14.0  # long past the 5 s cooldown: the other sends time out only now
    for _ in range(7):
        b.record(7, "timeout", sent)
    assert caps(b) == {7: 1}  # still half-open, not reopened for 10 s
    b.record(7, "connect", clock.now)  # a probe sent since: that one counts
    assert caps(b) == {7: 0} and b.next_change() == pytest.approx(10.0)


def test_a_manual_probe_that_fails_while_open_reopens_it(clock: Clock) -> None:
    b = Breaker(clock)
    fail(b, clock, 3)
    clock.now += 1.0
    fail(b, clock)  # a resend, sent while open
    assert b.next_change() == pytest.approx(10.0)


def test_scale_compresses_the_cooldowns_like_the_retry_clock(clock: Clock) -> None:
    b = Breaker(clock, scale=1000.0)
    fail(b, clock, 3, kind="tls")
    assert b.next_change() == pytest.approx(0.005)


def test_ssrf_blocked_counts_as_unreachable(clock: Clock) -> None:
    b = Breaker(clock)
    fail(b, clock, 3, kind="ssrf-blocked")
    assert caps(b) == {7: 0}


def test_a_failure_or_two_long_ago_is_forgotten(clock: Clock) -> None:
    b = Breaker(clock, cap=60.0)
    fail(b, clock, 2, merchant=8)
    clock.now += 61.0
    assert caps(b) == {}
    fail(b, clock, merchant=8)  # counting starts again
    assert caps(b) == {}
    assert b._endpoints[8].failures == 1


def test_a_manual_resend_is_a_probe_even_while_open() -> None:
    assert (Hold(0, 5.0).allows(manual=True), Hold(0, 5.0).allows(manual=False)) == (1, 0)
    assert (Hold(1, 5.0).allows(manual=True), Hold(1, 5.0).allows(manual=False)) == (1, 1)
