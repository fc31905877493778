"""The webhook benchmark: deliveries per second per worker against raw aiohttp POSTs, commit →
receipt lag at a steady event rate, and what an endpoint that is down costs the others.

    .venv/bin/python bench/webhooks.py --backend sqlite|postgres|both [--events 20000] [--rate 500]

For each backend, against one fast local receiver (its own process: uvloop + httptools,
answers 200 with keep-alive, records the `webhook-id` and the receive time of every request):

  raw aiohttp        one process POSTs --events bodies of a typical webhook's size, with the
                     same headers and concurrency, plain `ClientSession.post`: the reference,
                     measured before and after the lacak runs (the mean is used)
  10 healthy         --events pending outbox rows over 10 merchants, then ONE `lacak worker`
                     process; deliveries/s = rows / (spawn → last receipt), and steady-state
                     from receipt #10 % to #90 %
  10 healthy + down  the same plus an 11th merchant whose URL is a closed port, with
                     --events / 10 rows among them (connection refused: every attempt fails,
                     retries stay pending); the healthy rate over 10 healthy's is the ratio
  9 healthy (+ down) the same with 9 healthy merchants (ten in all with the one down): 9 x the
                     per-endpoint cap leaves 10 of the 100 slots to the one that is down
  lag                orders moved up their lifecycle at --rate state changes/s for
                     --lag-seconds; lag = receipt time - the time the change was committed.
                     SQLite: `lacak serve` with its embedded dispatcher (the default as
                     shipped, woken in process), changes through its operator API.
                     PostgreSQL: one `lacak worker` woken by LISTEN/NOTIFY, changes made by
                     this process with lacak's own services; and, for comparison, the
                     embedded setup.

Every event must reach the receiver exactly once, and the database must agree (delivered, one
attempt each). See bench/README.md, "Webhook benchmark".
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script (`python bench/webhooks.py`): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from bench import fake, harness
from bench.harness import BenchError
from bench.seed import BENCH_SECRET_KEY, seed
from lacak.crypto import SecretBox
from lacak.orders.models import Order
from lacak.storage.db import Database, connect
from lacak.storage.rows import ORDER_COLUMNS, PAYMENT_COLUMNS, as_dt, order_from_row, payment_from_row
from lacak.storage.store import new_event_id
from lacak.webhooks import dialects, signing
from lacak.webhooks.dispatcher import KEY_CONTEXT, SECRET_CONTEXT, USER_AGENT

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_DEFAULT = os.environ.get("LACAK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "bench-admin-token"  # noqa: S105  (the benchmark's own server, on localhost)

TARGET_SHARE = 0.40  # lacak deliveries/s over raw aiohttp POSTs/s
TARGET_PER_WORKER = 2000.0  # deliveries/s of one worker process
TARGET_P99_MS = 250.0  # commit → receipt at a steady --rate
TARGET_DOWN = 0.90  # healthy throughput with one endpoint down / without

HEALTHY = 10  # merchants 1..10 point at the receiver
DEAD = HEALTHY + 1  # merchant 11 points at a closed port
# What the lag run does to each order, in order: five state changes, five webhooks.
LADDER = ("driver_assigned", "at_pickup", "picked_up", "in_transit", "delivered")
CONTROL = "/_bench/"
_OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":true}'


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- the receiver (its own process) ---------------------------------------------------------------


class _Sink:
    """Every webhook received: (webhook-id, receive time, body bytes)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, float, int]] = []

    def control(self, path: bytes) -> bytes:
        what = path.decode().removeprefix(CONTROL).partition("?")[0]
        if what == "reset":
            self.records = []
        if what == "dump":
            body = "".join(f"{i.decode()}\t{t!r}\t{n}\n" for i, t, n in self.records).encode()
        else:
            body = str(len(self.records)).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body


class _Hook(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, parsed by httptools (uvicorn's parser): as cheap as a real
    receiver can be, so the receiver is not what limits either measurement."""

    def __init__(self, sink: _Sink) -> None:
        import httptools

        self.sink = sink
        self.parser = httptools.HttpRequestParser(self)
        self.error = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.hook_id = b""
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.error:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.hook_id, self.size = b"", b"", 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self.hook_id = value

    def on_body(self, body: bytes) -> None:
        self.size += len(body)

    def on_message_complete(self) -> None:
        now = time.time()
        assert self.transport is not None
        if self.url.startswith(CONTROL.encode()):
            self.transport.write(self.sink.control(self.url))
        else:
            self.sink.records.append((self.hook_id, now, self.size))
            self.transport.write(_OK)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def _receive_forever(port: int) -> None:
    sink = _Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Hook(sink), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


class Receiver:
    """The receiver process, seen from the harness."""

    def __init__(self, log_file: Path) -> None:
        self.port = harness.free_port()
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, merchant: int) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{merchant}"

    def start(self) -> Receiver:
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--role", "receiver", "--port", str(self.port)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"receiver exited at start:\n{self.log_file.read_text()[-2000:]}")
            try:
                self.count()
                return self
            except OSError:
                time.sleep(0.05)
        raise BenchError("receiver did not answer within 20 s")

    def _get(self, what: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", CONTROL + what)
            return conn.getresponse().read()
        finally:
            conn.close()

    def count(self) -> int:
        return int(self._get("count"))

    def reset(self) -> None:
        self._get("reset")

    def dump(self) -> list[tuple[str, float, int]]:
        out = []
        for line in self._get("dump").decode().splitlines():
            hook_id, at, size = line.split("\t")
            out.append((hook_id, float(at), int(size)))
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# -- the raw aiohttp reference (its own process) --------------------------------------------------


async def _post_flat_out(
    url: str, body: bytes, headers: dict[str, str], posts: int, concurrency: int
) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    statuses: Counter[int] = Counter()
    todo = iter(range(posts))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_client() -> None:
            for i in todo:
                # The same id length as lacak's "msg_" + 32 hex, unique per POST.
                h = {**headers, "webhook-id": f"ref_{i:032d}"}
                async with session.post(url, data=body, headers=h) as resp:
                    await resp.read()
                    statuses[resp.status] += 1

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"posts": posts, "seconds": seconds, "cpu": cpu, "statuses": dict(statuses)}


def _raw_main(args: argparse.Namespace) -> None:
    spec = json.loads(Path(args.spec).read_text())
    work = _post_flat_out(spec["url"], spec["body"].encode(), spec["headers"], args.posts, args.concurrency)
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(work)
    else:
        result = asyncio.run(work)
    print(json.dumps(result), flush=True)


@dataclass
class Reference:
    loop: str
    posts: int
    seconds: float
    rate: float
    cpu_us: float  # client CPU per POST
    body_bytes: int


def reference(
    receiver: Receiver, spec: Path, posts: int, concurrency: int, loop: str, body_bytes: int
) -> Reference:
    receiver.reset()
    cmd = [sys.executable, __file__, "--role", "raw", "--spec", str(spec), "--posts", str(posts),
           "--concurrency", str(concurrency), "--loop", loop]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"raw client failed:\n{done.stderr[-2000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    got = receiver.count()
    if r["statuses"] != {"200": posts} or got != posts:
        raise BenchError(f"raw client: statuses {r['statuses']}, receiver counted {got} of {posts}")
    return Reference(loop, posts, r["seconds"], posts / r["seconds"], r["cpu"] / posts * 1e6, body_bytes)


# -- databases ------------------------------------------------------------------------------------


Db = harness.Database


def database(backend: str, root: Path, pg_admin: str) -> AbstractContextManager[Db]:
    """A fresh, empty database, removed afterwards (a temp dir / a `lacak_bench_*` database)."""
    return harness.database(backend, root / backend, pg_admin, "webhooks")


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    """lacak's own database layer: the same parameter and timestamp handling as the product."""
    db = connect(url, pool_size=2)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def _endpoints(url: str, receiver: Receiver, dead_port: int, dialect: str) -> None:
    """Callback URLs (healthy ones at the receiver, the dead one at a closed port) and a sealed
    signing secret each, as `set_callback` leaves them."""
    box = SecretBox(bytes.fromhex(BENCH_SECRET_KEY))
    now = datetime.now(UTC)
    async with opened(url) as db, db.transaction() as tx:
        for m in range(1, DEAD + 1):
            target = receiver.url(m) if m != DEAD else f"http://127.0.0.1:{dead_port}/hooks/{m}"
            await tx.execute(
                "UPDATE merchants SET callback_url = $2, webhook_dialect = $3 WHERE id = $1",
                m,
                target,
                dialect,
            )
            sealed = box.seal(signing.new_secret(), context=SECRET_CONTEXT)
            await tx.execute(
                "INSERT INTO webhook_endpoints (merchant_id, secret_enc, updated_at) VALUES ($1, $2, $3)",
                m, sealed, now,
            )  # fmt: skip


def seed_database(db: Db, orders: int, receiver: Receiver, dead_port: int, dialect: str) -> float:
    """bench/seed.py's merchants, keys, payments and orders, then the webhook endpoints."""
    started = time.perf_counter()
    seed(db.url, fake.Plan(orders, DEAD), db.work / "pairs.tsv")
    asyncio.run(_endpoints(db.url, receiver, dead_port, dialect))
    return time.perf_counter() - started


async def _orders_by_merchant(db: Database) -> dict[int, list[Order]]:
    rows = await db.fetch(f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY id")
    out: dict[int, list[Order]] = {}
    for r in rows:
        order = order_from_row(r)
        out.setdefault(order.merchant_id, []).append(order)
    return out


async def _insert_outbox(url: str, plan: Sequence[int], lag_pks: set[int]) -> tuple[int, dict[str, int]]:
    """Pending outbox rows for the merchants in `plan` (one merchant id per row, in this order),
    as `Store._enqueue` writes them: each a snapshot of one of the merchant's orders.

    Returns the highest delivery id before the insert and {event_id: merchant_id}.
    """
    now = datetime.now(UTC)
    async with opened(url) as db:
        before = await db.fetchrow("SELECT coalesce(max(id), 0) FROM deliveries")
        assert before is not None
        orders = {
            m: [o for o in os_ if o.pk not in lag_pks] for m, os_ in (await _orders_by_merchant(db)).items()
        }
        turn: Counter[int] = Counter()
        rows: list[tuple[Any, ...]] = []
        events: dict[str, int] = {}
        for m in plan:
            mine = orders[m]
            k = turn[m]
            turn[m] += 1
            order = mine[k % len(mine)]
            order = msgspec.structs.replace(order, seq=order.seq + k // len(mine))
            event_id = new_event_id()
            events[event_id] = m
            rows.append((event_id, m, order.pk, order.seq, order.state.value,
                         msgspec.json.encode(order).decode(), now))  # fmt: skip
        sql = (
            "INSERT INTO deliveries (event_id, merchant_id, order_pk, seq, state, status, payload,"
            " next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7)"
        )
        for i in range(0, len(rows), 5000):
            async with db.transaction() as tx:
                await tx.executemany(sql, rows[i : i + 5000])
        if db.dialect == "postgresql":
            async with db.transaction() as tx:
                await tx.execute("ANALYZE deliveries")  # as autovacuum would have, after a burst
    return int(before[0]), events


async def _typical_body(url: str, dialect: str) -> tuple[bytes, dict[str, str]]:
    """The median-sized body of 201 seeded orders, rendered as the dispatcher renders them,
    with the headers the dispatcher sends (a real bearer key and signature)."""
    box = SecretBox(bytes.fromhex(BENCH_SECRET_KEY))
    async with opened(url) as db:
        orders = [o for os_ in (await _orders_by_merchant(db)).values() for o in os_[:20]][:201]
        bodies = []
        for o in orders:
            p = await db.fetchrow(f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1", o.payment_pk)
            assert p is not None
            event_id = new_event_id()
            when, paid = datetime.now(UTC), payment_from_row(p)
            bodies.append(dialects.render(dialects.Dialect(dialect), o, event_id=event_id, event_time=when,
                                          payment=paid))  # fmt: skip
        key = await db.fetchrow("SELECT key_enc FROM api_keys WHERE merchant_id = 1 AND revoked_at IS NULL")
        secret = await db.fetchrow("SELECT secret_enc FROM webhook_endpoints WHERE merchant_id = 1")
        assert key is not None and secret is not None
    body = sorted(bodies, key=len)[len(bodies) // 2]
    headers = {
        "User-Agent": USER_AGENT, "Content-Type": "application/json", "Accept": "application/json",
        "Authorization": "Bearer " + box.open(key[0], context=KEY_CONTEXT),
        **signing.headers([box.open(secret[0], context=SECRET_CONTEXT)], event_id, int(time.time()), body),
    }  # fmt: skip
    return body, headers


async def _outcome(url: str, after: int) -> dict[str, Any]:
    """What the database says about the rows inserted after delivery id `after`."""
    async with opened(url) as db:
        statuses = await db.fetch(
            "SELECT merchant_id, status, count(*), sum(attempts) FROM deliveries WHERE id > $1"
            " GROUP BY merchant_id, status",
            after,
        )
        attempts = await db.fetch(
            "SELECT d.merchant_id, a.outcome, a.error_class, count(*) FROM delivery_attempts a"
            " JOIN deliveries d ON d.id = a.delivery_id WHERE d.id > $1"
            " GROUP BY d.merchant_id, a.outcome, a.error_class",
            after,
        )
    out: dict[str, Counter[str]] = {"status": Counter(), "claims": Counter(), "attempts": Counter()}
    for m, status, n, claims in statuses:
        side = "dead" if m == DEAD else "healthy"
        out["status"][f"{side}:{status}"] += int(n)
        out["claims"][side] += int(claims or 0)
    for m, outcome, error_class, n in attempts:
        side = "dead" if m == DEAD else "healthy"
        out["attempts"][f"{side}:{outcome}:{error_class or '-'}"] += int(n)
    return {k: dict(v) for k, v in out.items()}  # plain dicts: asdict() rebuilds a Counter wrongly


async def _delivered(url: str, after: int) -> int:
    async with opened(url) as db:
        row = await db.fetchrow(
            "SELECT count(*) FROM deliveries WHERE id > $1 AND status = 'delivered'", after
        )
    return 0 if row is None else int(row[0])


async def _park_dead(url: str) -> None:
    """The down endpoint's rows would come due again in the next run: set them aside."""
    async with opened(url) as db, db.transaction() as tx:
        await tx.execute("UPDATE deliveries SET status = 'failed' WHERE merchant_id = $1", DEAD)


# -- lacak processes ------------------------------------------------------------------------------


def lacak_env(db: Db, concurrency: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LACAK_")}
    env.update(
        LACAK_DATABASE_URL=db.url,
        LACAK_DATA_DIR=str(db.work),
        LACAK_SECRET_KEY=BENCH_SECRET_KEY,
        LACAK_WEBHOOK_ALLOW_PRIVATE="1",  # the receiver is on 127.0.0.1
        LACAK_WEBHOOK_CONCURRENCY=str(concurrency),
        LACAK_ADMIN_TOKEN=ADMIN_TOKEN,
        LACAK_ACCESS_LOG="0",
        LACAK_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


class Lacak:
    """`python -m lacak worker` or `serve`, exactly as operators run them."""

    def __init__(self, args: list[str], env: dict[str, str], log_file: Path) -> None:
        self.args = args
        self.env = env
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Lacak:
        with self.log_file.open("ab") as out:
            self.started = time.time()
            self.proc = subprocess.Popen([sys.executable, "-m", "lacak", *self.args], cwd=ROOT,
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        return self

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(
                f"lacak {self.args[0]} died:\n{self.log_file.read_text(errors='replace')[-3000:]}"
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the worker finishes its sends and records them
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_healthz(port: int, server: Lacak) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server.alive()
        try:
            if harness.get(port, "/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError("lacak serve did not answer /healthz within 60 s")


# -- throughput runs ------------------------------------------------------------------------------


@dataclass
class Run:
    backend: str
    name: str
    healthy: int  # deliveries the receiver must get
    dead: int  # rows for the endpoint that is down
    startup_s: float = 0.0  # worker spawn → first receipt
    seconds: float = 0.0  # worker spawn → last receipt
    total_rate: float = 0.0  # healthy / seconds
    steady_rate: float = 0.0  # receipts #10 % → #90 %
    body_bytes: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core, receipts #10 % → #90 %
    runq: dict[str, float] = field(default_factory=dict)  # runnable, waiting for a core, same window
    worker_cpu_us: float = 0.0  # worker CPU per delivery, receipts #10 % → #90 %
    dead_attempts: int = 0
    stalled_s: float = 0.0  # receipts #10 % → #90 %: time in gaps > STALL without a receipt
    max_gap_ms: float = 0.0
    db: dict[str, Any] = field(default_factory=dict)


# Seconds without a receipt that count as a stall: longer than a batch cycle (claim, send 100,
# record: tens of ms) by far, as long as half the dispatcher's idle timer (1 s).
STALL = 0.5


def steady(times: Sequence[float]) -> tuple[float, float, float]:
    """Between receipt #10 % and #90 % (without startup and tail): deliveries/s, the seconds
    spent in gaps longer than STALL without any receipt, and the longest gap."""
    n = len(times)
    lo, hi = int(n * 0.1), max(int(n * 0.9) - 1, int(n * 0.1) + 1)
    span = times[hi] - times[lo]
    gaps = [b - a for a, b in zip(times[lo:hi], times[lo + 1 : hi + 1], strict=True)]
    stalled = sum(g for g in gaps if g > STALL)
    return ((hi - lo) / span if span > 0 else 0.0), stalled, max(gaps, default=0.0)


@dataclass
class Setup:
    db: Db
    receiver: Receiver
    args: argparse.Namespace
    lag_pks: set[int]

    def env(self, **extra: str) -> dict[str, str]:
        return lacak_env(self.db, self.args.concurrency, **extra)


def interleave(healthy: int, merchants: int, dead: int) -> list[int]:
    """Merchant ids row by row: round-robin over the healthy ones, the dead one's rows spread
    evenly among them, so that every claim meets some."""
    plan = [i % merchants + 1 for i in range(healthy)]
    if dead:
        step = len(plan) / dead
        for k in reversed(range(dead)):
            plan.insert(int(k * step), DEAD)
    return plan


@dataclass(frozen=True)
class Sample:
    """The receiver's count and each party's (CPU, run-queue wait) seconds at one moment."""

    at: float
    count: int
    sched: dict[str, tuple[float, float]]
    pg: dict[int, tuple[float, float]]  # by backend pid: backends come and go

    @classmethod
    def take(cls, s: Setup, pids: dict[str, int], count: int = 0) -> Sample:
        pg = {}
        if s.db.pg_name:
            pg = {pid: harness.sched(pid) for pid in harness.pg_backend_pids(s.args.pg_url, s.db.pg_name)}
        return cls(time.time(), count, {name: harness.sched(pid) for name, pid in pids.items()}, pg)

    def since(self, lo: Sample) -> tuple[dict[str, float], dict[str, float]]:
        """Shares of one core between `lo` and now: on a CPU, and waiting for one."""
        wall = self.at - lo.at
        both = {k: (v[0] - lo.sched[k][0], v[1] - lo.sched[k][1]) for k, v in self.sched.items()}
        if self.pg or lo.pg:
            common = [p for p in self.pg if p in lo.pg]
            both["postgres"] = (sum(self.pg[p][0] - lo.pg[p][0] for p in common),
                                sum(self.pg[p][1] - lo.pg[p][1] for p in common))  # fmt: skip
        return {k: v[0] / wall for k, v in both.items()}, {k: v[1] / wall for k, v in both.items()}


def throughput(s: Setup, name: str, merchants: int, dead: int, *, profile: Path | None = None) -> Run:
    n = s.args.events
    after, events = asyncio.run(_insert_outbox(s.db.url, interleave(n, merchants, dead), s.lag_pks))
    want = {e for e, m in events.items() if m != DEAD}
    run = Run(s.db.backend, name, len(want), dead)
    s.receiver.reset()
    worker = Lacak(["worker"], s.env(), s.db.work / "worker.log").start()
    pids = {"worker": worker.pid, "receiver": s.receiver.pid}
    spy = _spy(worker.pid, profile) if profile else None
    deadline = time.monotonic() + max(120.0, n / 100)
    # CPU is read when the receiver passes 10 % and 90 %: the steady state, without the
    # worker's start (imports, connecting) and the tail.
    marks: list[Sample] = []
    try:
        while (got := s.receiver.count()) < len(want):
            worker.alive()
            if len(marks) < 2 and got >= len(want) * (0.1, 0.9)[len(marks)]:
                marks.append(Sample.take(s, pids, got))
            if time.monotonic() > deadline:
                raise BenchError(f"{name}: only {got} of {len(want)} delivered in time")
            time.sleep(0.05)
        if len(marks) < 2:
            raise BenchError(f"{name}: the run was too short to sample the steady state (raise --events)")
        # Results are written after the receipt (group commit): stop once they are all in, so
        # the stop cannot catch the last batch on its way to the database.
        while asyncio.run(_delivered(s.db.url, after)) < len(want):
            worker.alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{name}: the receiver has all, the database not (results unwritten)")
            time.sleep(0.1)
    finally:
        worker.stop()
        if spy is not None:
            spy.wait(30)
    records = s.receiver.dump()
    _check_once(name, records, want)
    times = sorted(t for _, t, _ in records)
    run.startup_s = times[0] - worker.started
    run.seconds = times[-1] - worker.started
    run.total_rate = len(want) / run.seconds
    run.steady_rate, run.stalled_s, gap = steady(times)
    run.max_gap_ms = gap * 1000
    run.body_bytes = statistics.fmean(size for _, _, size in records)
    lo, hi = marks
    run.cpu, run.runq = hi.since(lo)
    run.worker_cpu_us = (hi.sched["worker"][0] - lo.sched["worker"][0]) / (hi.count - lo.count) * 1e6
    run.db = asyncio.run(_outcome(s.db.url, after))
    _check_db(name, run, len(want))
    run.dead_attempts = sum(v for k, v in run.db["attempts"].items() if k.startswith("dead:"))
    if dead:
        asyncio.run(_park_dead(s.db.url))
    return run


def _check_once(what: str, records: Sequence[tuple[str, float, int]], want: set[str]) -> None:
    got = Counter(i for i, _, _ in records)
    dupes = sum(c - 1 for c in got.values() if c > 1)
    missing, extra = want - got.keys(), got.keys() - want
    if dupes or missing or extra:
        raise BenchError(f"{what}: not exactly once: {dupes} duplicates, {len(missing)} missing,"
                         f" {len(extra)} unexpected (e.g. {sorted(extra)[:3]})")  # fmt: skip


def _check_db(what: str, run: Run, want: int) -> None:
    status, attempts = run.db["status"], run.db["attempts"]
    ok_attempts = attempts.get("healthy:delivered:-", 0)
    if (
        status.get("healthy:delivered", 0) != want
        or ok_attempts != want
        or run.db["claims"].get("healthy") != want
    ):
        raise BenchError(f"{what}: the database disagrees: {dict(status)}, attempts {dict(attempts)},"
                         f" claims {dict(run.db['claims'])}; want {want} delivered,"
                         " one attempt each")  # fmt: skip
    if run.dead and any(k.startswith("dead:") and not k.startswith("dead:retry:") for k in attempts):
        raise BenchError(f"{what}: the endpoint that is down should only see retries: {dict(attempts)}")


# -- lag at a steady rate -------------------------------------------------------------------------


@dataclass
class Sent:
    merchant_id: int
    order_id: str
    state: str
    at: float  # scheduled, seconds after the start
    sent: float = 0.0
    acked: float = 0.0  # the change is committed: the API answered / `advance` returned
    seq: int = 0
    error: str | None = None


Send = Callable[[Sent], Awaitable[None]]
DRIVER = {"driver_name": "Budi Santoso", "driver_phone": "081234567890"}


async def _reset_lag_orders(url: str, pks: Sequence[int]) -> list[tuple[int, str]]:
    """Put the lag run's orders back to `finding_driver` (without a driver), ready for LADDER;
    returns (merchant_id, order_id) of each."""
    async with opened(url) as db:
        async with db.transaction() as tx:
            for i in range(0, len(pks), 500):
                chunk = pks[i : i + 500]
                marks = ", ".join(f"${k + 1}" for k in range(len(chunk)))
                await tx.execute(
                    "UPDATE orders SET state = 'finding_driver', hold_from = NULL, seq = 2,"
                    " tracking_code = '', driver_name = NULL, driver_phone = NULL, driver_photo = NULL,"
                    " cancel_description = NULL, live_tracking_url = NULL, allocated_at = NULL,"
                    " finished_at = NULL, canceled_at = NULL"
                    f" WHERE id IN ({marks})",
                    *chunk,
                )
        rows = await db.fetch("SELECT id, merchant_id, order_id FROM orders WHERE state = 'finding_driver'")
    by_pk = {int(r[0]): (int(r[1]), str(r[2])) for r in rows}
    return [by_pk[pk] for pk in pks]


async def _paced(orders: Sequence[tuple[int, str]], rate: float, events: int, send: Send) -> list[Sent]:
    """Event i moves order i % len(orders) one rung up LADDER at t0 + i / rate, so consecutive
    changes of one order are len(orders) / rate seconds apart. Each order's changes are sent
    one after the other (a late answer delays that order's next change, never reorders it);
    the orders run side by side, so a slow answer does not lower the offered rate."""
    m = len(orders)
    plan = [Sent(*orders[i % m], LADDER[i // m], i / rate) for i in range(events)]
    loop = asyncio.get_running_loop()

    async def order(t0: float, j: int) -> None:
        for ev in plan[j::m]:
            delay = t0 + ev.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            ev.sent = time.time()
            await send(ev)

    t0 = loop.time() + 0.2
    await asyncio.gather(*(order(t0, j) for j in range(m)))
    return plan


async def _via_api(port: int, probe: tuple[int, str], orders: Sequence[tuple[int, str]], rate: float,
                   events: int, ready: Callable[[], None]) -> list[Sent]:  # fmt: skip
    """The changes come in through `lacak serve`'s operator API (POST …/advance)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    base = f"http://127.0.0.1:{port}/api/admin/orders/"

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def send(ev: Sent) -> None:
            body: dict[str, Any] = {"state": ev.state}
            if ev.state == "driver_assigned":
                body |= DRIVER | {"tracking_code": "GK-" + ev.order_id[-10:]}
            try:
                async with session.post(base + ev.order_id + "/advance", json=body, headers=headers) as resp:
                    answer = await resp.json()
                ev.acked = time.time()
                result = answer.get("result") or {}
                if resp.status != 200 or result.get("outcome") != "applied":
                    ev.error = f"HTTP {resp.status}: {str(answer)[:300]}"
                ev.seq = int(result.get("seq") or 0)
            except (aiohttp.ClientError, TimeoutError) as exc:
                ev.error = repr(exc)

        await _probe(send, probe, ready)
        return await _paced(orders, rate, events, send)


async def _in_process(env: dict[str, str], probe: tuple[int, str], orders: Sequence[tuple[int, str]],
                      rate: float, events: int, ready: Callable[[], None]) -> list[Sent]:  # fmt: skip
    """The changes are made here, with lacak's own services (`Orders.advance`, as the operator
    API calls it), and committed to the database another process dispatches from."""
    from lacak.orders.models import Driver, State
    from lacak.settings import Settings
    from lacak.wiring import services

    async with services(Settings.from_env(env)) as svc:

        async def send(ev: Sent) -> None:
            driver, code = None, None
            if ev.state == "driver_assigned":
                driver, code = (
                    Driver(DRIVER["driver_name"], DRIVER["driver_phone"]),
                    "GK-" + ev.order_id[-10:],
                )
            try:
                decision = await svc.orders.advance(
                    ev.merchant_id, ev.order_id, State(ev.state), driver=driver, tracking_code=code
                )
            except Exception as exc:  # reported, and the run stops with it
                ev.error = repr(exc)
                return
            ev.acked = time.time()
            ev.seq = decision.order.seq
            if decision.outcome.value != "applied":
                ev.error = f"outcome {decision.outcome.value}"

        await _probe(send, probe, ready)
        return await _paced(orders, rate, events, send)


async def _probe(send: Send, probe: tuple[int, str], ready: Callable[[], None]) -> None:
    """One change whose webhook must arrive before the measurement starts: the dispatcher is
    up (a worker still importing would otherwise show as lag) and the whole path works.
    `ready` waits for it (and takes the starting readings)."""
    ev = Sent(*probe, "driver_assigned", 0.0)
    await send(ev)
    if ev.error:
        raise BenchError(f"the probe change failed: {ev.error}")
    await asyncio.to_thread(ready)


async def _lag_deliveries(url: str, after: int) -> dict[tuple[str, int], tuple[str, float]]:
    """(order_id, seq) → (event_id, the change's own timestamp, taken inside its transaction)."""
    async with opened(url) as db:
        rows = await db.fetch(
            "SELECT o.order_id, d.seq, d.event_id, d.created_at FROM deliveries d"
            " JOIN orders o ON o.id = d.order_pk WHERE d.id > $1",
            after,
        )
    out = {}
    for order_id, seq, event_id, created in rows:
        at = as_dt(created)
        assert at is not None
        out[(str(order_id), int(seq))] = (str(event_id), at.timestamp())
    return out


async def _max_delivery(url: str) -> int:
    async with opened(url) as db:
        row = await db.fetchrow("SELECT coalesce(max(id), 0) FROM deliveries")
    assert row is not None
    return int(row[0])


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


@dataclass
class Lag:
    backend: str
    setup: str
    events: int
    rate: float  # changes committed per second, as achieved
    measured: int  # events after the warm-up
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core during the run
    runq: dict[str, float] = field(default_factory=dict)  # runnable, waiting for a core
    p50_ms: float = 0.0  # commit (the API answered) → receipt
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    created_p50_ms: float = 0.0  # the change's timestamp (before commit) → receipt
    created_p99_ms: float = 0.0
    api_p99_ms: float = 0.0  # the advance request itself


def lag_run(s: Setup, setup: str, *, profile: Path | None = None) -> Lag:
    """`embedded`: changes through `lacak serve`'s API, its own dispatcher sends them (woken in
    process). `worker`: changes made in this process with lacak's services, one `lacak worker`
    sends them (woken by LISTEN/NOTIFY on PostgreSQL; SQLite has no cross-process wake-up)."""
    a = s.args
    events = int(a.rate * a.lag_seconds)
    *orders, probe = asyncio.run(_reset_lag_orders(s.db.url, sorted(s.lag_pks)))
    orders = orders[: math.ceil(events / len(LADDER))]
    port = harness.free_port()
    if setup == "embedded":
        proc = Lacak(
            ["serve", "--port", str(port)], s.env(LACAK_RUN_WEBHOOKS="1"), s.db.work / "serve-lag.log"
        )
    else:
        proc = Lacak(["worker"], s.env(), s.db.work / "worker-lag.log")
    marks: dict[str, Any] = {}

    def ready() -> None:
        """In a thread, from inside the generator's loop: wait for the probe's webhook, then
        take the starting point (the last delivery id, the receiver emptied, CPU readings)."""
        deadline = time.monotonic() + 60
        while s.receiver.count() < 1:
            proc.alive()
            if time.monotonic() > deadline:
                raise BenchError("the probe change's webhook did not arrive within 60 s")
            time.sleep(0.02)
        marks["after"] = asyncio.run(_max_delivery(s.db.url))
        s.receiver.reset()
        marks["pids"] = pids = {"receiver": s.receiver.pid, proc.args[0]: proc.pid, "generator": os.getpid()}
        marks["before"] = Sample.take(s, pids)
        marks["spy"] = _spy(proc.pid, profile) if profile else None
        log(f"  {setup}: {events:,} state changes at {a.rate:g}/s over {len(orders):,} orders")

    try:
        proc.start()
        s.receiver.reset()
        if setup == "embedded":
            wait_healthz(port, proc)
            sent = uvloop_run(_via_api(port, probe, orders, a.rate, events, ready))
        else:
            sent = uvloop_run(_in_process(s.env(), probe, orders, a.rate, events, ready))
        failed = [e for e in sent if e.error]
        if failed:
            raise BenchError(f"{len(failed)} changes failed, e.g. {failed[0].error}")
        deadline = time.monotonic() + 60
        while s.receiver.count() < events:
            proc.alive()
            if time.monotonic() > deadline:
                raise BenchError(f"lag {setup}: only {s.receiver.count()} of {events} webhooks arrived")
            time.sleep(0.05)
        cpu, runq = Sample.take(s, marks["pids"]).since(marks["before"])
    finally:
        proc.stop()
        if marks.get("spy") is not None:
            marks["spy"].wait(30)
    records = s.receiver.dump()
    changes = asyncio.run(_lag_deliveries(s.db.url, marks["after"]))
    _check_once(f"lag {setup}", records, {e for e, _ in changes.values()})
    received = {i: t for i, t, _ in records}
    t0 = min(e.acked for e in sent)
    lags, from_created, api = [], [], []
    for ev in sent:
        if ev.acked - t0 < a.lag_warmup:
            continue  # connections and caches warming up
        event_id, created = changes[(ev.order_id, ev.seq)]
        lags.append((received[event_id] - ev.acked) * 1000)
        from_created.append((received[event_id] - created) * 1000)
        api.append((ev.acked - ev.sent) * 1000)
    acks = sorted(e.acked for e in sent)
    out = Lag(s.db.backend, setup, events, (len(acks) - 1) / (acks[-1] - acks[0]), len(lags), cpu, runq)
    out.p50_ms, out.p90_ms, out.p99_ms, out.max_ms = (pct(lags, q) for q in (0.5, 0.9, 0.99, 1.0))
    out.created_p50_ms, out.created_p99_ms = pct(from_created, 0.5), pct(from_created, 0.99)
    out.api_p99_ms = pct(api, 0.99)
    return out


def uvloop_run(coro: Any) -> Any:
    import uvloop

    return uvloop.run(coro)


# -- profile --------------------------------------------------------------------------------------


def _spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        log("  (no py-spy: .venv/bin/pip install py-spy)")
        return None
    cmd = [spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Where a busy sample is spent: the worker's start (imports, connecting), else the first part
# of the dispatcher found on its stack, else the library whose callback it is.
_STARTUP = ("_find_and_load (", "_compile_bytecode (", "load_default_certs (", "migrate.py")
_PARTS = (
    ("claim SQL", ("claim (lacak/webhooks/store.py", "next_due (lacak/webhooks/store.py")),
    ("record SQL", ("record (lacak/webhooks/store.py",)),
    ("render body", ("_body (lacak/webhooks/dispatcher.py",)),
    ("sign + secrets", ("_headers (lacak/webhooks/dispatcher.py",)),
    ("outcome (policy, metrics)", ("_reply_outcome (lacak/webhooks/dispatcher.py",
                                   "_outcome (lacak/webhooks/dispatcher.py")),
    ("aiohttp POST", ("post (lacak/webhooks/transport.py",)),
    ("gauges SQL", ("_gauges_forever (lacak/webhooks/dispatcher.py",)),
    ("task loop (couriers)", ("lacak/jobs/",)),
)  # fmt: skip
_LIBS = (("aiohttp (callbacks)", "aiohttp/"), ("asyncpg (callbacks)", "asyncpg/"),
         ("sqlite (checkpointer)", "Checkpointer"), ("event loop", "asyncio/"))  # fmt: skip


def where_time_goes(path: Path) -> dict[str, float]:
    """Shares of the busy samples after startup per part of the dispatcher, plus the startup's
    own share of all busy samples (py-spy raw output)."""
    parts: Counter[str] = Counter()
    startup = total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        if any(m in stack for m in _STARTUP):
            startup += n
            continue
        part = next((name for name, marks in _PARTS if any(m in stack for m in marks)), None)
        if part is None:
            part = next((name for name, lib in _LIBS if lib in stack), "other")
        parts[part] += n
    busy = total - startup
    out = {k: v / busy for k, v in parts.most_common()} if busy else {}
    return out | ({"(startup, of all samples)": startup / total} if total else {})


# -- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    backend: str
    target: str
    value: str
    passed: bool


def verdicts(
    backend: str, ref: float | None, runs: dict[str, Run], lags: list[Lag], primary: str, rate: float
) -> list[Verdict]:
    out = []
    if ref is not None:
        a = runs["10 healthy"]
        out += [
            Verdict(backend, f"deliveries/s >= {TARGET_SHARE:.2f} x raw", f"{a.steady_rate / ref:.3f}"
                    f" ({a.steady_rate:,.0f} / {ref:,.0f}; with startup {a.total_rate / ref:.3f})",
                    a.steady_rate / ref >= TARGET_SHARE),
            Verdict(backend, f"deliveries/s per worker >= {TARGET_PER_WORKER:,.0f}",
                    f"{a.steady_rate:,.0f} (with startup {a.total_rate:,.0f})",
                    a.steady_rate >= TARGET_PER_WORKER),
        ]  # fmt: skip
    for lag in lags:
        mark = "" if lag.setup == primary else " (info)"
        # A lag measured at a lower rate than asked for says little about the asked-for rate.
        short = lag.rate < 0.95 * rate
        out.append(Verdict(backend, f"p99 lag <= {TARGET_P99_MS:g} ms at {rate:g}/s, {lag.setup}{mark}",
                           f"{lag.p99_ms:.1f} ms (from the change's timestamp {lag.created_p99_ms:.1f} ms)"
                           f" at {lag.rate:,.0f}/s" + (" (rate NOT reached)" if short else ""),
                           lag.p99_ms <= TARGET_P99_MS and not short))  # fmt: skip
    if ref is not None:
        for n in (HEALTHY - 1, HEALTHY):
            base, down = runs[f"{n} healthy"], runs[f"{n} healthy + 1 down"]
            ratio = down.steady_rate / base.steady_rate
            out.append(Verdict(backend, f"one endpoint down: healthy >= {TARGET_DOWN:.2f} x normal, {n}+1",
                               f"{ratio:.3f} ({down.steady_rate:,.0f} / {base.steady_rate:,.0f};"
                               f" {down.dead_attempts:,} failed attempts meanwhile; worker CPU per"
                               f" healthy delivery {down.worker_cpu_us:.0f} vs {base.worker_cpu_us:.0f} us)",
                               ratio >= TARGET_DOWN))  # fmt: skip
    return out


def run_table(refs: list[Reference], runs: list[Run], ref_rate: dict[str, float]) -> str:
    head = (f"{'backend':<9}{'run':<22}{'deliveries':>11}{'start s':>8}{'total/s':>9}{'steady/s':>9}"
            f"{'x raw':>7}{'stall s':>8}{'body B':>7}{'cpu wkr/rcv/db':>16}{'runq wkr/rcv/db':>17}"
            f"{'us/dlv':>8}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in refs:
        lines.append(f"{'-':<9}{'raw aiohttp ' + r.loop:<22}{r.posts:>11,}{'':>8}{r.rate:>9,.0f}{'':>9}"
                     f"{'':>15}{r.body_bytes:>7}{'client only':>16}{'':>17}{r.cpu_us:>8.0f}")  # fmt: skip
    for x in runs:
        parties = ("worker", "receiver", "postgres")
        cpus = "/".join(f"{x.cpu.get(k, 0) * 100:.0f}" for k in parties)
        waits = "/".join(f"{x.runq.get(k, 0) * 100:.0f}" for k in parties)
        lines.append(
            f"{x.backend:<9}{x.name:<22}{x.healthy:>11,}{x.startup_s:>8.2f}{x.total_rate:>9,.0f}"
            f"{x.steady_rate:>9,.0f}{x.steady_rate / ref_rate[x.backend]:>7.3f}{x.stalled_s:>8.2f}"
            f"{x.body_bytes:>7.0f}"
            f"{cpus:>16}{waits:>17}{x.worker_cpu_us:>8.0f}"
        )
    return "\n".join(lines)


def lag_table(lags: list[Lag]) -> str:
    head = (f"{'backend':<9}{'setup':<10}{'events':>8}{'rate/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}"
            f"{'max ms':>8}{'chg p50':>8}{'chg p99':>8}{'api p99':>8}  cpu (runq)")  # fmt: skip
    lines = [head, "-" * len(head)]
    for x in lags:
        cpu = " ".join(f"{k} {v:.0%} ({x.runq.get(k, 0):.0%})" for k, v in x.cpu.items())
        lines.append(f"{x.backend:<9}{x.setup:<10}{x.events:>8,}{x.rate:>8,.0f}{x.p50_ms:>8.1f}{x.p90_ms:>8.1f}"
                     f"{x.p99_ms:>8.1f}{x.max_ms:>8.1f}{x.created_p50_ms:>8.1f}{x.created_p99_ms:>8.1f}"
                     f"{x.api_p99_ms:>8.1f}  {cpu}")  # fmt: skip
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    refs: list[Reference] = field(default_factory=list)
    ref_rate: dict[str, float] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    lags: list[Lag] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    profiles: dict[str, dict[str, float]] = field(default_factory=dict)


def throughput_runs(s: Setup, out: Outcome) -> float:
    """The raw reference before and after the three worker runs; returns the reference rate."""
    args = s.args
    body, headers = asyncio.run(_typical_body(s.db.url, args.dialect))
    spec = s.db.work / "raw-spec.json"
    spec.write_text(json.dumps({"url": s.receiver.url(1), "body": body.decode(), "headers": headers}))
    refs = []

    def raw(loop: str) -> None:
        r = reference(s.receiver, spec, args.events, args.concurrency, loop, len(body))
        log(f"  raw aiohttp ({loop}): {r.rate:,.0f} POST/s, {r.cpu_us:.0f} us client CPU/POST")
        refs.append(r)

    raw("asyncio")
    # "9 healthy" and "9 healthy + 1 down": ten merchants, one of them down, against the
    # same nine alone. 9 x the per-endpoint cap (10) leaves slots of the 100 unused, so the
    # same comparison is made at full use too: "10 healthy" against "10 healthy + 1 down".
    down = args.events // 10
    plan = (("10 healthy", HEALTHY, 0), ("10 healthy + 1 down", HEALTHY, down),
            ("9 healthy", HEALTHY - 1, 0), ("9 healthy + 1 down", HEALTHY - 1, down))  # fmt: skip
    for name, merchants, dead in plan:
        x = throughput(s, name, merchants, dead)
        log(
            f"  {name}: {x.healthy:,} in {x.seconds:.2f} s ({x.startup_s:.2f} s to the first):"
            f" {x.total_rate:,.0f}/s, steady {x.steady_rate:,.0f}/s (stalled {x.stalled_s:.2f} s,"
            f" longest gap {x.max_gap_ms:.0f} ms); worker CPU {x.cpu['worker']:.0%}"
            f" (+{x.runq['worker']:.0%} waiting for a core), {x.worker_cpu_us:.0f} us/delivery"
            + (f"; {x.dead_attempts:,} failed attempts" if dead else "")
        )
        out.runs.append(x)
    raw("asyncio")
    if args.uvloop_reference:
        raw("uvloop")
    out.refs += refs
    # The worker's own loop (asyncio), before and after the runs: the machine drifts.
    return statistics.fmean(r.rate for r in refs if r.loop == "asyncio")


def lag_setups(backend: str, wanted: str) -> list[str]:
    if wanted != "auto":
        return wanted.split(",")
    # SQLite: the embedded default; a separate worker would only notice new rows by polling.
    return ["embedded"] if backend == "sqlite" else ["worker", "embedded"]


def profile_run(s: Setup, out: Outcome, lag_setup: str | None) -> None:
    """Unmeasured runs under py-spy: the worker in a 10-merchant run, and `lacak serve` in a
    lag run (`lag_setup`); collapsed stacks and summaries go to bench/results/."""
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"webhooks-profile-{s.db.backend}-worker-{stamp}.txt"
    throughput(s, "profile", HEALTHY, 0, profile=path)
    if not path.exists():
        log("  py-spy wrote nothing (no permission to attach?)")
        return
    out.profiles[s.db.backend] = where_time_goes(path)
    path.with_suffix(".summary.txt").write_text(harness.profile_summary(path, top=40))
    log(f"  worker profile: {path}")
    for part, share in out.profiles[s.db.backend].items():
        log(f"    {share:6.1%}  {part}")
    if lag_setup is not None:
        path = RESULTS / f"webhooks-profile-{s.db.backend}-serve-{lag_setup}-{stamp}.txt"
        lag_run(s, lag_setup, profile=path)
        if path.exists():
            path.with_suffix(".summary.txt").write_text(harness.profile_summary(path, top=40))
            log(f"  lacak serve profile ({lag_setup} lag run): {path}")


def run_backend(backend: str, args: argparse.Namespace, root: Path, out: Outcome) -> None:
    parts = set(args.parts.split(","))
    lag_orders = math.ceil(args.rate * args.lag_seconds / len(LADDER))
    # Enough orders that the lag run's own never serve as outbox snapshots, ~200 per merchant.
    orders = DEAD * 200 + math.ceil(lag_orders * DEAD / HEALTHY) + DEAD
    with database(backend, root, args.pg_url) as db:
        receiver = Receiver(db.work / "receiver.log")
        try:
            receiver.start()
            dead_port = harness.free_port()  # nothing listens there: connection refused
            log(f"{backend}: seeding {orders:,} orders, {DEAD} merchants")
            seconds = seed_database(db, orders, receiver, dead_port, args.dialect)
            log(f"  seeded in {seconds:.1f} s")
            # The lag run's orders: the first of merchants 1..HEALTHY, never used as snapshots.
            lag_pks = {i + 1 for i in range(orders) if i % DEAD + 1 <= HEALTHY}
            s = Setup(db, receiver, args, set(sorted(lag_pks)[: lag_orders + 1]))  # + the probe
            ref = None
            if "throughput" in parts:
                ref = out.ref_rate[backend] = throughput_runs(s, out)
            setups = lag_setups(backend, args.lag_setups)
            lags = []
            if "lag" in parts and args.lag_seconds > 0:
                for setup in setups:
                    lag = lag_run(s, setup)
                    log(
                        f"  lag {setup}: p50 {lag.p50_ms:.1f} ms, p99 {lag.p99_ms:.1f} ms"
                        f" at {lag.rate:,.0f}/s (from the change's timestamp:"
                        f" p99 {lag.created_p99_ms:.1f} ms)"
                    )
                    lags.append(lag)
            out.lags += lags
            out.verdicts += verdicts(backend, ref, {r.name: r for r in out.runs if r.backend == backend},
                                     lags, setups[0], args.rate)  # fmt: skip
            if args.profile:
                profile_run(s, out, setups[0] if "lag" in parts and args.lag_seconds > 0 else None)
        finally:
            receiver.stop()


def report(out: Outcome, args: argparse.Namespace, info: dict[str, Any]) -> Path:
    if out.runs:
        print()
        print(run_table(out.refs, out.runs, out.ref_rate))
    if out.lags:
        print()
        print(lag_table(out.lags))
    print()
    for v in out.verdicts:
        print(f"{'PASS' if v.passed else 'FAIL'}  {v.backend:<9} {v.target:<44} {v.value}")
    print()
    print(f"concurrency {args.concurrency} (LACAK_WEBHOOK_CONCURRENCY), per endpoint 10;"
          f" dialect {args.dialect}; receiver, worker, raw client and the database share"
          f" {os.cpu_count()} cores.")  # fmt: skip
    print(
        "steady/s = deliveries between receipt #10 % and #90 %; total/s from the worker's spawn (Python start"
        " included) to the last receipt; x raw = steady / the mean raw aiohttp (asyncio) POST/s of this"
        " backend's two reference runs; stall s = time in gaps > 0.5 s without a receipt, between"
        " receipt #10 % and #90 %; us/dlv = worker CPU per delivery; cpu = share of one core"
        " on a CPU, runq = share of one core spent runnable but waiting for a CPU (other processes had"
        " the cores), both between receipt #10 % and #90 %."
    )
    print("lag: p50..max from the moment the change was committed (the API answered, or `advance` returned"
          " in process) to receipt; chg = from the change's own timestamp (taken in its transaction, before"
          " commit: an upper bound); api p99 = the change itself (request or call). embedded = `lacak serve`"
          " with its dispatcher, changes through its operator API; worker = one `lacak worker`, changes"
          " made by this process with lacak's services.")  # fmt: skip
    return harness.save_results("webhooks", info, args, {
        "reference": [asdict(r) for r in out.refs], "reference_rate": out.ref_rate,
        "runs": [asdict(r) for r in out.runs], "lag": [asdict(x) for x in out.lags],
        "verdicts": [asdict(v) for v in out.verdicts], "profiles": out.profiles,
    })  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="lacak webhook delivery benchmark (see bench/README.md)")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument(
        "--events", type=int, default=20_000, help="outbox rows per throughput run (and raw POSTs)"
    )
    p.add_argument("--rate", type=float, default=500.0, help="state changes per second in the lag run")
    p.add_argument("--lag-seconds", type=float, default=10.0, help="length of the lag run (0: skip it)")
    p.add_argument(
        "--lag-warmup", type=float, default=1.0, help="seconds of the lag run left out of the stats"
    )
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("LACAK_WEBHOOK_CONCURRENCY", 100)),
                   help="sends in flight: LACAK_WEBHOOK_CONCURRENCY and the raw client's")  # fmt: skip
    p.add_argument("--dialect", choices=[d.value for d in dialects.Dialect], default=dialects.DEFAULT.value)
    p.add_argument("--uvloop-reference", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure the raw client on uvloop (for information)")  # fmt: skip
    p.add_argument("--parts", default="throughput,lag", help="what to run: throughput, lag or both")
    p.add_argument("--lag-setups", default="auto",
                   help="embedded and/or worker, comma-separated (auto: sqlite embedded;"
                        " postgres worker,embedded)")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="one more 10-merchant run under py-spy")
    p.add_argument("--pg-url", default=PG_ADMIN_DEFAULT, help="PostgreSQL admin URL")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite file)")
    # The benchmark's own child processes.
    p.add_argument("--role", choices=["bench", "receiver", "raw"], default="bench", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--spec", default="", help=argparse.SUPPRESS)
    p.add_argument("--posts", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "receiver":
        uvloop_run(_receive_forever(args.port))
        return 0
    if args.role == "raw":
        _raw_main(args)
        return 0
    info: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg": os.getloadavg(),
                            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip
    log(f"machine: {info['cpus']} cpus, load {info['loadavg'][0]:.2f}")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    root = Path(tempfile.mkdtemp(prefix="lacak-bench-webhooks-"))
    out = Outcome()
    try:
        for backend in backends:
            run_backend(backend, args, root, out)
    except BenchError as exc:
        if out.runs:
            print("\n" + run_table(out.refs, out.runs, out.ref_rate))
        print(f"\nBENCHMARK ABORTED: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            log(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(out, args, info)
    return 0 if all(v.passed for v in out.verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
