"""The live-page benchmark: tracking lookups with and without 1,000 open event streams.

    .venv/bin/python bench/live.py --backend sqlite|postgres|both --orders 10000 --streams 1000 \\
        --watched 100 --duration 10 --rounds 2

For each backend: seed a fresh database as the lookup benchmark does, give --watched orders
that are still under way a live token, start ONE server process (one worker, access log off,
task loop and webhook dispatcher off) and a "mover" in this process that writes a new live
position for every watched order each second and changes one watched order's state every
--state-every seconds through the operator API. Then alternate, --rounds times:

  reference   wrk lookups (bench/lookup.lua, as bench/run.py) for --duration s, no streams
  streams     a client process (aiohttp, one event loop) opens --streams GET /t/{token}/events
              over the watched orders and reads them (counting events), then the same wrk run

The mover runs through both phases, so the only difference is the open streams. The target
(issue #5): lookups with the streams open >= 0.70 of lookups without, every stream still open
at the end, every stream getting position events. See bench/README.md, "Live-page benchmark".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import queue
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (`python bench/live.py`): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import fake, harness, run
from bench.harness import BenchError, Load, Server, WrkPlan
from bench.seed import seed
from bench.static_app import STATIC_PATH
from lacak.storage.db import Database, connect

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "bench-admin-token"  # noqa: S105  (the benchmark's own server, on localhost)
TARGET_RATIO = 0.70  # lookups with the streams open / without
# Under way and able to go on hold and back (`returning` could not come back to in_transit),
# so the mover's state changes are always applied and no watched order ever ends.
MOVABLE = ("driver_assigned", "at_pickup", "picked_up", "in_transit", "on_hold")
_UPSERT = (  # lacak's own statement (lacak.positions.store.add)
    "INSERT INTO live_positions (order_pk, lat, long, at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (order_pk) DO UPDATE SET lat = excluded.lat, long = excluded.long, at = excluded.at"
    " WHERE live_positions.at <= excluded.at"
)
_GAUGE = re.compile(r"^lacak_live_streams (\S+)$", re.MULTILINE)
_PROBLEM = re.compile(r'"level":"(error|critical)"|Traceback')  # lacak logs JSON lines (lacak.logs)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def raise_nofile(need: int) -> int:
    """Lift this process's open-file limit (children inherit it) to the hard limit if `need`
    is above the soft one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        soft = max(need, 65536) if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


# -- the stream client (its own process) ----------------------------------------------------------

_PATTERNS = {
    "position": b"event: position\n",
    "state": b"event: state\n",
    "gone": b"event: gone\n",
    "ping": b": ping\n",
}


class _Streams:
    """--streams event streams, counted per stream and per event type, nothing parsed: the
    client must cost the shared cores as little as possible."""

    def __init__(self, port: int, tokens: list[str], n: int, concurrency: int) -> None:
        self.urls = [f"http://127.0.0.1:{port}/t/{tokens[i % len(tokens)]}/events" for i in range(n)]
        self.counts = {k: [0] * n for k in _PATTERNS}
        self.rest = [b""] * n  # an incomplete last line, kept for the next chunk
        self.bytes = 0
        self.ready = [False] * n
        self.ended: dict[int, str] = {}  # stream -> why it ended (or failed to open)
        self.gate = asyncio.Semaphore(concurrency)  # how many are being opened at once
        self.all_ready = asyncio.Event()
        self.settled = 0

    def _feed(self, i: int, chunk: bytes) -> None:
        self.bytes += len(chunk)
        data = self.rest[i] + chunk
        cut = data.rfind(b"\n") + 1
        whole, self.rest[i] = data[:cut], data[cut:]
        if whole:
            for name, pattern in _PATTERNS.items():
                self.counts[name][i] += whole.count(pattern)

    def _settle(self) -> None:
        self.settled += 1
        if self.settled == len(self.urls):
            self.all_ready.set()

    async def one(self, session: Any, i: int) -> None:
        opening = True
        await self.gate.acquire()
        try:
            async with session.get(self.urls[i], headers={"Accept": "text/event-stream"}) as resp:
                if resp.status != 200:
                    self.ended[i] = f"HTTP {resp.status}"
                    return
                async for chunk in resp.content.iter_any():
                    self._feed(i, chunk)
                    if opening and self.counts["state"][i]:  # open: the first state arrived
                        opening = False
                        self.ready[i] = True
                        self.gate.release()
                        self._settle()
                self.ended[i] = "closed by the server"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.ended[i] = type(exc).__name__
        finally:
            if opening:
                self.gate.release()
                self._settle()

    def mark(self) -> dict[str, Any]:
        return {
            "t": time.monotonic(),
            "ready": sum(self.ready),
            "open": sum(1 for i, r in enumerate(self.ready) if r and i not in self.ended),
            "ended": dict(Counter(self.ended.values())),
            "bytes": self.bytes,
            "cpu": time.process_time(),
            **self.counts,
        }


async def _client(args: argparse.Namespace, tokens: list[str]) -> None:
    import aiohttp

    streams = _Streams(args.port, tokens, args.streams, args.open_concurrency)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    connector = aiohttp.TCPConnector(limit=0)  # no pool cap: every stream is its own connection
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        started = time.monotonic()
        tasks = [asyncio.create_task(streams.one(session, i)) for i in range(args.streams)]
        with contextlib.suppress(TimeoutError):  # the driver sees how many are open and says so
            await asyncio.wait_for(streams.all_ready.wait(), args.open_timeout)
        print(json.dumps({"ready_s": time.monotonic() - started, **streams.mark()}), flush=True)
        while (line := (await commands.readline()).strip()) not in (b"", b"quit"):
            if line == b"mark":
                print(json.dumps(streams.mark()), flush=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(streams.mark()), flush=True)


def _client_main(args: argparse.Namespace) -> None:
    raise_nofile(args.streams + 100)
    import uvloop

    uvloop.run(_client(args, Path(args.tokens).read_text().split()))


class Client:
    """The stream client process, seen from the driver: JSON lines out, commands in."""

    def __init__(self, port: int, tokens: Path, args: argparse.Namespace, log_file: Path) -> None:
        cmd = [sys.executable, __file__, "--role", "client", "--port", str(port), "--tokens", str(tokens),
               "--streams", str(args.streams), "--open-concurrency", str(args.open_concurrency),
               "--open-timeout", str(args.open_timeout)]  # fmt: skip
        with log_file.open("ab") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, text=True)  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.log_file = log_file
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"stream client said nothing for {timeout:g} s:\n{self._tail()}") from None
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def _tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""

    def _send(self, command: str) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"stream client exited ({self.proc.returncode}):\n{self._tail()}")
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def ready(self, timeout: float) -> dict[str, Any]:
        return self._next(timeout)

    def mark(self) -> dict[str, Any]:
        self._send("mark")
        return self._next(30)

    def quit(self) -> dict[str, Any]:
        self._send("quit")
        final = self._next(60)
        self.proc.wait(30)
        return final

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- the watched orders and the mover -------------------------------------------------------------


@dataclass
class Watched:
    pk: int
    merchant_id: int
    order_id: str
    state: str
    origin: tuple[float, float]
    destination: tuple[float, float]
    token: str


async def _watch(url: str, n: int) -> list[Watched]:
    """Give the first `n` orders that are under way a live token.

    Straight SQL, as bench/seed.py writes everything: the seeder predates live links, and
    creating orders through the merchant API would also schedule simulator work. The token is
    what lacak's `new_token()` makes (24 URL-safe characters).
    """
    db = connect(url, pool_size=1)
    await db.open()
    try:
        states = ", ".join(f"'{s}'" for s in MOVABLE)
        rows = await db.fetch(
            "SELECT id, merchant_id, order_id, state, origin_lat, origin_long, destination_lat,"
            f" destination_long FROM orders WHERE state IN ({states}) ORDER BY id LIMIT $1",
            n,
        )
        watched = [Watched(r[0], r[1], r[2], r[3], (r[4], r[5]), (r[6], r[7]), secrets.token_urlsafe(18))
                   for r in rows]  # fmt: skip
        async with db.transaction() as tx:
            await tx.executemany("UPDATE orders SET live_token = $1 WHERE id = $2",
                                 [(w.token, w.pk) for w in watched])  # fmt: skip
    finally:
        await db.close()
    if len(watched) < n:
        raise BenchError(f"only {len(watched)} seeded orders are under way: --watched {n} needs more orders")
    return watched


@dataclass
class MoverStats:
    ticks: int = 0
    late: int = 0  # ticks that started more than 0.5 s behind schedule
    slowest_s: float = 0.0
    positions: int = 0
    changes: dict[str, int] = field(default_factory=dict)  # outcome -> count


class Mover:
    """A thread of this process that keeps the watched orders moving: every second a new live
    position for each (one transaction, lacak's own upsert, through lacak's database layer),
    every `state_every` seconds one state change through the operator API (on_hold and back),
    which is a real transaction in the server that the hub hears about. Its cost is the same in
    both phases; what the streams add is the server's side of it: looks, reloads, events."""

    def __init__(self, url: str, port: int, watched: list[Watched], state_every: int) -> None:
        self.url = url
        self.port = port
        self.watched = watched
        self.state_every = state_every
        self.stats = MoverStats()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="mover", daemon=True)

    def start(self) -> Mover:
        self._thread.start()
        return self

    def check(self) -> None:
        if self.error is not None:
            raise BenchError(f"the mover failed: {self.error!r}")
        if not self._thread.is_alive():
            raise BenchError("the mover stopped")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self.error = exc

    async def _run(self) -> None:
        db = connect(self.url, pool_size=1)
        await db.open()
        try:
            t0 = time.monotonic()
            while not self._stop.is_set():
                began = time.monotonic()
                if began - (t0 + self.stats.ticks) > 0.5:
                    self.stats.late += 1
                await self._positions(db, self.stats.ticks)
                if self.stats.ticks % self.state_every == self.state_every - 1:
                    self._change(self.watched[(self.stats.ticks // self.state_every) % len(self.watched)])
                self.stats.ticks += 1
                self.stats.slowest_s = max(self.stats.slowest_s, time.monotonic() - began)
                await asyncio.sleep(max(0.0, t0 + self.stats.ticks - time.monotonic()))
        finally:
            await db.close()

    async def _positions(self, db: Database, tick: int) -> None:
        now = datetime.now(UTC)
        f = (tick % 600) / 600  # ten minutes from pickup to drop-off, then again
        rows = []
        for w in self.watched:
            lat = w.origin[0] + (w.destination[0] - w.origin[0]) * f
            long = w.origin[1] + (w.destination[1] - w.origin[1]) * f
            rows.append((w.pk, round(lat, 6), round(long, 6), now))
        async with db.transaction() as tx:
            await tx.executemany(_UPSERT, rows)
        self.stats.positions += len(rows)

    def _change(self, w: Watched) -> None:
        # Blocking, on this thread's own loop: nothing else runs on it meanwhile.
        target = "in_transit" if w.state == "on_hold" else "on_hold"
        r = harness.post_json(self.port, f"/api/admin/orders/{w.order_id}/advance",
                              {"state": target, "merchant": str(w.merchant_id)},
                              {"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        outcome = r.json().get("result", {}).get("outcome", f"HTTP {r.status}") if r.status == 200 else None
        key = outcome or f"HTTP {r.status}: {r.body[:100]!r}"
        self.stats.changes[key] = self.stats.changes.get(key, 0) + 1
        if outcome == "applied":
            w.state = target


# -- one server, both phases ----------------------------------------------------------------------


@dataclass
class Phase:
    """One measured wrk run, with or without the streams."""

    backend: str
    round: int
    kind: str  # "reference" | "streams"
    load: Load
    streams: int = 0
    ready: int = 0  # streams open (200 and a first state event) before wrk started
    ready_s: float = 0.0  # how long opening them took
    open_end: int = 0  # the client's streams still open when wrk finished
    gauge_end: float = 0.0  # lacak_live_streams when wrk finished
    gauge_after_close: float = 0.0  # and once the client had closed them
    ended: dict[str, int] = field(default_factory=dict)  # why streams ended, before the client quit
    window_s: float = 0.0
    events: dict[str, int] = field(default_factory=dict)  # per type, all streams, during wrk
    min_positions: int = 0  # the fewest position events one stream got during wrk
    no_positions: int = 0  # streams that got none during wrk
    client_cpu_s: float = 0.0  # the client's CPU time, opening included
    rss_kb: dict[str, int] = field(default_factory=dict)  # before / open / end / closed
    # Server CPU (share of one core) with no lookups: before opening the streams, with them
    # open (what they cost by themselves: positions, pings, the hub's looks), after closing.
    idle_cpu: dict[str, float] = field(default_factory=dict)
    # The cheap-request probe without lookups, before opening the streams and with them open.
    probe: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def positions_per_s(self) -> float:
        return self.events.get("position", 0) / self.window_s if self.window_s else 0.0

    @property
    def kib_per_stream(self) -> float:
        grown = self.rss_kb.get("open", 0) - self.rss_kb.get("before", 0)
        return grown / self.streams if self.streams else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["load"] = self.load.to_json()
        return out | {"positions_per_s": self.positions_per_s, "kib_per_stream": self.kib_per_stream}


def idle_share(pid: int, seconds: float = 4.0) -> float:
    """The process's CPU over `seconds` of wall time, as a share of one core. Four seconds: two
    of the hub's position pushes (one every 2 s), whatever the phase."""
    cpu, t = harness.cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (harness.cpu_seconds(pid) - cpu) / (time.monotonic() - t)


def probe(port: int, seconds: float) -> dict[str, float]:
    """GET /bench/static (a constant body, no database) on one keep-alive connection, one at a
    time, 2 ms apart: how long a cheap request waits for the event loop. The hub pushes a
    position to every open page at the same moment, every 2 s; a probe that spans 2+ of those
    moments shows what such a push holds the loop for (in p99 and max)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    took: list[float] = []
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            conn.request("GET", STATIC_PATH)
            conn.getresponse().read()
            took.append((time.perf_counter() - t) * 1000)
            time.sleep(0.002)
    finally:
        conn.close()
    took.sort()
    return {"n": len(took), "p50_ms": took[len(took) // 2], "p99_ms": took[int(len(took) * 0.99)],
            "max_ms": took[-1]}  # fmt: skip


def live_streams(port: int) -> float:
    found = _GAUGE.search(harness.get(port, "/metrics").body.decode())
    return float(found.group(1)) if found else -1.0


def server_env(db: harness.Database, args: argparse.Namespace, static: harness.Typical) -> dict[str, str]:
    env = run.server_env(db, access_log=False, static=static)
    env.update(
        LACAK_ADMIN_TOKEN=ADMIN_TOKEN,
        # Nothing but the mover and the streams may move orders or use the CPU: no simulator
        # or courier work, and no webhooks for the mover's state changes (the seeded
        # merchants' callback URLs are not reachable).
        LACAK_RUN_TASKS="0",
        LACAK_RUN_WEBHOOKS="0",
        # Every stream comes from 127.0.0.1: the per-address limit must let them all in, and
        # the per-process cap must not turn any away.
        LACAK_LIVE_RATE_PER_MINUTE=str(max(6000, args.streams * 60)),
        LACAK_LIVE_BURST=str(args.streams * 2 + 100),
        LACAK_LIVE_MAX_STREAMS=str(max(10_000, args.streams * 2)),
        LACAK_LIVE_STREAMS_PER_CLIENT=str(args.streams * 2),  # every stream comes from 127.0.0.1
    )
    return env


def live_sanity(port: int, watched: list[Watched]) -> None:
    w = watched[0]
    r = harness.get(port, f"/t/{w.token}/state")
    body = r.json() if r.status == 200 else {}
    if body.get("order_id") != w.order_id or body.get("state") != w.state:
        raise BenchError(f"sanity: the state of {w.order_id} ({w.state}): HTTP {r.status} {r.body[:300]!r}")
    r = harness.get(port, f"/t/{w.token}")
    if r.status != 200 or b'id="live"' not in r.body:
        raise BenchError(f"sanity: the live page of {w.order_id}: HTTP {r.status} {r.body[:300]!r}")
    r = harness.get(port, f"/t/{'x' * 24}/events")
    if r.status != 404:
        raise BenchError(f"sanity: an unknown token's stream should be 404, got HTTP {r.status}")


@dataclass(frozen=True)
class Ctx:
    server: Server
    db: harness.Database
    plan: WrkPlan
    args: argparse.Namespace
    tokens: Path
    mover: Mover


def lookups(c: Ctx) -> Load:
    """One measured wrk lookup run (bench/run.py's, which also tells the server's run-queue wait)."""
    return run.measured(c.server, "lookup", c.plan, c.db, c.args.pg_url)


def reference(c: Ctx, rnd: int) -> Phase:
    load = lookups(c)
    run.check_load(load, c.plan.unknown)
    c.mover.check()
    phase = Phase(c.db.backend, rnd, "reference", load)
    log(f"  round {rnd} reference  " + run.describe(load))
    return phase


def _delta(a: dict[str, Any], b: dict[str, Any], name: str) -> list[int]:
    return [y - x for x, y in zip(a[name], b[name], strict=True)]


def with_streams(c: Ctx, rnd: int) -> Phase:
    pid, port, n = c.server.pid, c.server.port, c.args.streams
    rss = {"before": harness.memory_kb(pid)["VmRSS"]}
    idle = {"before": idle_share(pid)}
    probes = {"before": probe(port, c.args.probe)}
    client = Client(port, c.tokens, c.args, c.db.work / f"client-{rnd}.log")
    try:
        ready = client.ready(c.args.open_timeout + 30)
        log(f"  round {rnd} streams: {ready['ready']:,} of {n:,} open in {ready['ready_s']:.1f} s"
            + (f" (ended: {ready['ended']})" if ready["ended"] else ""))  # fmt: skip
        idle["open"] = idle_share(pid)  # also lets the opening settle before reading the memory
        rss["open"] = harness.memory_kb(pid)["VmRSS"]
        probes["open"] = probe(port, c.args.probe)
        before, cpu0 = client.mark(), harness.cpu_seconds(client.pid)
        load = lookups(c)
        after, cpu1 = client.mark(), harness.cpu_seconds(client.pid)
        gauge = live_streams(port)
        rss["end"] = harness.memory_kb(pid)["VmRSS"]
        window = after["t"] - before["t"]
        load.cpu["client"] = (cpu1 - cpu0) / window
        client.quit()
        client_cpu = cpu1  # the client's total up to the end of the window (opening included)
    finally:
        client.kill()
    # The server must let go of every stream once its client has gone.
    deadline = time.monotonic() + 10
    while (left := live_streams(port)) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    idle["closed"] = idle_share(pid)
    rss["closed"] = harness.memory_kb(pid)["VmRSS"]
    c.server.alive()
    c.mover.check()
    run.check_load(load, c.plan.unknown)
    positions = _delta(before, after, "position")
    phase = Phase(
        c.db.backend, rnd, "streams", load, streams=n, ready=ready["ready"], ready_s=ready["ready_s"],
        open_end=after["open"], gauge_end=gauge, gauge_after_close=left, ended=after["ended"],
        window_s=window, events={k: sum(_delta(before, after, k)) for k in _PATTERNS},
        min_positions=min(positions), no_positions=sum(1 for p in positions if p == 0),
        client_cpu_s=client_cpu, rss_kb=rss, idle_cpu=idle, probe=probes,
    )  # fmt: skip
    log(f"  round {rnd} streams    " + run.describe(load))
    log(f"    {phase.open_end:,} open at the end (server: {gauge:g}), {phase.positions_per_s:,.0f}"
        f" positions/s, {phase.events['state']} state events, fewest positions on one stream"
        f" {phase.min_positions}; RSS {rss['before'] / 1024:.1f} -> {rss['open'] / 1024:.1f} MB"
        f" ({phase.kib_per_stream:.1f} KiB/stream), {rss['closed'] / 1024:.1f} MB after closing"
        f" ({left:g} left open); server CPU without lookups {idle['before']:.1%} before,"
        f" {idle['open']:.1%} with the streams open, {idle['closed']:.1%} after; probe p99/max"
        f" {probes['before']['p99_ms']:.1f}/{probes['before']['max_ms']:.1f} ms before,"
        f" {probes['open']['p99_ms']:.1f}/{probes['open']['max_ms']:.1f} ms with them open")  # fmt: skip
    return phase


def measure_backend(backend: str, args: argparse.Namespace, root: Path) -> tuple[list[Phase], dict[str, Any]]:
    with run.database(backend, args.orders, root, args.pg_url) as db:
        log(f"{backend} {args.orders:,} orders: seeding")
        seeded = seed(db.url, fake.Plan(args.orders, args.merchants), db.work / "pairs.tsv")
        log(f"  seeded {seeded.describe()}")
        watched = asyncio.run(_watch(db.url, args.watched))
        tokens = db.work / "tokens.txt"
        tokens.write_text("".join(w.token + "\n" for w in watched))
        log(f"  {len(watched)} watched orders got a live token ({dict(Counter(w.state for w in watched))})")
        pairs = harness.read_pairs(seeded.pairs)
        static = harness.typical_response(run.server_env(db, access_log=False), pairs)
        plan = WrkPlan(args.duration, args.connections, args.threads, args.unknown, seeded.pairs)
        phases: list[Phase] = []
        log_file = db.work / "server.log"
        with harness.running(server_env(db, args, static), log_file) as server:
            harness.sanity(server.port, static, pairs)
            live_sanity(server.port, watched)
            log(f"  sanity ok (server pid {server.pid}, open files limit {raise_nofile(0):,})")
            mover = Mover(db.url, server.port, watched, args.state_every).start()
            try:
                c = Ctx(server, db, plan, args, tokens, mover)
                if args.warmup > 0:
                    harness.wrk(server.port, "lookup", plan, duration=args.warmup)
                for rnd in range(1, args.rounds + 1):
                    phases.append(reference(c, rnd))
                    phases.append(with_streams(c, rnd))
                c.mover.check()
            finally:
                mover.stop()
            memory = harness.memory_kb(server.pid)
        text = log_file.read_text(errors="replace")
        problems = [ln for ln in text.splitlines() if _PROBLEM.search(ln)]
        extra = {"mover": asdict(mover.stats), "memory_kb": memory, "seeded": seeded.describe(),
                 "server_log_problems": len(problems),
                 "server_log_tail": text[-3000:] if problems else ""}  # fmt: skip
        if problems:
            log(f"  the server log has {len(problems)} error lines; the last part:\n{text[-3000:]}")
    return phases, extra


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    backend: str
    target: str
    value: str
    passed: bool


def _median(phases: list[Phase], kind: str, what: str) -> float:
    return statistics.median(float(getattr(p.load, what)) for p in phases if p.kind == kind)


def verdicts(backend: str, phases: list[Phase], extra: dict[str, Any], n: int) -> list[Verdict]:
    streamed = [p for p in phases if p.kind == "streams"]
    ref, live = _median(phases, "reference", "rps"), _median(phases, "streams", "rps")
    ref_us = _median(phases, "reference", "server_cpu_us")
    live_us = _median(phases, "streams", "server_cpu_us")
    ratio = live / ref
    kept = min(min(p.ready, p.open_end, int(p.gauge_end)) for p in streamed)
    worst = min(p.min_positions for p in streamed)
    rate = statistics.median(p.positions_per_s for p in streamed)
    out = [
        Verdict(backend, f"lookups with streams >= {TARGET_RATIO:.2f} x without", f"{ratio:.3f}"
                f" ({live:,.0f} / {ref:,.0f} req/s; p99 {_median(phases, 'streams', 'p99_ms'):.2f} vs"
                f" {_median(phases, 'reference', 'p99_ms'):.2f} ms; server CPU/lookup {live_us:.0f} vs"
                f" {ref_us:.0f} us, cpu-ratio {ref_us / live_us:.3f})", ratio >= TARGET_RATIO),
        Verdict(backend, f"all {n:,} streams stayed open", f"fewest open {kept:,} of {n:,} (client and"
                f" server gauge, every round; ended early: {sum(sum(p.ended.values()) for p in streamed)})",
                kept == n),
        Verdict(backend, "every stream got position events", f"fewest on one stream {worst} in"
                f" {min(p.window_s for p in streamed):.1f} s; {rate:,.0f} positions/s in all",
                worst > 0 and all(p.no_positions == 0 for p in streamed)),
        Verdict(backend, "streams released when clients leave", "lacak_live_streams after closing: "
                + ", ".join(f"{p.gauge_after_close:g}" for p in streamed),
                all(p.gauge_after_close == 0 for p in streamed)),
        Verdict(backend, "no errors in the server log", f"{extra['server_log_problems']} error lines",
                extra["server_log_problems"] == 0),
    ]  # fmt: skip
    return out


def table(phases: list[Phase]) -> str:
    head = (f"{'backend':<9}{'rnd':>3} {'phase':<10}{'lookup r/s':>11}{'ratio':>7}{'p50 ms':>8}{'p99 ms':>8}"
            f"{'us/req':>7}{'cpu-r':>6}{'open/end':>11}{'open s':>7}{'pos/s':>7}{'min':>5}{'states':>7}"
            f"{'idle %':>10}{'probe ms':>11}{'RSS MB':>10}{'KiB/str':>8}"
            f"{'cpu srv/wrk/cli/db':>19}{'runq':>6}")  # fmt: skip
    lines = [head, "-" * len(head)]
    ref: dict[str, tuple[float, float]] = {}
    for b in dict.fromkeys(p.backend for p in phases if p.kind == "reference"):
        mine = [p for p in phases if p.backend == b and p.kind == "reference"]
        ref[b] = (_median(mine, "reference", "rps"), _median(mine, "reference", "server_cpu_us"))
    for p in phases:
        cpu = "/".join(f"{p.load.cpu.get(k, 0) * 100:.0f}" for k in ("server", "wrk", "client", "postgres"))
        rps, us = ref.get(p.backend, (0.0, 0.0))
        ratio = f"{p.load.rps / rps:7.3f}" if rps else f"{'':>7}"
        cpu_ratio = f"{us / p.load.server_cpu_us:6.3f}" if rps and p.load.server_cpu_us else f"{'':>6}"
        row = (f"{p.backend:<9}{p.round:>3} {p.kind:<10}{p.load.rps:>11,.0f}{ratio}{p.load.p50_ms:>8.2f}"
               f"{p.load.p99_ms:>8.2f}{p.load.server_cpu_us:>7.0f}{cpu_ratio}")  # fmt: skip
        if p.kind == "streams":
            rss = f"{p.rss_kb['before'] / 1024:.0f}->{p.rss_kb['open'] / 1024:.0f}"
            idle = f"{p.idle_cpu['before'] * 100:.1f}/{p.idle_cpu['open'] * 100:.1f}"
            stall = f"{p.probe['before']['max_ms']:.0f}/{p.probe['open']['max_ms']:.0f}"
            row += (f"{f'{p.ready}/{p.open_end}':>11}{p.ready_s:>7.1f}{p.positions_per_s:>7,.0f}"
                    f"{p.min_positions:>5}{p.events.get('state', 0):>7}{idle:>10}{stall:>11}{rss:>10}"
                    f"{p.kib_per_stream:>8.1f}")  # fmt: skip
        else:
            row += f"{'-':>11}{'':>7}{'':>7}{'':>5}{'':>7}{'':>10}{'':>11}{'':>10}{'':>8}"
        lines.append(row + f"{cpu:>19}{p.load.cpu.get('server_runq', 0) * 100:>6.0f}")
    return "\n".join(lines)


def report(phases: list[Phase], found: list[Verdict], extras: dict[str, Any], args: argparse.Namespace,
           info: dict[str, Any]) -> Path:  # fmt: skip
    print()
    print(table(phases))
    print()
    for v in found:
        print(f"{'PASS' if v.passed else 'FAIL'}  {v.backend:<9} {v.target:<40} {v.value}")
    print()
    for backend, x in extras.items():
        m = x["mover"]
        streamed = [p for p in phases if p.backend == backend and p.kind == "streams"]
        cpu = ", ".join(f"{p.client_cpu_s:.1f}" for p in streamed)
        mem = x["memory_kb"]
        print(f"{backend}: mover {m['ticks']} ticks ({m['late']} late, slowest"
              f" {m['slowest_s'] * 1000:.0f} ms), state changes {dict(m['changes'])}; client CPU {cpu} s"
              f" per streams phase (opening included); server RSS at the end {mem['VmRSS'] / 1024:.1f} MB,"
              f" peak {mem['VmHWM'] / 1024:.1f} MB; log: {x['server_log_problems']} errors.")  # fmt: skip
    print()
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s lookups,"
          f" {args.unknown:.0%} unknown ids; {args.streams:,} streams over {args.watched} watched"
          f" orders; the server (one process), wrk, the stream client, the mover and PostgreSQL"
          f" share {os.cpu_count()} cores.")  # fmt: skip
    print("ratio = lookup req/s / the median of this backend's reference runs (no streams, same server, mover"
          " running in both); us/req = server CPU per lookup (the streams' work included); cpu-r = the"
          " reference runs' median us/req / this run's (a cross-check for a busy machine); open/end ="
          " streams open before wrk / still open after it; open s = time to open them all; pos/s = position"
          " events per second over all streams during wrk; min = fewest position events one stream got"
          " during wrk; states = state events during wrk; idle % = server CPU (share of one core) without"
          " lookups, before / with the streams open; probe ms = the longest a lone cheap request"
          " (GET /bench/static, no lookups running) took, before / with the streams open; RSS MB ="
          " server VmRSS before -> after opening the"
          " streams; KiB/str = that growth per stream (later rounds reuse the memory the first one freed);"
          " cpu = share of one core during the wrk run; runq = share of one core the server spent"
          " runnable but waiting for a CPU then (other processes had the cores).")  # fmt: skip
    return harness.save_results("live", info, args, {
        "phases": [p.to_json() for p in phases], "verdicts": [asdict(v) for v in found], "backends": extras,
    })  # fmt: skip


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="lacak live-page streams benchmark (see bench/README.md)")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--orders", type=int, default=10_000)
    p.add_argument("--merchants", type=int, default=100)
    p.add_argument("--streams", type=int, default=1000, help="event streams open in the streams phase")
    p.add_argument("--watched", type=int, default=100, help="orders the streams are spread over")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of lookups before measuring")
    p.add_argument("--rounds", type=int, default=2, help="reference + streams pairs; medians are reported")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="wrk threads (the machine has 2 cores)")
    p.add_argument("--unknown", type=float, default=0.10, help="share of lookups of unknown ids")
    p.add_argument("--state-every", type=int, default=5, help="seconds between the mover's state changes")
    p.add_argument("--open-concurrency", type=int, default=100, help="streams being opened at once")
    p.add_argument("--open-timeout", type=float, default=120.0, help="seconds to open every stream")
    p.add_argument("--probe", type=float, default=4.5,
                   help="seconds of the loop-stall probe, before and with the streams open")  # fmt: skip
    p.add_argument("--pg-url", default=run.PG_ADMIN_DEFAULT, help="PostgreSQL admin URL")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite file)")
    # The benchmark's own child process.
    p.add_argument("--role", choices=["bench", "client"], default="bench", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tokens", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "bench" and not 0 < args.watched <= args.streams:
        p.error("--watched must be between 1 and --streams")
    if args.role == "bench" and args.probe <= 0:
        p.error("--probe must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "client":
        _client_main(args)
        return 0
    try:
        info = run.machine()  # finds wrk first: fail before seeding anything
        need = args.streams + args.connections + 200
        if raise_nofile(need) < need:
            raise BenchError(f"the open-files limit is below {need}: raise `ulimit -n`")
    except BenchError as exc:
        print(f"BENCHMARK NOT RUN: {exc}", file=sys.stderr)
        return 2
    log(f"machine: {info['cpus']} cpus, load {info['loadavg'][0]:.2f}; {info['wrk']}")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    root = Path(tempfile.mkdtemp(prefix="lacak-bench-live-"))
    phases: list[Phase] = []
    found: list[Verdict] = []
    extras: dict[str, Any] = {}
    try:
        for backend in backends:
            mine, extras[backend] = measure_backend(backend, args, root)
            phases += mine
            found += verdicts(backend, mine, extras[backend], args.streams)
    except BenchError as exc:
        if phases:
            print("\n" + table(phases))
        print(f"\nBENCHMARK ABORTED: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            log(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(phases, found, extras, args, info)
    return 0 if all(v.passed for v in found) else 1


if __name__ == "__main__":
    sys.exit(main())
