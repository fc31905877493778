"""The live hub on real databases: changes reach open pages at once, positions at most every
2 s, missed notifications are caught by the look, finished links expire."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from lacak.live.hub import LiveHub, Watch
from lacak.live.store import LiveStore
from lacak.orders.models import Order, State
from lacak.positions import store as positions
from lacak.positions.store import Point
from lacak.timeutil import utcnow
from tests.support import Backend, fresh_backend
from tests.test_store import DRIVER, Env, env

pytestmark = pytest.mark.anyio
S = State


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def own(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with fresh_backend(request.param, tmp_path_factory.mktemp(f"live-hub-{request.param}")) as b:
        yield b


@pytest.fixture()
async def e(own: Backend) -> AsyncIterator[Env]:
    async with env(own) as it:
        yield it


class Counting(LiveStore):
    loads = 0

    async def load(self, pk: int, found=None):  # type: ignore[no-untyped-def]
        self.loads += 1
        await asyncio.sleep(0.05)  # long enough for every caller to arrive while it runs
        return await super().load(pk, found)


def hub_of(e: Env, *, poll: float = 0.1, ttl_hours: float = 24.0) -> LiveHub:
    return LiveHub(e.s.live.store, ttl_hours, poll, utcnow)


async def running(hub: LiveHub) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(hub.run(stop))


async def until(watch: Watch, what: str, within: float = 3.0) -> float:
    """Seconds until `watch` is marked with `what`."""
    t0 = time.monotonic()
    deadline = t0 + within
    while time.monotonic() < deadline:
        if await watch.wait(max(0.0, deadline - time.monotonic())) and getattr(watch, what):
            return time.monotonic() - t0
    raise AssertionError(f"no {what} within {within} s")


async def subscribe(hub: LiveHub, order: Order) -> Watch:
    subscribed = await hub.subscribe(order.pk)
    assert subscribed is not None
    return subscribed[0]


async def test_a_state_change_reaches_an_open_page_at_once(e: Env) -> None:
    # The runtime as `lacak serve` runs it: NOTIFY on PostgreSQL, the commit hook on SQLite,
    # and the 2 s look far too slow to explain a fast arrival.
    e.s.live.start()
    hub = e.s.live.hub
    (order,) = await e.create()
    watch = await subscribe(hub, order)
    await asyncio.sleep(0.3)  # the LISTEN connection is up
    t0 = time.monotonic()
    await e.move(order, S.DRIVER_ASSIGNED, driver=DRIVER)
    await until(watch, "state", within=1.5)
    assert time.monotonic() - t0 < 1.0
    entry = hub.entry(order.pk)
    assert entry is not None and entry.snapshot["state"] == "driver_assigned"
    assert entry.state.startswith(b"id: %d\nevent: state\ndata: {" % entry.seq)
    assert entry.snapshot["driver"]["phone"] == "0812****001"


async def test_pages_of_one_order_share_one_read_and_are_forgotten_when_closed(e: Env) -> None:
    counting = Counting(e.s.db, e.s.store)
    hub = LiveHub(counting, 24.0, 0.1, utcnow)
    (order,) = await e.create()
    subscribed = await asyncio.gather(*(hub.subscribe(order.pk) for _ in range(20)))
    assert counting.loads == 1 and hub.streams == 20
    for s in subscribed:
        assert s is not None
        hub.unsubscribe(s[0])
    assert hub.streams == 0 and hub.entry(order.pk) is None
    assert await hub.subscribe(10**12) is None  # no such order


async def test_positions_reach_a_page_at_most_every_two_seconds(e: Env) -> None:
    hub = hub_of(e, poll=0.1)
    (order,) = await e.create()
    await e.move(order, S.DRIVER_ASSIGNED, driver=DRIVER)
    watch = await subscribe(hub, order)
    stop, task = await running(hub)
    marks: list[float] = []

    async def drive() -> None:
        for i in range(24):  # a point every 0.2 s for 4.8 s
            async with e.s.db.transaction() as tx:
                point = Point(-7.80 + i * 0.001, 110.35, utcnow())
                await positions.add(tx, order.pk, [point], "driver")
            await asyncio.sleep(0.2)

    async def watching() -> None:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if await watch.wait(0.2) and watch.position:
                watch.position = False
                marks.append(time.monotonic())

    await asyncio.gather(drive(), watching())
    stop.set()
    await task
    assert 2 <= len(marks) <= 3, marks
    assert all(b - a >= 1.9 for a, b in itertools.pairwise(marks))
    entry = hub.entry(order.pk)
    assert entry is not None and entry.position.startswith(b'event: position\ndata: {"lat":-7.7')


async def test_a_change_nobody_announced_is_found_by_the_look(e: Env) -> None:
    # Another process on SQLite, or a notification lost while LISTEN reconnected: the write
    # below bypasses the store (no effect, no listener), as such a change looks from here.
    hub = hub_of(e, poll=0.2)
    (order,) = await e.create()
    watch = await subscribe(hub, order)
    stop, task = await running(hub)
    await asyncio.sleep(0.1)
    async with e.s.db.transaction() as tx:
        await tx.execute("UPDATE orders SET seq = seq + 1, state = 'no_driver' WHERE id = $1", order.pk)
    waited = await until(watch, "state", within=2.0)
    stop.set()
    await task
    assert waited < 1.0
    entry = hub.entry(order.pk)
    assert entry is not None and entry.snapshot["state"] == "no_driver"


async def test_a_finished_orders_pages_are_told_its_link_expired(e: Env) -> None:
    hub = hub_of(e, poll=0.1, ttl_hours=0.5 / 3600)  # half a second
    (order,) = await e.create()
    await e.move(order, S.CANCELLED, reason="Dibatalkan")
    watch = await subscribe(hub, order)
    entry = hub.entry(order.pk)
    assert entry is not None and entry.expires is not None
    assert entry.expires - utcnow() < timedelta(seconds=1)
    stop, task = await running(hub)
    await until(watch, "gone", within=3.0)
    stop.set()
    await task
