"""The per-endpoint breaker: an unreachable endpoint's deliveries are held back, then probed."""

from __future__ import annotations

import pytest

from lacak.webhooks.breaker import Breaker

CAP = 10  # per-endpoint concurrency


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_closed_until_three_transport_failures_in_a_row(clock: Clock) -> None:
    b = Breaker(clock)
    for _ in range(2):
        b.record(7, "connect")
    assert b.busy({}, CAP) == {} and b.next_change() is None
    b.record(7, "timeout")
    assert b.busy({}, CAP) == {7: CAP}  # open: nothing of merchant 7 is claimed
    assert b.busy({7: 3, 8: 1}, CAP) == {7: CAP, 8: 1}  # others untouched
    assert b.next_change() == pytest.approx(5.0)


@pytest.mark.parametrize("answer", [None, "http"])
def test_any_http_answer_resets_the_count(clock: Clock, answer: str | None) -> None:
    b = Breaker(clock)
    b.record(7, "connect")
    b.record(7, "connect")
    b.record(7, answer)  # a 2xx (None) or any other status ("http"): the server is there
    b.record(7, "connect")
    b.record(7, "connect")
    assert b.busy({}, CAP) == {}


def test_half_open_lets_one_probe_through_then_closes_on_an_answer(clock: Clock) -> None:
    b = Breaker(clock)
    for _ in range(3):
        b.record(7, "dns")
    clock.now += 5.0
    assert b.next_change() is None
    assert b.busy({}, CAP) == {7: CAP - 1}  # room for exactly one
    assert b.busy({7: 1}, CAP) == {7: CAP}  # the probe is out: nothing beside it
    b.record(7, None)
    assert b.busy({}, CAP) == {}


def test_a_failed_probe_reopens_at_once_for_twice_as_long_up_to_the_cap(clock: Clock) -> None:
    b = Breaker(clock, base=5.0, cap=60.0)
    for _ in range(3):
        b.record(7, "connect")
    cooldowns = []
    for _ in range(6):
        clock.now += b.next_change() or 0.0
        b.record(7, "connect")  # the probe fails
        cooldowns.append(b.next_change())
    assert cooldowns == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]


def test_failures_of_sends_made_before_it_opened_do_not_extend_it(clock: Clock) -> None:
    b = Breaker(clock)
    for _ in range(3):
        b.record(7, "connect")
    clock.now += 1.0
    for _ in range(7):  # the rest of the ten that were in flight
        b.record(7, "connect")
    assert b.next_change() == pytest.approx(4.0)


def test_scale_compresses_the_cooldowns_like_the_retry_clock(clock: Clock) -> None:
    b = Breaker(clock, scale=1000.0)
    for _ in range(3):
        b.record(7, "tls")
    assert b.next_change() == pytest.approx(0.005)


def test_ssrf_blocked_counts_as_unreachable(clock: Clock) -> None:
    b = Breaker(clock)
    for _ in range(3):
        b.record(7, "ssrf-blocked")
    assert b.busy({}, CAP) == {7: CAP}
