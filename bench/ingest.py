"""The ingestion benchmark: courier callbacks and driver locations per second, and what they cost
the tracking lookups running at the same time.

    .venv/bin/python bench/ingest.py --backend sqlite|postgres|both --duration 10

For each backend: seed a fresh database like the lookup benchmark (bench/seed.py), add GoSend
orders waiting for a driver and fleet drivers carrying orders (bench/ingest_seed.py), start
lacak (one worker, access log off, task loop and webhook sender off), check every kind of
request, warm up, then measure with wrk (bench/lookup.lua, bench/ingest.lua):

  1. lookups alone                  tracking lookups, as in bench/run.py
  2. callbacks alone                GoSend booking_event callbacks, as fast as they are taken
  3. locations alone                driver location batches, as fast as they are taken
  4. lookups + callbacks            callbacks paced at --callback-rate, lookups flat out
  5. lookups + locations            locations paced at --point-rate, lookups flat out
  6. lookups alone, again           the baseline is the mean of 1 and 6 (the machine drifts)

The ratio is lookup req/s during 4 (5) over the baseline, in the same server process. See
bench/README.md, "Ingestion benchmark".
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (`python bench/ingest.py`): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import fake, harness
from bench.harness import BenchError, Load, Server, WrkJob, WrkPlan
from bench.ingest_seed import CALLBACK_TOKEN, Fixtures, add_fixtures
from bench.run import (
    PG_ADMIN_DEFAULT,
    RESULTS,
    Database,
    check_load,
    database,
    describe,
    log,
    machine,
    server_env,
)
from bench.seed import seed

SCRIPT = Path(__file__).resolve().parent / "ingest.lua"
CALLBACK = "/couriers/gosend/callback"
LOCATION = "/api/driver/v1/location"
TARGET_CALLBACKS = 1500.0  # per second, SQLite
TARGET_POINTS = 10_000.0  # per second, SQLite, batched
TARGET_RATIO = 0.70  # lookups during ingestion / lookups alone
# A load paced at exactly its target rate is "carried" at 99 % of it: wrk's pacing and the edges
# of its window cost a few requests even when the server keeps up (10,000 paced: 9,988-9,993).
PACE_SLACK = 0.99
TARGETED = ("sqlite",)  # the issue sets targets for SQLite; PostgreSQL is reported for information
REPEAT, SWAP = 0.05, 0.05  # shares of orders whose callbacks come twice / out of order
# What each callback of the three stories ingest.lua tells does to its order (see STEPS there):
# `confirmed` is no news for an order already finding a driver; an event delivered twice is a
# duplicate; `out_for_pickup` arriving after `picked` is stale.
STORIES = (
    ("duplicate", "applied", "applied", "applied", "applied", "applied"),
    ("duplicate", "applied", "applied", "duplicate", "applied", "applied", "applied"),
    ("duplicate", "applied", "applied", "stale", "applied", "applied"),
)
MIN_EVENTS = min(map(len, STORIES))
ROUNDS = max(map(len, STORIES))
CEILING = 6000  # callbacks/s no single lacak process reaches: sizes the pool of orders
SANITY_ORDERS = 2  # the first AWBs belong to the sanity check
_OUTCOME = re.compile(r'lacak_courier_events_total\{.*outcome="(\w+)"')


# -- the callback stream, replayed ----------------------------------------------------------------


def story(n: int) -> tuple[str, ...]:
    """The outcomes of AWB line `n`'s callbacks: ingest.lua's `events_of`, same hash."""
    h = n * 2654435761 % 1000 / 1000
    return STORIES[1] if h < REPEAT else STORIES[2] if h < REPEAT + SWAP else STORIES[0]


def expected_outcomes(start: int, count: int, wave: int, requests: int) -> Counter[str]:
    """What the first `requests` callbacks of ingest.lua's walk (from `start`) must do.

    The walk's first callback is never sent: wrk calls `request()` once before the run to check
    the script (`script_verify_request`) and throws that request away.
    """
    out: Counter[str] = Counter()
    made = wave_no = round_no = slot = 0
    while made <= requests:
        events = story(start + (wave_no * wave + slot) % count)
        if round_no < len(events):
            if made:
                out[events[round_no]] += 1
            made += 1
        slot += 1
        if slot == wave:
            slot, round_no = 0, round_no + 1
            if round_no == ROUNDS:
                round_no, wave_no = 0, wave_no + 1
    return out


# -- counters -------------------------------------------------------------------------------------


def count(counters: dict[str, float], metric: str, **labels: str) -> float:
    """The sum of one counter over every series that carries these labels."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        v for key, v in counters.items() if key.partition("{")[0] == metric and all(w in key for w in want)
    )


@dataclass(frozen=True)
class Reading:
    """The clock, the CPU counters and lacak's counters at one moment."""

    at: float
    server_cpu: float
    wrk_cpu: float
    db_cpu: dict[int, float]
    counters: dict[str, float]

    @classmethod
    def take(cls, server: Server, pids: list[int]) -> Reading:
        return cls(time.monotonic(), harness.cpu_seconds(server.pid), harness.children_cpu(),
                   harness.total_cpu(pids), harness.counters(server.port))  # fmt: skip

    def since(self, before: Reading) -> dict[str, float]:
        keys = set(self.counters) | set(before.counters)
        return {k: self.counters.get(k, 0.0) - before.counters.get(k, 0.0) for k in keys}


# -- one step: one or two wrk processes at once ---------------------------------------------------


@dataclass
class Step:
    name: str
    loads: dict[str, Load]  # by mode: lookup, callback, location
    paced: dict[str, float]  # requests/s asked of each ingestion load (0: flat out)
    walk: tuple[int, int] = (0, 0)  # the callbacks' first AWB line and how many lines they may use
    outcomes: dict[str, int] = field(default_factory=dict)  # callbacks, by outcome
    points: int = 0  # points the server stored
    batch: int = 0

    def rate(self, mode: str) -> float:
        """Callbacks/s or points/s (from wrk's completed requests)."""
        load = self.loads.get(mode)
        if load is None:
            return 0.0
        return load.rps * (self.batch if mode == "location" else 1)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "paced": self.paced, "outcomes": self.outcomes, "points": self.points,
                "rates": {m: self.rate(m) for m in self.loads},
                "loads": {m: x.to_json() for m, x in self.loads.items()}}  # fmt: skip


@dataclass
class Pool:
    """The GoSend orders not yet called back: each run takes the next ones."""

    fixtures: Fixtures
    wave: int
    next: int = SANITY_ORDERS

    def take(self) -> tuple[int, int]:
        left = self.fixtures.callback_orders - self.next
        if left < self.wave:
            raise BenchError("out of GoSend orders to call back: raise --callback-orders")
        return self.next, left

    def used(self, requests: int) -> None:
        # Every wave but the last one finished gets at least MIN_EVENTS callbacks per order.
        self.next += self.wave * (requests // (MIN_EVENTS * self.wave) + 1)
        if self.next > self.fixtures.callback_orders:
            raise BenchError("the callback run wrapped around its orders: raise --callback-orders")


@dataclass
class Bench:
    server: Server
    db: Database
    args: argparse.Namespace
    fixtures: Fixtures
    plan: WrkPlan
    pool: Pool

    def job(self, mode: str, seconds: float, rate: float, walk: tuple[int, int]) -> WrkJob:
        a = self.args
        if mode == "lookup":
            return harness.lookup_job("lookup", self.plan, seconds)
        if mode == "callback":
            extra = [f"awbs={self.fixtures.awbs}", f"start={walk[0]}", f"count={walk[1]}", f"wave={a.wave}",
                     f"token={CALLBACK_TOKEN}", f"base_ms={self.fixtures.first_created_ms}",
                     f"repeat={REPEAT}", f"swap={SWAP}"]  # fmt: skip
        else:
            extra = [f"drivers={self.fixtures.drivers}", f"batch={a.batch}"]
        args = (f"mode={mode}", *extra, f"rate={rate:g}", f"seed={a.seed}")
        return WrkJob(mode, SCRIPT, args, a.ingest_connections, seconds)

    def run(self, name: str, modes: dict[str, float], seconds: float) -> Step:
        """The loads in `modes` (mode → paced requests/s, 0 = flat out) at once, and what they did."""
        pids = harness.pg_backend_pids(self.args.pg_url, self.db.pg_name) if self.db.pg_name else []
        walk = self.pool.take() if "callback" in modes else (0, 0)
        jobs = [self.job(mode, seconds, rate, walk) for mode, rate in modes.items()]
        before = Reading.take(self.server, pids)
        loads = harness.wrk_together(self.server.port, jobs)
        self.server.alive()
        after = Reading.take(self.server, pids)
        step = Step(name, {x.mode: x for x in loads}, {m: r for m, r in modes.items() if m != "lookup"},
                    walk=walk, batch=self.args.batch)  # fmt: skip
        self._account(step, before, after, pids)
        if "callback" in step.loads:
            self.pool.used(step.loads["callback"].requests)
        return step

    def _account(self, step: Step, before: Reading, after: Reading, pids: list[int]) -> None:
        wall = after.at - before.at
        cpu = {
            "server": (after.server_cpu - before.server_cpu) / wall,
            "wrk": (after.wrk_cpu - before.wrk_cpu) / wall,
        }
        if pids:
            cpu["postgres"] = (
                sum(t - before.db_cpu[p] for p, t in after.db_cpu.items() if p in before.db_cpu) / wall
            )
        moved = after.since(before)
        requests = sum(x.requests for x in step.loads.values())
        step.outcomes = {m[1]: int(v) for k, v in moved.items()
                         if v and (m := _OUTCOME.match(k))}  # fmt: skip
        step.points = int(count(moved, "lacak_driver_positions_total", source="driver"))
        for load in step.loads.values():
            load.cpu = cpu
            # Server CPU per request of the whole step: per lookup, callback or batch when alone.
            load.server_cpu_us = (after.server_cpu - before.server_cpu) / max(requests, 1) * 1e6
            load.lookups = {r: int(count(moved, "lacak_tracking_lookups_total", result=r))
                            for r in ("found", "not_found")}  # fmt: skip

    def check(self, step: Step) -> None:
        conns = self.args.ingest_connections
        for mode, load in step.loads.items():
            if mode == "lookup":
                check_load(load, self.args.unknown)
            elif load.error_count:
                raise BenchError(
                    f"wrk saw errors in the {mode} run of {step.name!r} (non-2xx or socket): {load.errors}"
                )
        if "callback" in step.loads:
            self._check_outcomes(step, step.loads["callback"].requests, conns)
        if "location" in step.loads:
            batches, batch = step.loads["location"].requests, self.args.batch
            if not batches * batch <= step.points <= (batches + conns) * batch:
                raise BenchError(
                    f"{step.name}: {batches} batches of {batch} sent, {step.points} points stored"
                )

    def _check_outcomes(self, step: Step, sent: int, conns: int) -> None:
        """The server's outcome counts are the ones the stream implies, give or take the requests
        in flight when wrk stopped (answered but not counted by wrk, or not answered yet)."""
        start, left = step.walk
        low = expected_outcomes(start, left, self.args.wave, max(0, sent - conns))
        high = expected_outcomes(start, left, self.args.wave, sent + conns)
        seen = step.outcomes
        fits = set(seen) <= set(high) and all(low[k] <= seen.get(k, 0) <= high[k] for k in high)
        if not fits or not sent <= sum(seen.values()) <= sent + conns:
            raise BenchError(
                f"{step.name}: {sent} callbacks sent, the server counted {seen};"
                f" the stream implies {dict(low)} .. {dict(high)}"
            )


# -- before any load: each kind of ingestion request answers what it should -----------------------


def _expect(ok: bool, what: str, reply: harness.Reply) -> None:
    if not ok:
        raise BenchError(f"sanity check failed: {what}\n  got HTTP {reply.status}: {reply.body[:400]!r}")


def _outcomes(reply: harness.Reply) -> list[str] | None:
    body = reply.json() if reply.status == 200 else {}
    return body.get("result", {}).get("outcomes") if body.get("status") is True else None


def sanity(port: int, fx: Fixtures) -> None:
    awb = fx.awbs.read_text().split()[0]
    auth = {"Authorization": CALLBACK_TOKEN}

    def event(booking: str, status: str, event_id: str) -> dict[str, Any]:
        return {"@type": "booking_event", "entity_id": booking, "booking_id": booking, "status": status,
                "booking_status": status, "event_id": event_id,
                "event_date": fx.first_created_ms + 300_000, "driver_name": "Budi Santoso",
                "driver_phone": "6281100000001", "live_tracking_url": ""}  # fmt: skip

    story = [  # booking, status, event id, expected outcome
        (awb, "allocated", "sanity-1", "applied"),
        (awb, "allocated", "sanity-1", "duplicate"),  # the same event delivered twice
        (awb, "picked", "sanity-2", "applied"),
        (awb, "out_for_pickup", "sanity-3", "stale"),  # older news arriving late
        ("GK-11-1", "allocated", "sanity-4", "unknown_order"),
    ]
    for booking, status, event_id, outcome in story:
        r = harness.post_json(port, CALLBACK, event(booking, status, event_id), auth)
        _expect(_outcomes(r) == [outcome], f"callback {status} for {booking} is {outcome}", r)
    r = harness.post_json(port, CALLBACK, event(awb, "delivered", "sanity-5"), {"Authorization": "wrong"})
    _expect(r.status == 401, "a callback with the wrong token is HTTP 401", r)

    token, lat, long, pk = fx.drivers.read_text().splitlines()[0].split("\t")
    now = int(time.time() * 1000)
    points = [
        {"lat": float(lat), "long": float(long), "at": now - 3000 + 1000 * k, "accuracy": 5} for k in range(3)
    ]
    r = harness.post_json(port, LOCATION, {"points": points}, {"Authorization": f"Bearer {token}"})
    body = r.json() if r.status == 200 else {}
    stored = body.get("status") is True and (body["result"]["points"], body["result"]["orders"]) == (
        3,
        [int(pk)],
    )
    _expect(stored, "a location batch is stored for the driver's order", r)
    r = harness.post_json(port, LOCATION, {"points": points}, {"Authorization": "Bearer drv_" + "0" * 64})
    _expect(r.status == 401, "an unknown driver token is HTTP 401", r)


# -- a backend ------------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    orders: int
    fixtures: dict[str, Any]
    steps: list[Step]
    memory_kb: dict[str, int]
    profiles: list[str]

    def named(self, name: str) -> list[Step]:
        return [s for s in self.steps if s.name == name]

    def median(self, name: str, mode: str, what: Callable[[Step], float] | None = None) -> float:
        steps = self.named(name)
        return statistics.median((what or (lambda s: s.rate(mode)))(s) for s in steps) if steps else 0.0

    @property
    def baseline(self) -> float:
        """Lookups alone: every alone run of this server, before and after the ingestion runs."""
        return self.median("lookups alone", "lookup")

    def ratio(self, name: str) -> float:
        return self.median(name, "lookup") / self.baseline if self.baseline else 0.0

    def cpu_us(self, name: str) -> float:
        """Server CPU per request when the load runs alone (per lookup, callback or batch)."""
        return self.median(name, "", lambda s: next(iter(s.loads.values())).server_cpu_us)

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "orders": self.orders, "fixtures": self.fixtures,
                "memory_kb": self.memory_kb, "profiles": self.profiles,
                "steps": [s.to_json() for s in self.steps]}  # fmt: skip


def ingest_env(db: Database, static: harness.Typical, args: argparse.Namespace) -> dict[str, str]:
    env = server_env(db, access_log=False, static=static)
    env.update(
        LACAK_PROVIDER_GOSEND="gosend",
        LACAK_GOSEND_CALLBACK_TOKEN=CALLBACK_TOKEN,
        # Off by default: with nothing due, the loop would only add a claim per wake-up (see README).
        LACAK_RUN_TASKS="1" if args.run_tasks else "0",
        # Off by default: the seeded merchants' callback URLs do not resolve here, so the sender
        # would measure DNS failures and held-back endpoints, not ingestion (see README).
        LACAK_RUN_WEBHOOKS="1" if args.run_webhooks else "0",
    )
    return env


def pool_size(args: argparse.Namespace) -> int:
    if args.callback_orders:
        return int(args.callback_orders)
    seconds = (args.warmup + 2 * args.duration) * args.rounds + (args.duration if args.profile else 0)
    waves: int = math.ceil(seconds * CEILING / MIN_EVENTS / args.wave) + 2
    return SANITY_ORDERS + int(args.wave) * waves


def run_backend(backend: str, args: argparse.Namespace, root: Path) -> Result:
    with database(backend, args.orders, root, args.pg_url) as db:
        log(f"{backend} {args.orders:,} orders: seeding")
        plan = fake.Plan(args.orders, args.merchants)
        seeded = seed(db.url, plan, db.work / "pairs.tsv")
        log(f"  seeded {seeded.describe()}")
        fixtures = add_fixtures(db.url, plan, pool_size(args), args.drivers, db.work)
        log(f"  added {fixtures.describe()}")
        pairs = harness.read_pairs(seeded.pairs)
        static = harness.typical_response(server_env(db, access_log=False), pairs)
        with harness.running(ingest_env(db, static, args), db.work / "server.log") as server:
            harness.sanity(server.port, static, pairs)
            sanity(server.port, fixtures)
            log("  sanity ok: lookups, callbacks (applied, duplicate, stale, unknown order, bad token),"
                " locations (stored, bad token)")  # fmt: skip
            plan_ = WrkPlan(args.duration, args.connections, 1, args.unknown, seeded.pairs, args.seed)
            bench = Bench(server, db, args, fixtures, plan_, Pool(fixtures, args.wave))
            steps = measure(bench, args)
            memory = harness.memory_kb(server.pid)
            profiles = profile(bench, db) if args.profile else []
        return Result(backend, args.orders, asdict(fixtures) | {"awbs": str(fixtures.awbs),
                      "drivers": str(fixtures.drivers)}, steps, memory, profiles)  # fmt: skip


def measure(bench: Bench, args: argparse.Namespace) -> list[Step]:
    if args.warmup > 0:
        for mode in ("lookup", "callback", "location"):
            bench.check(bench.run("warm-up", {mode: 0.0}, args.warmup))
    plan: list[tuple[str, dict[str, float]]] = [
        ("lookups alone", {"lookup": 0.0}),
        ("callbacks alone", {"callback": 0.0}),
        ("locations alone", {"location": 0.0}),
        ("lookups + callbacks", {"lookup": 0.0, "callback": args.callback_rate}),
        ("lookups + locations", {"lookup": 0.0, "location": args.point_rate / args.batch}),
        ("lookups alone", {"lookup": 0.0}),
    ]
    steps = []
    for _ in range(args.rounds):
        for name, modes in plan:
            step = bench.run(name, modes, args.duration)
            for load in step.loads.values():
                log(f"  {name:<20} " + describe(load) + _extra(step, load.mode))
            bench.check(step)
            steps.append(step)
    return steps


def _extra(step: Step, mode: str) -> str:
    if mode == "callback":
        mix = ", ".join(f"{k} {v}" for k, v in sorted(step.outcomes.items()))
        return f"  [{step.rate(mode):,.0f} callbacks/s; {mix}]"
    if mode == "location":
        return f"  [{step.rate(mode):,.0f} points/s; {step.points:,} stored]"
    return ""


def profile(bench: Bench, db: Database) -> list[str]:
    """Unmeasured callback and location runs under py-spy; collapsed stacks and summaries to results/."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        log("  (no py-spy: pip install py-spy to profile)")
        return []
    RESULTS.mkdir(exist_ok=True)
    out = []
    for mode in ("callback", "location"):
        path = RESULTS / f"profile-ingest-{mode}-{db.backend}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
        cmd = [spy, "record", "-p", str(bench.server.pid), "-d", f"{int(bench.args.duration)}", "-r", "100",
               "-f", "raw", "-o", str(path)]  # fmt: skip
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
            time.sleep(1)
            bench.run(f"profile {mode}", {mode: 0.0}, bench.args.duration)
            proc.communicate(timeout=60)
        if path.exists():
            summary = harness.profile_summary(path, top=30)
            path.with_suffix(".summary.txt").write_text(summary)
            log(f"  profile of {mode}s: {path}\n{harness.profile_summary(path)}")
            out.append(str(path))
    return out


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    backend: str
    target: str
    value: str
    passed: bool | None  # None: reported, no target on this backend


def verdicts(r: Result, args: argparse.Namespace) -> list[Verdict]:
    """The targets; a row is only a verdict on SQLite, and for the runs with lookups only when the
    ingestion was paced at (at least) its target rate: anything else answers another question."""
    mix = r.named("callbacks alone")[-1].outcomes
    seen = sum(mix.values()) or 1
    mix_text = ", ".join(f"{k} {n / seen:.0%}" for k, n in sorted(mix.items()))
    cost = {name: r.cpu_us(f"{name} alone") for name in ("lookups", "callbacks", "locations")}
    cb_pace, pt_pace = args.callback_rate, args.point_rate
    cb_at, pt_at = cb_pace >= TARGET_CALLBACKS, pt_pace >= TARGET_POINTS
    rows = [  # target, value, wanted, applies, detail
        (f"callbacks/s alone >= {TARGET_CALLBACKS:,.0f}", r.median("callbacks alone", "callback"),
         TARGET_CALLBACKS, True, f"({mix_text}; {cost['callbacks']:,.0f} us server CPU each)"),
        (f"points/s alone >= {TARGET_POINTS:,.0f}", r.median("locations alone", "location"), TARGET_POINTS,
         True, f"(batches of {args.batch}; {cost['locations'] / args.batch:,.1f} us server CPU per point)"),
        (f"callbacks/s with lookups >= {TARGET_CALLBACKS:,.0f}", r.median("lookups + callbacks", "callback"),
         TARGET_CALLBACKS * PACE_SLACK, cb_at, _paced(cb_pace)),
        (f"points/s with lookups >= {TARGET_POINTS:,.0f}", r.median("lookups + locations", "location"),
         TARGET_POINTS * PACE_SLACK, pt_at, _paced(pt_pace)),
        (f"lookups during callbacks >= {TARGET_RATIO:.2f}", r.ratio("lookups + callbacks"), TARGET_RATIO,
         cb_at, _cpu_note(cb_pace, cost["callbacks"], cost["lookups"])),
        (f"lookups during locations >= {TARGET_RATIO:.2f}", r.ratio("lookups + locations"), TARGET_RATIO,
         pt_at, _cpu_note(pt_pace / args.batch, cost["locations"], cost["lookups"])),
    ]  # fmt: skip
    targeted = r.backend in TARGETED
    return [
        Verdict(
            r.backend,
            target,
            f"{value:,.{3 if want < 10 else 0}f}  {detail}",
            value >= want if targeted and applies else None,
        )
        for target, value, want, applies, detail in rows
    ]


def _paced(pace: float) -> str:
    return f"(paced at {pace:,.0f}/s; {PACE_SLACK:.0%} of it counts as carried)" if pace else "(flat out)"


def _cpu_note(rate: float, cost_us: float, lookup_us: float) -> str:
    """What the alone runs' CPU costs predict: the share of one core the paced ingestion leaves."""
    if not rate:
        return "(ingestion flat out: the split follows the connection counts)"
    return f"(CPU cost predicts {max(0.0, 1 - rate * cost_us / 1e6):.3f}; lookup {lookup_us:,.0f} us each)"


def table(results: list[Result]) -> str:
    head = (f"{'backend':<9}{'step':<22}{'lookup r/s':>11}{'ratio':>7}{'lk p50':>8}{'lk p99':>8}"
            f"{'ingested/s':>12}{'paced':>8}{'in p50':>8}{'in p99':>8}{'cpu srv/wrk/db':>16}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in results:
        for s in r.steps:
            lk = s.loads.get("lookup")
            mode = next((m for m in ("callback", "location") if m in s.loads), None)
            ing = s.loads.get(mode) if mode else None
            cpu = next(iter(s.loads.values())).cpu
            unit = {"callback": " cb", "location": " pt"}.get(mode or "", "")
            pace = s.paced.get(mode or "", 0) * (s.batch if mode == "location" else 1)
            lines.append(
                f"{r.backend:<9}{s.name:<22}"
                + (f"{lk.rps:>11,.0f}{lk.rps / r.baseline:>7.3f}{lk.p50_ms:>8.2f}{lk.p99_ms:>8.2f}" if lk
                   else " " * 34)
                + (f"{s.rate(mode or ''):>9,.0f}{unit}{pace:>8,.0f}{ing.p50_ms:>8.2f}{ing.p99_ms:>8.2f}"
                   if ing else " " * 36)
                + f"{'/'.join(f'{cpu.get(k, 0) * 100:.0f}' for k in ('server', 'wrk', 'postgres')):>16}"
            )  # fmt: skip
    return "\n".join(lines)


def report(
    results: list[Result], found: list[Verdict], args: argparse.Namespace, info: dict[str, Any]
) -> Path:
    print()
    print(table(results))
    print()
    for v in found:
        mark = "INFO" if v.passed is None else "PASS" if v.passed else "FAIL"
        print(f"{mark}  {v.backend:<9} {v.target:<36} {v.value}")
    print()
    print(f"lookups: wrk -t1 -c{args.connections}, {args.unknown:.0%} unknown ids; ingestion: wrk -t1"
          f" -c{args.ingest_connections}, {args.duration:g} s per step; location batches of {args.batch}"
          f" points from {args.drivers} drivers; two wrk processes, the server (one process) and"
          f" PostgreSQL share {os.cpu_count()} cores. Task loop {'on' if args.run_tasks else 'off'},"
          f" webhook sender {'on' if args.run_webhooks else 'off'}, access log off.")  # fmt: skip
    print(
        "ratio = lookup req/s / the median of this server's 'lookups alone' runs; p50/p99 from wrk"
        " (coordinated omission not corrected); cpu = share of one core during the step."
    )
    return harness.save_results("ingest", info, args, {
        "results": [r.to_json() for r in results], "verdicts": [v.__dict__ for v in found],
    }, busy="; the CPU-cost predictions hold up better")  # fmt: skip


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="lacak ingestion benchmark (see bench/README.md)")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--orders", type=int, default=1_000_000, help="orders in the lookup database")
    p.add_argument("--merchants", type=int, default=100)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured step")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of each load before measuring")
    p.add_argument("--rounds", type=int, default=1, help="repeat the six steps; medians are reported")
    p.add_argument("--connections", type=int, default=64, help="lookup connections")
    p.add_argument("--ingest-connections", type=int, default=32, help="callback / location connections")
    p.add_argument("--unknown", type=float, default=0.10, help="share of lookups of unknown ids")
    p.add_argument("--callback-rate", type=float, default=TARGET_CALLBACKS,
                   help="callbacks/s while lookups run (0: flat out)")  # fmt: skip
    p.add_argument("--point-rate", type=float, default=TARGET_POINTS,
                   help="location points/s while lookups run (0: flat out)")  # fmt: skip
    p.add_argument("--batch", type=int, default=50, help="points per location request")
    p.add_argument("--drivers", type=int, default=500, help="fleet drivers posting locations")
    p.add_argument("--wave", type=int, default=500, help="orders walked together by the callback stream")
    p.add_argument("--callback-orders", type=int, default=0, help="GoSend orders to seed (0: enough)")
    p.add_argument("--run-tasks", action="store_true", help="run lacak's task loop in the server too")
    p.add_argument("--run-webhooks", action="store_true", help="run lacak's webhook sender in the server too")
    p.add_argument("--profile", action="store_true", help="extra callback and location runs under py-spy")
    p.add_argument("--seed", type=int, default=1, help="wrk scripts' random seed")
    p.add_argument("--pg-url", default=PG_ADMIN_DEFAULT, help="PostgreSQL admin URL")
    p.add_argument("--keep", action="store_true", help="keep the SQLite work directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness.wrk_path()  # fail before seeding anything
    info = machine()
    log(f"machine: {info['cpus']} cpus, load {info['loadavg'][0]:.2f}; {info['wrk']}")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    root = Path(tempfile.mkdtemp(prefix="lacak-ingest-"))
    results: list[Result] = []
    found: list[Verdict] = []
    try:
        for backend in backends:
            result = run_backend(backend, args, root)
            results.append(result)
            found += verdicts(result, args)
    except BenchError as exc:
        print(f"\nBENCHMARK ABORTED: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            log(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(results, found, args, info)
    return 0 if all(v.passed is not False for v in found) else 1


if __name__ == "__main__":
    sys.exit(main())
