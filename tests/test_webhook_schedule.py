"""The retry schedule of webhooks.md, as the pure `Policy.decide`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from lacak.webhooks.schedule import MAX_ATTEMPTS, SCHEDULE, Policy, Result, Verdict

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
FAIL = Result(status=500)


def delay_after(policy: Policy, result: Result, attempt: int, seed: int = 1) -> float:
    d = policy.decide(result, attempt, NOW, None, random.Random(seed))
    assert d.verdict == Verdict.RETRY and d.next_attempt_at is not None
    return (d.next_attempt_at - NOW).total_seconds()


def test_the_documented_schedule() -> None:
    assert SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert MAX_ATTEMPTS == 8
    assert sum(SCHEDULE) / 3600 == pytest.approx(27.6, abs=0.05)


@pytest.mark.parametrize("attempt", range(1, MAX_ATTEMPTS))
def test_each_delay_is_the_schedule_within_twenty_percent(attempt: int) -> None:
    base = SCHEDULE[attempt - 1]
    delays = [delay_after(Policy(), FAIL, attempt, seed) for seed in range(200)]
    assert all(0.8 * base <= d <= 1.2 * base for d in delays)
    # jittered, not constant: both halves of the window are used
    assert min(delays) < base < max(delays)


@pytest.mark.parametrize("result", [Result(status=429), Result(error_class="timeout")])
def test_timeouts_and_429_wait_at_least_a_minute(result: Result) -> None:
    assert all(delay_after(Policy(), result, 1, seed) >= 60 for seed in range(50))
    assert delay_after(Policy(), Result(status=503), 1) < 60  # other failures keep the 5 s


def test_retry_after_is_honoured_and_capped() -> None:
    assert delay_after(Policy(), Result(status=503, retry_after=900), 1) == 900
    assert delay_after(Policy(), Result(status=429, retry_after=10**7), 1) == 6 * 3600
    # never sooner than the schedule itself
    assert delay_after(Policy(), Result(status=503, retry_after=1), 3) >= 0.8 * 1800


def test_success_is_any_2xx() -> None:
    for status in (200, 201, 202, 204, 299):
        assert Policy().decide(Result(status=status), 1, NOW, None).verdict == Verdict.DELIVERED
    for status in (199, 300, 301, 302, 304, 400, 404, 500):
        assert Policy().decide(Result(status=status), 1, NOW, None).verdict == Verdict.RETRY


def test_gone_disables_at_once() -> None:
    d = Policy().decide(Result(status=410), 1, NOW, None)
    assert d.verdict == Verdict.DISABLED and d.reason is not None and "410" in d.reason


def test_a_permanent_transport_failure_disables() -> None:
    d = Policy().decide(Result(error_class="connect", permanent=True), 1, NOW, None)
    assert d.verdict == Verdict.DISABLED


def test_attempts_run_out_after_eight() -> None:
    assert Policy().decide(FAIL, MAX_ATTEMPTS - 1, NOW, None).verdict == Verdict.RETRY
    d = Policy().decide(FAIL, MAX_ATTEMPTS, NOW, None)
    assert d.verdict == Verdict.FAILED and d.next_attempt_at is None


def test_failing_for_the_whole_window_disables_the_endpoint() -> None:
    policy = Policy(disable_after=24 * 3600)
    recent = NOW - timedelta(hours=23, minutes=59)
    assert policy.decide(FAIL, 3, NOW, recent).verdict == Verdict.RETRY
    d = policy.decide(FAIL, 3, NOW, NOW - timedelta(hours=24))
    assert d.verdict == Verdict.DISABLED and d.reason is not None and "24 h" in d.reason
    # a success clears it, whatever the history
    assert policy.decide(Result(status=200), 3, NOW, NOW - timedelta(days=3)).verdict == Verdict.DELIVERED


def test_scale_compresses_every_duration() -> None:
    fast = Policy(scale=1000)
    assert delay_after(fast, FAIL, 2, 7) == pytest.approx(delay_after(Policy(), FAIL, 2, 7) / 1000)
    assert delay_after(fast, Result(status=429), 1) >= 0.06
    assert fast.decide(FAIL, 2, NOW, NOW - timedelta(seconds=86.4)).verdict == Verdict.DISABLED
