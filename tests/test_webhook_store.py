"""The delivery queue in the database: claims, leases, per-endpoint caps, fenced results.

Each backend gets a database of its own: claims see every due row, so rows other tests
leave behind must not be in it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lacak.storage.rows import as_dt
from lacak.timeutil import utcnow
from lacak.webhooks import store
from lacak.webhooks.breaker import Hold
from lacak.webhooks.models import Job
from lacak.webhooks.schedule import Decision, Verdict
from lacak.webhooks.store import Outcome
from tests.support import Backend, fresh_backend
from tests.test_store import Env, env

pytestmark = pytest.mark.anyio
LEASE = timedelta(seconds=60)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def own(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with fresh_backend(request.param, tmp_path_factory.mktemp(f"webhook-store-{request.param}")) as b:
        yield b


@pytest.fixture()
async def e(own: Backend) -> AsyncIterator[Env]:
    async with env(own, callback=True) as it:
        await drain(it)
        yield it


async def drain(e: Env) -> None:
    """Nothing due from earlier tests (their rows move far into the future)."""
    far = utcnow() + timedelta(days=3650)
    async with e.s.db.transaction() as tx:
        await tx.execute("UPDATE deliveries SET next_attempt_at = $1 WHERE status = 'pending'", far)


async def claim(e: Env, now: datetime | None = None, *, limit: int = 50, busy: dict[int, int] | None = None,
                per_endpoint: int = 10) -> list[Job]:  # fmt: skip
    now = now or utcnow()
    return await store.claim(e.s.db, now, now + LEASE, limit, busy=busy or {}, per_endpoint=per_endpoint)


async def statuses(e: Env, merchant_id: int) -> list[str]:
    rows = await e.s.db.fetch("SELECT status FROM deliveries WHERE merchant_id = $1 ORDER BY id", merchant_id)
    return [r[0] for r in rows]


def done(job: Job, verdict: Verdict, when: datetime | None = None, status: int | None = 200) -> Outcome:
    at = when or utcnow()
    nxt = at + timedelta(minutes=5) if verdict == Verdict.RETRY else None
    return Outcome(job, Decision(verdict, nxt, reason="why"), at, duration_ms=3.0, status_code=status)


async def test_a_claim_brings_everything_needed_to_send(e: Env) -> None:
    (order,) = await e.create()
    (job,) = await claim(e)
    assert job.merchant_id == e.merchant.id and job.attempt == 1 and job.seq == 2
    assert job.url == "http://127.0.0.1:9/hook" and job.dialect == "kiriminaja-2024"
    assert job.key_enc and job.secret_enc and not job.disabled and not job.manual
    assert job.payment is not None and job.payment.pk == order.payment_pk
    assert job.event_id.startswith("msg_") and f'"order_id":"{order.order_id}"' in job.payload


async def test_a_claimed_row_waits_for_its_lease_then_goes_again(e: Env) -> None:
    await e.create()
    now = utcnow()
    (first,) = await claim(e, now)
    assert await claim(e, now + timedelta(seconds=30)) == []  # held
    (again,) = await claim(e, now + LEASE + timedelta(seconds=1))  # the worker died
    assert (again.id, again.attempt) == (first.id, 2)


async def test_concurrent_claims_never_share_a_row(e: Env) -> None:
    await e.create(12)
    batches = await asyncio.gather(*(claim(e, limit=4) for _ in range(4)))
    ids = [j.id for b in batches for j in b]
    assert len(ids) == 12 and len(set(ids)) == 12


async def test_per_endpoint_cap_and_saturated_merchants_are_skipped(own: Backend, e: Env) -> None:
    async with env(own, callback=True) as b:
        await e.create(5)
        await b.create(3)
        jobs = await claim(e, per_endpoint=2)
        by_merchant = {m: sum(j.merchant_id == m for j in jobs) for m in (e.merchant.id, b.merchant.id)}
        assert by_merchant == {e.merchant.id: 2, b.merchant.id: 2}
        # This worker already has A's two in flight: A's backlog is not even looked at.
        more = await claim(e, busy={e.merchant.id: 2, b.merchant.id: 1}, per_endpoint=2)
        assert [j.merchant_id for j in more] == [b.merchant.id]


async def test_held_merchants_wait_and_their_manual_resends_go_one_at_a_time(own: Backend, e: Env) -> None:
    async with env(own, callback=True) as b:
        await e.create(3)
        await b.create(2)
        now = utcnow()

        async def held_claim(cap: int, busy: dict[int, int] | None = None) -> list[Job]:
            return await store.claim(e.s.db, now, now + LEASE, 50, busy=busy or {}, per_endpoint=10,
                                     holds={e.merchant.id: Hold(cap, 0.0)})  # fmt: skip

        assert [j.merchant_id for j in await held_claim(0)] == [b.merchant.id] * 2  # A is open
        pending = await e.s.db.fetch(
            "SELECT id FROM deliveries WHERE merchant_id = $1 AND status = 'pending' ORDER BY id",
            e.merchant.id,
        )
        async with e.s.db.transaction() as tx:
            for row in pending[:2]:
                await store.resend(tx, row[0], now)  # an operator resends two
        first = await held_claim(0)
        assert [(j.id, j.manual) for j in first] == [(pending[0][0], True)]  # the probe, alone
        assert await held_claim(0, busy={e.merchant.id: 1}) == []  # not beside one in flight
        # Half-open: room for one, manual or scheduled (the older due first).
        for _ in range(2):
            assert [j.merchant_id for j in await held_claim(1)] == [e.merchant.id]


async def test_a_claim_puts_aside_the_rows_of_a_held_merchant_it_meets(own: Backend, e: Env) -> None:
    async with env(own, callback=True) as b:
        await e.create(4)
        await b.create(2)
        now = utcnow()
        jobs = await store.claim(e.s.db, now, now + LEASE, 50, busy={}, per_endpoint=10,
                                 holds={e.merchant.id: Hold(0, 30.0)})  # fmt: skip
        assert [j.merchant_id for j in jobs] == [b.merchant.id] * 2
        rows = await e.s.db.fetch(
            "SELECT attempts, next_attempt_at FROM deliveries WHERE merchant_id = $1 AND status = 'pending'",
            e.merchant.id,
        )
        assert len(rows) == 4 and all(r[0] == 0 for r in rows)  # no attempt spent
        assert all(as_dt(r[1]) >= now + timedelta(seconds=29) for r in rows)  # out of the due range
        assert await claim(e, now + timedelta(seconds=1)) == []


async def test_while_a_probe_is_out_new_events_are_scheduled_after_it(e: Env) -> None:
    await e.create(3)
    now = utcnow()
    jobs = await store.claim(e.s.db, now, now + LEASE, 50, busy={}, per_endpoint=10,
                             holds={e.merchant.id: Hold(1, 30.0)})  # fmt: skip
    assert len(jobs) == 1  # half-open: one probe, the other two put aside
    assert (await e.s.hooks.service.endpoint(e.merchant.id)).held_until == now + timedelta(seconds=30)
    await e.create()
    assert await claim(e, now + timedelta(seconds=29)) == []
    assert len(await claim(e, now + timedelta(seconds=30))) == 3


async def test_results_are_fenced_by_the_attempt(e: Env) -> None:
    await e.create()
    now = utcnow()
    (stale,) = await claim(e, now)
    (fresh,) = await claim(e, now + LEASE + timedelta(seconds=1))
    await store.record(e.s.db, [done(stale, Verdict.DELIVERED)], utcnow())
    assert await statuses(e, e.merchant.id) == ["pending"]  # the old holder cannot finish it
    await store.record(e.s.db, [done(fresh, Verdict.DELIVERED)], utcnow())
    assert await statuses(e, e.merchant.id) == ["delivered"]
    attempts = await store.attempts(e.s.db, fresh.id)
    assert [(a.attempt, a.outcome, a.status_code) for a in attempts] == [
        (1, "delivered", 200),
        (2, "delivered", 200),
    ]


async def test_retry_failed_and_endpoint_health(e: Env) -> None:
    await e.create(2)
    a, b = await claim(e)
    t0 = utcnow()
    await store.record(e.s.db, [done(a, Verdict.RETRY, t0, 500), done(b, Verdict.FAILED, t0, 500)], t0)
    rows = await e.s.db.fetch(
        "SELECT status, next_attempt_at, last_status, last_error FROM deliveries WHERE merchant_id = $1"
        " ORDER BY id",
        e.merchant.id,
    )
    assert [(r[0], r[2], r[3]) for r in rows] == [("pending", 500, "why"), ("failed", 500, "why")]
    assert as_dt(rows[0][1]) == t0 + timedelta(minutes=5)
    ep = await e.s.hooks.service.endpoint(e.merchant.id)
    assert ep.failing_since == t0
    (a2,) = await claim(e, t0 + timedelta(minutes=6))
    await store.record(e.s.db, [done(a2, Verdict.DELIVERED)], utcnow())
    assert (await e.s.hooks.service.endpoint(e.merchant.id)).failing_since is None


async def test_events_of_a_held_back_endpoint_are_first_due_when_the_hold_ends(e: Env) -> None:
    await e.create(2)
    a, b = await claim(e)
    t0 = utcnow()
    until = t0 + timedelta(seconds=30)
    unreachable = Decision(Verdict.RETRY, until + timedelta(minutes=5), reason="refused")
    await store.record(e.s.db, [
        Outcome(a, unreachable, t0, error_class="connect"),
        Outcome(b, unreachable, t0, error_class="connect", held_until=until),  # opened the breaker
    ], t0)  # fmt: skip
    assert (await e.s.hooks.service.endpoint(e.merchant.id)).held_until == until
    await e.create(2)  # state changes while it is held back: not due before the hold ends
    assert await claim(e, until - timedelta(seconds=1)) == []
    (c, d) = await claim(e, until)
    assert {c.seq, d.seq} == {2} and c.attempt == d.attempt == 1
    answered = utcnow()  # the probe got an answer: the hold ends now
    await store.record(
        e.s.db, [replace(done(c, Verdict.RETRY, answered, 503), held_until=answered)], answered
    )
    assert (await e.s.hooks.service.endpoint(e.merchant.id)).held_until is None
    await e.create()
    assert len(await claim(e)) == 1  # due at once again


async def test_disabling_pauses_the_endpoint_and_enable_resumes(e: Env) -> None:
    await e.create(3)
    first, *_ = await claim(e, per_endpoint=1)
    await store.record(e.s.db, [done(first, Verdict.DISABLED, status=410)], utcnow())
    assert await statuses(e, e.merchant.id) == ["paused"] * 3
    ep = await e.s.hooks.service.endpoint(e.merchant.id)
    assert ep.disabled_at is not None and ep.disabled_reason == "why"
    await e.create()  # a change while disabled is kept, as paused
    assert await statuses(e, e.merchant.id) == ["paused"] * 4
    assert await claim(e) == []
    assert await e.s.hooks.service.enable(e.merchant.id) == 4
    assert await statuses(e, e.merchant.id) == ["pending"] * 4
    jobs = await claim(e)
    assert len(jobs) == 4 and all(j.manual for j in jobs)


async def test_the_outbox_row_follows_the_merchant_row_not_a_cache(own: Backend, tmp_path: Path) -> None:
    async with env(own) as e:  # no callback yet
        await e.create()
        await e.s.hooks.service.set_callback(e.merchant.id, "http://127.0.0.1:9/" + uuid.uuid4().hex)
        await e.create()  # the Merchant object in hand still has no callback_url
        assert await statuses(e, e.merchant.id) == ["no_endpoint", "pending"]
