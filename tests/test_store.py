"""The store on both databases: history, seq, the transactional outbox, void and redrive,
rollback, concurrency and order ids (lifecycle.md, webhooks.md "Delivery semantics")."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import msgspec
import pytest

from lacak.errors import DuplicateOrderId, InvalidOrder, NotFound
from lacak.merchants.models import Merchant
from lacak.orders.lifecycle import Decision
from lacak.orders.models import Driver, HistoryEvent, Order, Outcome, Source, State, Update
from lacak.orders.requests import Item, Package, PickupRequest
from lacak.storage.store import Delivery, Store
from lacak.timeutil import utcnow
from lacak.wiring import Services, services
from tests.support import Backend

pytestmark = pytest.mark.anyio

S = State
A, ST, RF, DUP = Outcome.APPLIED, Outcome.STALE, Outcome.REFUSED, Outcome.DUPLICATE
DRIVER = Driver("Budi", "081200000001", None)
CALLBACK = "http://127.0.0.1:9/hook"  # never called: no dispatcher runs in these tests

# From finding_driver (a fresh paid order) to each state, one applied move at a time.
PATH: dict[State, list[State]] = {
    S.FINDING_DRIVER: [],
    S.NO_DRIVER: [S.NO_DRIVER],
    S.DRIVER_ASSIGNED: [S.DRIVER_ASSIGNED],
    S.AT_PICKUP: [S.DRIVER_ASSIGNED, S.AT_PICKUP],
    S.PICKED_UP: [S.DRIVER_ASSIGNED, S.PICKED_UP],
    S.IN_TRANSIT: [S.DRIVER_ASSIGNED, S.PICKED_UP, S.IN_TRANSIT],
    S.ON_HOLD: [S.DRIVER_ASSIGNED, S.PICKED_UP, S.ON_HOLD],
    S.RETURNING: [S.DRIVER_ASSIGNED, S.PICKED_UP, S.RETURNING],
    S.DELIVERED: [S.DRIVER_ASSIGNED, S.PICKED_UP, S.DELIVERED],
    S.RETURNED: [S.DRIVER_ASSIGNED, S.PICKED_UP, S.RETURNING, S.RETURNED],
    S.CANCELLED: [S.CANCELLED],
    S.FAILED: [S.DRIVER_ASSIGNED, S.PICKED_UP, S.FAILED],
}
PAID_STATES = list(PATH)  # every state but `created`, which needs a prepaid merchant


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Env:
    s: Services
    backend: Backend
    merchant: Merchant

    @property
    def store(self) -> Store:
        return self.s.store

    async def counts(self) -> dict[str, int]:
        return await anyio.to_thread.run_sync(self.backend.counts, self.merchant.id)

    async def order(self, order_id: str) -> Order:
        found = await self.store.get_order(self.merchant.id, order_id)
        assert found is not None
        return found

    async def create(self, n: int = 1, **kw: Any) -> list[Order]:
        return (await self.s.orders.create(self.merchant, request(n, **kw)))[1]

    async def move(self, order: Order, state: State, **kw: Any) -> Decision:
        return await self.store.transition(self.merchant.id, order.order_id, upd(state, **kw), utcnow())

    async def reach(self, state: State) -> Order:
        """A fresh order walked to `state` (created only for prepaid merchants)."""
        (order,) = await self.create()
        for step in PATH.get(state, []):
            decision = await self.move(order, step, driver=DRIVER if step == S.DRIVER_ASSIGNED else None)
            assert decision.outcome == A, (step, decision.outcome)
        return await self.order(order.order_id)


@asynccontextmanager
async def env(backend: Backend, *, prepaid: bool = False, callback: bool = False) -> AsyncIterator[Env]:
    async with services(backend.settings()) as s:
        merchant, _ = await s.merchants.create(f"store-{uuid.uuid4().hex[:12]}", prepaid=prepaid)
        if callback:
            await s.hooks.service.set_callback(merchant.id, CALLBACK)
        yield Env(s, backend, merchant)


def package(order_id: str | None = None) -> Package:
    """gosend instant motor from Wirobrajan to Minomartani: Rp 34,000."""
    return Package(
        origin_name="Arfian",
        origin_phone="081280045616",
        origin_lat=-7.8032616,
        origin_long=110.350244,
        origin_address="Wirobrajan, Yogyakarta",
        destination_name="Okka",
        destination_phone="081280045616",
        destination_lat=-7.7349434,
        destination_long=110.405355,
        destination_address="Minomartani, Sleman",
        shipping_price=34000,
        item=Item(name="Barang 1", price=20000, weight=1000),
        order_id=order_id,
    )


def request(n: int = 1, *, prefix: str = "TST", order_ids: list[str] | None = None) -> PickupRequest:
    pkgs = [package(oid) for oid in order_ids] if order_ids else [package() for _ in range(n)]
    return PickupRequest(
        service="gosend", service_type="instant", vehicle="motor", order_prefix=prefix, packages=pkgs
    )


def upd(state: State, **kw: Any) -> Update:
    return Update(state=state, source=kw.pop("source", Source.COURIER), occurred_at=utcnow(), **kw)


def rows(events: list[HistoryEvent]) -> list[tuple[str, int, str]]:
    return [(e.state.value, e.seq, e.outcome.value) for e in events]


async def outbox_matches_history(store: Store, order: Order) -> tuple[list[HistoryEvent], list[Delivery]]:
    """The outbox invariant: one delivery per applied change (not the creation), same seq,
    payload = the order at that seq; applied seqs run 1, 2, 3, … without gaps."""
    events, deliveries = await store.history(order.pk), await store.deliveries(order.pk)
    applied = [e.seq for e in events if e.outcome == A]
    assert applied == list(range(1, order.seq + 1))
    assert [d.seq for d in deliveries] == applied[1:]
    by_seq = {e.seq: e for e in events if e.outcome == A}
    for d in deliveries:
        snapshot = msgspec.json.decode(d.payload, type=Order)
        assert (snapshot.seq, snapshot.state.value) == (d.seq, by_seq[d.seq].state.value)
        assert d.state == snapshot.state.value
        assert (snapshot.pk, snapshot.order_id, d.order_pk) == (order.pk, order.order_id, order.pk)
    assert len({d.event_id for d in deliveries}) == len(deliveries)
    return events, deliveries


# -- creation and payment -----------------------------------------------------------------------


async def test_paid_creation_writes_created_then_finding_driver(backend: Backend) -> None:
    async with env(backend) as e:
        payment, (order,) = await e.s.orders.create(e.merchant, request())
        stored = await e.order(order.order_id)
        assert stored == order
        want = (S.FINDING_DRIVER, 2, 0, order.total_price)
        assert (stored.state, stored.seq, payment.status_code, payment.amount) == want
        events, deliveries = await outbox_matches_history(e.store, stored)
        assert rows(events) == [("created", 1, "applied"), ("finding_driver", 2, "applied")]
        assert [ev.from_state for ev in events] == [None, S.CREATED]
        assert [(d.state, d.status) for d in deliveries] == [("finding_driver", "no_endpoint")]
        assert msgspec.json.decode(deliveries[0].payload, type=Order) == stored
        assert (await e.counts())["payments"] == 1


async def test_prepaid_order_waits_as_created_until_paid(backend: Backend) -> None:
    async with env(backend, prepaid=True, callback=True) as e:
        payment, (order,) = await e.s.orders.create(e.merchant, request())
        assert (order.state, order.seq, payment.status_code, payment.pay_time) == (S.CREATED, 1, 9, None)
        assert rows(await e.store.history(order.pk)) == [("created", 1, "applied")]
        assert await e.store.deliveries(order.pk) == []

        paid = await e.s.orders.mark_paid(e.merchant.id, payment.payment_id)
        again = await e.s.orders.mark_paid(e.merchant.id, payment.payment_id)  # idempotent
        assert (paid.status_code, again.status_code) == (0, 0)
        stored = await e.order(order.order_id)
        assert (stored.state, stored.seq) == (S.FINDING_DRIVER, 2)
        events, deliveries = await outbox_matches_history(e.store, stored)
        assert len(events) == 2 and [d.status for d in deliveries] == ["pending"]
        assert (await e.store.get_payment(e.merchant.id, payment.payment_id))[0].status_code == 0


async def test_callback_set_after_login_still_makes_pending_rows(backend: Backend) -> None:
    # The merchant record in hand predates set_callback (as a cached one in another worker
    # would): the outbox status must follow the database, not the stale copy.
    async with env(backend) as e:
        await e.s.hooks.service.set_callback(e.merchant.id, CALLBACK)
        assert e.merchant.callback_url is None
        (order,) = await e.create()
        assert [d.status for d in await e.store.deliveries(order.pk)] == ["pending"]


# -- applied, stale, refused, duplicate -----------------------------------------------------------

WALK = [S.DRIVER_ASSIGNED, S.AT_PICKUP, S.PICKED_UP, S.IN_TRANSIT, S.ON_HOLD, S.IN_TRANSIT, S.DELIVERED]


async def test_every_applied_change_adds_one_event_and_one_delivery(backend: Backend) -> None:
    async with env(backend, callback=True) as e:
        (order,) = await e.create()
        for n, state in enumerate(WALK, start=3):
            before = (len(await e.store.history(order.pk)), len(await e.store.deliveries(order.pk)))
            d = await e.move(order, state, driver=DRIVER, tracking_code="GK-77")
            assert (d.outcome, d.order.seq) == (A, n)
            events, deliveries = await outbox_matches_history(e.store, await e.order(order.order_id))
            assert (len(events), len(deliveries)) == (before[0] + 1, before[1] + 1)
            assert (events[-1].state, deliveries[-1].seq, deliveries[-1].status) == (state, n, "pending")
            assert msgspec.json.decode(deliveries[-1].payload, type=Order) == await e.order(order.order_id)
        final = await e.order(order.order_id)
        assert (final.state, final.driver, final.tracking_code) == (S.DELIVERED, DRIVER, "GK-77")
        assert final.allocated_at is not None and final.finished_at is not None


REJECTED = [
    # (state the order is in, update target, outcome): recorded, seq and order unchanged
    (S.PICKED_UP, S.AT_PICKUP, ST),
    (S.IN_TRANSIT, S.FINDING_DRIVER, ST),
    (S.DELIVERED, S.CANCELLED, RF),
    (S.CANCELLED, S.DRIVER_ASSIGNED, RF),
    (S.FINDING_DRIVER, S.ON_HOLD, RF),
]


@pytest.mark.parametrize(("state", "target", "outcome"), REJECTED)
async def test_stale_and_refused_are_recorded_without_change(
    backend: Backend, state: State, target: State, outcome: Outcome
) -> None:
    async with env(backend, callback=True) as e:
        order = await e.reach(state)
        counts = await e.counts()
        d = await e.move(order, target, native_code="late", dedupe_key="ev-late")
        assert d.outcome == outcome
        assert await e.order(order.order_id) == order
        events = await e.store.history(order.pk)
        assert rows(events)[-1] == (target.value, order.seq, outcome.value)
        assert (events[-1].native_code, events[-1].from_state) == ("late", state)
        assert await e.counts() == {**counts, "order_events": counts["order_events"] + 1}
        # the same courier event again is a duplicate: not even recorded twice
        assert (await e.move(order, target, dedupe_key="ev-late")).outcome == DUP
        assert await e.counts() == {**counts, "order_events": counts["order_events"] + 1}


async def test_same_courier_event_twice_is_applied_once(backend: Backend) -> None:
    async with env(backend) as e:
        (order,) = await e.create()
        outcomes = [
            (await e.move(order, S.DRIVER_ASSIGNED, driver=DRIVER, dedupe_key="gosend-1")).outcome
            for _ in range(3)
        ]
        assert outcomes == [A, DUP, DUP]
        events, deliveries = await outbox_matches_history(e.store, await e.order(order.order_id))
        assert [ev.dedupe_key for ev in events] == [None, None, "gosend-1"]
        assert len(deliveries) == 2
        # same state without a key (no new driver) is also a duplicate, and writes nothing
        counts = await e.counts()
        assert (await e.move(order, S.DRIVER_ASSIGNED, driver=DRIVER)).outcome == DUP
        assert await e.counts() == counts


async def test_unknown_order_is_not_found(backend: Backend) -> None:
    async with env(backend) as e:
        with pytest.raises(NotFound):
            await e.store.transition(e.merchant.id, "NOPE-1", upd(S.PICKED_UP), utcnow())


# -- void and find-new-driver -------------------------------------------------------------------

VOIDABLE = {S.CREATED, S.FINDING_DRIVER, S.NO_DRIVER, S.DRIVER_ASSIGNED, S.AT_PICKUP}
REDRIVE = {  # state → outcome of find-new-driver (None: refused with InvalidOrder)
    S.NO_DRIVER: A,
    S.DRIVER_ASSIGNED: A,
    S.AT_PICKUP: A,
    S.FINDING_DRIVER: DUP,
}


T = TypeVar("T")


async def allowed_or_refused(
    e: Env, order: Order, allowed: bool, action: Callable[[], Awaitable[T]]
) -> T | None:
    """Run a merchant action; when not allowed it must raise InvalidOrder and write nothing."""
    if allowed:
        return await action()
    counts = await e.counts()
    with pytest.raises(InvalidOrder):
        await action()
    assert (await e.counts(), await e.order(order.order_id)) == (counts, order)
    return None


@asynccontextmanager
async def order_in(backend: Backend, state: State) -> AsyncIterator[tuple[Env, Order]]:
    async with env(backend, prepaid=state == S.CREATED) as e:
        yield e, await e.reach(state)


@pytest.mark.parametrize("state", [S.CREATED, *PAID_STATES])
async def test_void(backend: Backend, state: State) -> None:
    async with order_in(backend, state) as (e, order):
        result = await allowed_or_refused(
            e, order, state in VOIDABLE, lambda: e.s.orders.void(e.merchant, order.order_id)
        )
        if result is None:
            return
        payment, voided = result
        assert payment.pk == order.payment_pk
        assert (voided.state, voided.seq) == (S.CANCELLED, order.seq + 1)
        assert voided.canceled_at is not None and voided.cancel_description == "Cancelled by merchant"
        assert await e.order(order.order_id) == voided
        events, _ = await outbox_matches_history(e.store, voided)
        assert (events[-1].source, events[-1].from_state) == (Source.API, state)


@pytest.mark.parametrize("state", [S.CREATED, *PAID_STATES])
async def test_find_new_driver(backend: Backend, state: State) -> None:
    outcome = REDRIVE.get(state)
    async with order_in(backend, state) as (e, order):
        after = await allowed_or_refused(
            e, order, outcome is not None, lambda: e.s.orders.find_new_driver(e.merchant, order.order_id)
        )
        if after is None:
            return
        assert after == await e.order(order.order_id)
        assert (after.state, after.seq) == (S.FINDING_DRIVER, order.seq + (outcome == A))
        assert (after.driver, after.allocated_at, after.cancel_description) == (Driver(), None, None)
        await outbox_matches_history(e.store, after)


# -- one transaction ----------------------------------------------------------------------------


class Boom(Exception):
    pass


def explode(*_: Any) -> None:
    raise Boom()


async def test_guard_refusal_writes_nothing(backend: Backend) -> None:
    async with env(backend) as e:
        order = await e.reach(S.DRIVER_ASSIGNED)
        counts = await e.counts()
        with pytest.raises(Boom):
            await e.store.transition(e.merchant.id, order.order_id, upd(S.AT_PICKUP), utcnow(), explode)
        assert (await e.counts(), await e.order(order.order_id)) == (counts, order)


async def test_failure_after_writes_rolls_back_the_change(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with env(backend, callback=True) as e:
        order = await e.reach(S.DRIVER_ASSIGNED)
        counts = await e.counts()

        async def broken_outbox(*_: Any) -> None:
            raise Boom()  # after the order UPDATE and the history INSERT

        with monkeypatch.context() as m:
            m.setattr(Store, "_enqueue", broken_outbox)
            with pytest.raises(Boom):
                await e.move(order, S.AT_PICKUP)
        assert (await e.counts(), await e.order(order.order_id)) == (counts, order)
        assert (await e.move(order, S.AT_PICKUP)).order.seq == order.seq + 1  # connection still usable
        await outbox_matches_history(e.store, await e.order(order.order_id))


async def test_duplicate_explicit_order_id_writes_nothing(backend: Backend) -> None:
    async with env(backend) as e:
        taken = f"OWN-{uuid.uuid4().hex[:8]}"
        await e.create(order_ids=[taken])
        counts = await e.counts()
        for ids in ([taken], [f"{taken}-new", taken]):
            with pytest.raises(DuplicateOrderId):
                await e.create(order_ids=ids)
            assert await e.counts() == counts
        with pytest.raises(NotFound):
            await e.s.orders.track(e.merchant, f"{taken}-new")


# -- concurrency --------------------------------------------------------------------------------


async def _concurrently(e: Env, order: Order, updates: list[Update]) -> list[HistoryEvent]:
    start = len(await e.store.history(order.pk))
    decisions = await asyncio.gather(
        *(e.store.transition(e.merchant.id, order.order_id, u, utcnow()) for u in updates)
    )
    after = await e.order(order.order_id)
    events, _ = await outbox_matches_history(e.store, after)  # gap-free seq, one delivery each
    assert after.seq == order.seq + sum(d.outcome == A for d in decisions)
    return events[start:]


async def test_concurrent_driver_changes(backend: Backend) -> None:
    async with env(backend, callback=True) as e:
        order = await e.reach(S.DRIVER_ASSIGNED)
        drivers = [Driver(f"Driver {i}", f"08120000010{i}", None) for i in range(5)]
        updates = [
            upd(S.DRIVER_ASSIGNED, driver=drivers[i % 5], dedupe_key=f"drv-{i % 5}") for i in range(20)
        ]
        new = await _concurrently(e, order, updates)
        assert sorted(ev.dedupe_key or "" for ev in new) == [f"drv-{i}" for i in range(5)]
        assert {ev.outcome for ev in new} == {A}
        assert (await e.order(order.order_id)).seq == order.seq + 5


async def test_concurrent_courier_updates(backend: Backend) -> None:
    async with env(backend, callback=True) as e:
        order = await e.reach(S.FINDING_DRIVER)
        targets = [S.DRIVER_ASSIGNED, S.AT_PICKUP, S.PICKED_UP, S.IN_TRANSIT]
        updates = [upd(targets[i % 4], dedupe_key=f"ev-{i % 4}") for i in range(20)]
        new = await _concurrently(e, order, updates)
        # each distinct event recorded once (applied, or stale if a later one won the race)
        assert sorted(ev.state for ev in new) == sorted(targets)
        assert [ev.state for ev in new if ev.state == S.IN_TRANSIT and ev.outcome == A] == [S.IN_TRANSIT]
        applied = [ev.state for ev in new if ev.outcome == A]
        assert applied == sorted(applied, key=targets.index)  # forward only
        assert {ev.outcome for ev in new} <= {A, ST}
        assert (await e.order(order.order_id)).state == S.IN_TRANSIT


# -- generated order ids ------------------------------------------------------------------------

FIXED = datetime(2031, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
FIXED_MS = int(FIXED.timestamp() * 1000)


async def test_generated_ids_are_unique_and_bumped(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(backend) as e:
        monkeypatch.setattr(e.s.orders, "clock", lambda: FIXED)
        prefix = f"G{uuid.uuid4().hex[:6]}"
        payment, big = await e.s.orders.create(e.merchant, request(100, prefix=prefix))
        assert [o.order_id for o in big] == [f"{prefix}-{FIXED_MS + i}" for i in range(100)]
        assert payment.amount == sum(o.total_price for o in big)
        # two more requests in the same millisecond, at once: next free numbers, no clash
        results = await asyncio.gather(
            *(e.s.orders.create(e.merchant, request(prefix=prefix)) for _ in range(2))
        )
        later = sorted(o.order_id for _, orders in results for o in orders)
        assert later == [f"{prefix}-{FIXED_MS + 100}", f"{prefix}-{FIXED_MS + 101}"]
        pids = {payment.payment_id, *(p.payment_id for p, _ in results)}
        assert len(pids) == 3
        counts = await e.counts()
        assert (counts["orders"], counts["payments"], counts["deliveries"]) == (102, 3, 102)


async def test_ids_from_a_real_clock_are_unique(backend: Backend) -> None:
    async with env(backend) as e:
        first, second = await e.create(prefix="RC"), await e.create(prefix="RC")
        (a,), (b,) = first, second
        assert a.order_id != b.order_id
        for o in (a, b):
            prefix, ms = o.order_id.rsplit("-", 1)
            assert prefix == "RC" and abs(int(ms) - int(o.created_at.timestamp() * 1000)) <= 1
