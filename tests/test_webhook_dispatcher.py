"""The dispatcher loop in process, against a real database and a real receiver on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from lacak.settings import Settings
from lacak.storage.rows import as_dt
from lacak.timeutil import utcnow
from lacak.webhooks import store as dispatcher_store
from lacak.wiring import services
from tests.support import Backend, free_port, fresh_backend
from tests.test_store import Env, request

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def own(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with fresh_backend(request.param, tmp_path_factory.mktemp(f"dispatcher-{request.param}")) as b:
        yield b


class Receiver:
    def __init__(self, expect: int) -> None:
        self.ids: list[str] = []
        self.expect = expect
        self.all_in = asyncio.Event()

    async def handle(self, req: web.Request) -> web.Response:
        await req.read()
        self.ids.append(req.headers["webhook-id"])
        if len(self.ids) >= self.expect:
            self.all_in.set()
        return web.Response(text="ok")


@pytest.fixture()
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recv = Receiver(expect=60)
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above
    yield recv, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def test_stopping_right_after_the_sends_keeps_every_result(
    own: Backend, receiver: tuple[Receiver, str]
) -> None:
    recv, url = receiver
    async with services(own.settings()) as s:
        merchant, _ = await s.merchants.create("dispatch-stop")
        await s.hooks.service.set_callback(merchant.id, url)
        e = Env(s, own, merchant)
        await s.orders.create(merchant, request(60))
        stop = asyncio.Event()
        loop = asyncio.create_task(s.hooks.dispatcher.run_forever(stop))
        await asyncio.wait_for(recv.all_in.wait(), 60)
        stop.set()  # while the last results are being written
        await asyncio.wait_for(loop, 60)
        rows = await e.s.db.fetch(
            "SELECT status, count(*) FROM deliveries WHERE merchant_id = $1 GROUP BY status", merchant.id
        )
    assert {r[0]: r[1] for r in rows} == {"delivered": 60}
    assert len(recv.ids) == len(set(recv.ids)) == 60


async def test_an_unreachable_endpoint_is_held_back_while_the_others_flow(
    own: Backend, receiver: tuple[Receiver, str]
) -> None:
    recv, url = receiver
    env = own.env(LACAK_WEBHOOK_ALLOW_PRIVATE="1", LACAK_WEBHOOK_PER_ENDPOINT="2")
    async with services(Settings.from_env(env)) as s:
        good, _ = await s.merchants.create("breaker-good")
        down, _ = await s.merchants.create("breaker-down")
        await s.hooks.service.set_callback(good.id, url)
        await s.hooks.service.set_callback(down.id, f"http://127.0.0.1:{free_port()}/hook")  # refused
        await s.orders.create(down, request(30))  # older: first in line
        await s.orders.create(good, request(60))
        stop = asyncio.Event()
        loop = asyncio.create_task(s.hooks.dispatcher.run_forever(stop))
        await asyncio.wait_for(recv.all_in.wait(), 60)
        stop.set()
        await asyncio.wait_for(loop, 60)
        rows = await s.db.fetch(
            "SELECT attempts, status, next_attempt_at FROM deliveries WHERE merchant_id = $1", down.id
        )
        opened_by = utcnow()
        # Its new events are scheduled after the hold: they wake no claim meanwhile.
        await s.orders.create(down, request(2))
        fresh = await s.db.fetch(
            "SELECT next_attempt_at FROM deliveries WHERE merchant_id = $1 AND attempts = 0"
            " AND created_at >= $2",
            down.id,
            opened_by,
        )
        held_until = (await s.hooks.service.endpoint(down.id)).held_until
    attempts = [r[0] for r in rows]
    assert len(attempts) == 30 and {r[1] for r in rows} == {"pending"}
    # Those not attempted were moved to the end of the cooldown: claims do not scan past them.
    later = [as_dt(r[2]) for r in rows if r[0] == 0]
    assert later and all(t is not None and t > opened_by + timedelta(seconds=1) for t in later), later
    # Three refused connections in a row open the breaker (with two in flight at a time, a fourth
    # may already be out): the other events wait, unattempted, for the 5 s cooldown, while the
    # healthy endpoint got all of its 60.
    assert sum(attempts) <= 4 and attempts.count(0) >= 26
    assert len(set(recv.ids)) == 60
    assert held_until is not None and held_until > opened_by
    assert len(fresh) == 2 and all(as_dt(r[0]) == held_until for r in fresh)


async def test_a_capped_backlog_at_the_head_of_the_queue_does_not_hold_up_others(own: Backend) -> None:
    # 150 due events of a slow merchant come first; with two in flight per endpoint, each claim
    # can take only what that merchant's cap allows. The fast merchant's later events must still
    # go at once, not after the slow backlog drains.
    fast_ids: list[str] = []
    fast_in = asyncio.Event()

    async def slow(req: web.Request) -> web.Response:
        await req.read()
        await asyncio.sleep(0.3)
        return web.Response(text="ok")

    async def fast(req: web.Request) -> web.Response:
        await req.read()
        fast_ids.append(req.headers["webhook-id"])
        if len(fast_ids) >= 5:
            fast_in.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/fast", fast)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started above
    env = own.env(LACAK_WEBHOOK_ALLOW_PRIVATE="1", LACAK_WEBHOOK_PER_ENDPOINT="2")
    try:
        async with services(Settings.from_env(env)) as s:
            a, _ = await s.merchants.create("backlog-slow")
            b, _ = await s.merchants.create("backlog-fast")
            await s.hooks.service.set_callback(a.id, f"http://127.0.0.1:{port}/slow")
            await s.hooks.service.set_callback(b.id, f"http://127.0.0.1:{port}/fast")
            for _ in range(3):
                await s.orders.create(a, request(50))
            await s.orders.create(b, request(5))
            stop = asyncio.Event()
            loop = asyncio.create_task(s.hooks.dispatcher.run_forever(stop))
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(fast_in.wait(), 30)
            waited = asyncio.get_running_loop().time() - started
            stop.set()
            await asyncio.wait_for(loop, 30)
    finally:
        await runner.cleanup()
    assert waited < 3.0, waited  # the slow backlog alone takes 150 x 0.3 s / 2 = 22 s


@pytest.fixture(params=["sqlite", "postgres"])
def alone(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A database for one test: other tests leave deliveries due later, which claims would find."""
    with fresh_backend(request.param, tmp_path) as b:
        yield b


async def test_state_changes_that_enqueue_nothing_to_send_cost_no_claim(
    alone: Backend, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shop without a callback URL changes state all day: each commit wakes the sender, which
    # must see with a read that nothing is due instead of taking the write lock for a claim.
    recv, url = receiver
    async with services(alone.settings()) as s:
        silent, _ = await s.merchants.create("no-callback")
        hooked, _ = await s.merchants.create("with-callback")
        await s.hooks.service.set_callback(hooked.id, url)
        claims: list[int] = []
        real_claim = dispatcher_store.claim

        async def counting_claim(*args: object, **kwargs: object) -> object:
            jobs = await real_claim(*args, **kwargs)
            claims.append(len(jobs))
            return jobs

        monkeypatch.setattr(dispatcher_store, "claim", counting_claim)
        stop = asyncio.Event()
        loop = asyncio.create_task(s.hooks.dispatcher.run_forever(stop))
        await asyncio.sleep(0.3)
        before = len(claims)
        for _ in range(20):
            await s.orders.create(silent, request(1))  # a no_endpoint outbox row, and a wake-up
            await asyncio.sleep(0.01)
        empty_claims = len(claims) - before
        await s.orders.create(hooked, request(3))  # these must still leave at once
        recv.expect = 3
        await asyncio.wait_for(recv.all_in.wait(), 10)
        stop.set()
        await asyncio.wait_for(loop, 60)
    assert empty_claims == 0, claims
    assert sum(claims) == 3 and len(set(recv.ids)) == 3


async def test_an_answer_to_a_probe_ends_the_hold_for_new_events(
    alone: Backend, receiver: tuple[Receiver, str]
) -> None:
    recv, url = receiver
    async with services(Settings.from_env(alone.env(LACAK_WEBHOOK_ALLOW_PRIVATE="1"))) as s:
        m, _ = await s.merchants.create("probe-answered")
        await s.hooks.service.set_callback(m.id, url)
        _, (first,) = await s.orders.create(m, request(1))
        d = s.hooks.dispatcher
        for _ in range(3):  # as if three sends had been refused: the breaker holds it back
            d.breaker.record(m.id, "connect", time.monotonic())
        async with s.db.transaction() as tx:  # ...and wrote the hold, as the recorder does
            until = utcnow() + timedelta(minutes=1)
            await tx.execute(
                "UPDATE webhook_endpoints SET held_until = $2 WHERE merchant_id = $1", m.id, until
            )
        await s.orders.create(m, request(1))  # scheduled after the hold
        assert await d.run_once() == 0
        row = await s.db.fetchrow("SELECT event_id FROM deliveries WHERE order_pk = $1", first.pk)
        assert row is not None
        await s.hooks.service.resend(row[0], m.id)  # a manual resend goes even while held: a probe
        assert await d.run_once() == 1 and len(recv.ids) == 1  # answered: the hold is over
        assert (await s.hooks.service.endpoint(m.id)).held_until is None
        await s.orders.create(m, request(1))  # due at once again
        assert await d.run_once() == 1 and len(recv.ids) == 2
