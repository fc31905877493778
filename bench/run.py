"""The tracking-lookup benchmark: seed, serve, measure the ceiling and the lookups, compare.

    .venv/bin/python bench/run.py --backend sqlite|postgres|both --orders 1000000 \\
        --duration 15 --connections 64

For each backend, twice (a 10,000-order database and an --orders one):
  seed straight into a fresh database (a temp dir / a `lacak_bench_*` PostgreSQL database,
  removed at the end), start lacak under uvicorn with one worker (uvloop, httptools, access log
  off), check that every kind of request answers correctly, warm up, then with wrk:
    (a) GET /bench/static  a constant body of the size of a typical tracking response, from
                           the same server through the same middleware: the ceiling
    (b) GET tracking       random seeded orders with their merchant's key, 10 % unknown ids
  and read the server's memory from /proc. The result is b/a, a ratio measured in one run on
  one machine, and the targets are checked against it. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (`python bench/run.py`): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import fake, harness
from bench.harness import BenchError, Load, Server, WrkPlan
from bench.seed import BENCH_SECRET_KEY, Seeded, seed

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_DEFAULT = os.environ.get("LACAK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_RATIO = {"sqlite": 0.60, "postgres": 0.40}
TARGET_P99_MS = 15.0
TARGET_RSS_MB = 200.0
TARGET_SCALE = 0.90  # lookups at the small and the large size within 10 % of each other


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- databases ------------------------------------------------------------------------------------


Database = harness.Database


@contextmanager
def database(backend: str, orders: int, root: Path, pg_admin: str) -> Iterator[Database]:
    """A fresh, empty database for one size, removed afterwards."""
    with harness.database(backend, root / f"{backend}-{orders}", pg_admin, str(orders)) as db:
        yield db


def server_env(db: Database, *, access_log: bool, static: harness.Typical | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LACAK_")}
    env.update(
        LACAK_DATABASE_URL=db.url,
        LACAK_DATA_DIR=str(db.work),
        LACAK_SECRET_KEY=BENCH_SECRET_KEY,
        LACAK_ACCESS_LOG="1" if access_log else "0",
        LACAK_LOG_LEVEL="INFO" if access_log else "WARNING",
    )
    if static is not None:
        body = db.work / "static-body.json"
        body.write_bytes(static.body)
        env.update(LACAK_BENCH_STATIC_BODY=str(body), LACAK_BENCH_STATIC_ETAG=static.etag)
    return env


# -- one measured server --------------------------------------------------------------------------


@dataclass
class Case:
    """One server process on one database: the ceiling, the lookups, its memory."""

    backend: str
    orders: int
    access_log: bool
    seeded: dict[str, Any]
    static_bytes: int
    static: list[Load] = field(default_factory=list)
    lookup: list[Load] = field(default_factory=list)
    memory_kb: dict[str, int] = field(default_factory=dict)
    profile: str | None = None
    connections: int = 64

    @property
    def static_rps(self) -> float:
        return statistics.median(x.rps for x in self.static)

    @property
    def lookup_rps(self) -> float:
        return statistics.median(x.rps for x in self.lookup)

    @property
    def ratio(self) -> float:
        return self.lookup_rps / self.static_rps

    def lookup_ms(self, which: str) -> float:
        return statistics.median(float(getattr(x, which)) for x in self.lookup)

    def static_ms(self, which: str) -> float:
        return statistics.median(float(getattr(x, which)) for x in self.static)

    @property
    def cpu_ratio(self) -> float:
        """Server CPU per static request / per lookup: the ratio as if the server had a core
        to itself. A cross-check that holds up better than req/s on a busy machine."""
        static = statistics.median(x.server_cpu_us for x in self.static)
        lookup = statistics.median(x.server_cpu_us for x in self.lookup)
        return static / lookup if lookup else 0.0

    @property
    def peak_mb(self) -> float:
        return self.memory_kb.get("VmHWM", 0) / 1024

    @property
    def errors(self) -> int:
        return sum(x.error_count for x in self.static + self.lookup)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "orders": self.orders, "access_log": self.access_log,
            "seeded": self.seeded, "static_body_bytes": self.static_bytes,
            "static_rps": self.static_rps, "lookup_rps": self.lookup_rps, "ratio": self.ratio,
            "cpu_ratio": self.cpu_ratio,
            "lookup_p50_ms": self.lookup_ms("p50_ms"), "lookup_p99_ms": self.lookup_ms("p99_ms"),
            "static_p50_ms": self.static_ms("p50_ms"), "static_p99_ms": self.static_ms("p99_ms"),
            "memory_kb": self.memory_kb, "errors": self.errors, "profile": self.profile,
            "runs": [x.to_json() for x in self.static + self.lookup],
        }  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """What the clock, the CPU counters and the server's lookup counters said at one moment."""

    at: float
    server_cpu: float
    wrk_cpu: float  # CPU of finished children: wrk runs are the only ones
    db_cpu: dict[int, float]
    lookups: dict[str, int]

    @classmethod
    def take(cls, server: Server, pids: list[int]) -> Snapshot:
        return cls(time.monotonic(), harness.cpu_seconds(server.pid), harness.children_cpu(),
                   harness.total_cpu(pids), harness.lookup_counts(server.port))  # fmt: skip


def measured(server: Server, mode: str, plan: WrkPlan, db: Database, pg_admin: str) -> Load:
    """One wrk run, with the CPU each party used and the lookup counters it moved."""
    pids = harness.pg_backend_pids(pg_admin, db.pg_name) if db.pg_name else []
    before, (_, waited) = Snapshot.take(server, pids), harness.sched(server.pid)
    load = harness.wrk(server.port, mode, plan)
    server.alive()
    after, (_, waited_after) = Snapshot.take(server, pids), harness.sched(server.pid)
    wall = after.at - before.at
    load.server_cpu_us = (after.server_cpu - before.server_cpu) / max(load.requests, 1) * 1e6
    # server_runq: the share of one core the server spent runnable but waiting for a CPU. With
    # `server` under 100 %, it tells "other processes had the cores" from "it waited on I/O".
    load.cpu = {"server": (after.server_cpu - before.server_cpu) / wall,
                "wrk": (after.wrk_cpu - before.wrk_cpu) / wall,
                "server_runq": (waited_after - waited) / wall}  # fmt: skip
    if pids:
        used = sum(t - before.db_cpu[p] for p, t in after.db_cpu.items() if p in before.db_cpu)
        load.cpu["postgres"] = used / wall
    load.lookups = {k: after.lookups.get(k, 0) - before.lookups.get(k, 0) for k in ("found", "not_found")}
    return load


def check_load(load: Load, unknown: float) -> None:
    if load.error_count:
        raise BenchError(f"wrk saw errors in the {load.mode} run (non-2xx or socket): {load.errors}")
    if load.mode == "lookup":
        total = sum(load.lookups.values())
        share = load.lookups.get("not_found", 0) / max(total, 1)
        if total < load.requests * 0.95 or abs(share - unknown) > 0.03:
            raise BenchError(f"the server counted {load.lookups} lookups for {load.requests} requests"
                             f" (unknown share {share:.3f}, expected {unknown:.2f})")  # fmt: skip


def describe(load: Load) -> str:
    cpu = " ".join(f"{k} {v:.0%}" for k, v in load.cpu.items())
    return (f"{load.mode:>6}: {load.rps:8,.0f} req/s  p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:7.2f} ms"
            f"  {load.bytes_per_response:5.0f} B/resp  {load.server_cpu_us:4.0f} us server cpu/req"
            f"  cpu: {cpu}")  # fmt: skip


@dataclass(frozen=True)
class Options:
    plan: WrkPlan  # what each measured wrk run does
    warmup: float
    rounds: int
    pg_admin: str
    profile: bool


def measure(db: Database, seeded: Seeded, opts: Options, *, access_log: bool) -> Case:
    pairs = harness.read_pairs(seeded.pairs)
    static = harness.typical_response(server_env(db, access_log=False), pairs)
    case = Case(db.backend, seeded.orders, access_log, _seeded_json(seeded), len(static.body),
                connections=opts.plan.connections)  # fmt: skip
    log_file = db.work / f"server{'-access-log' if access_log else ''}.log"
    with harness.running(server_env(db, access_log=access_log, static=static), log_file) as server:
        harness.sanity(server.port, static, pairs)
        log(f"  sanity ok: static body {len(static.body)} B = the tracking response of"
            f" {static.order_id}; sample sizes {static.sizes[0]}..{static.sizes[-1]} B")  # fmt: skip
        if opts.warmup > 0:
            for mode in ("static", "lookup"):
                harness.wrk(server.port, mode, opts.plan, duration=opts.warmup)
        for _ in range(opts.rounds):
            for mode, into in (("static", case.static), ("lookup", case.lookup)):
                load = measured(server, mode, opts.plan, db, opts.pg_admin)
                log("  " + describe(load))
                check_load(load, opts.plan.unknown)
                into.append(load)
        case.memory_kb = harness.memory_kb(server.pid)
        if opts.profile and not access_log:
            case.profile = profiled(server, db, opts)
    return case


def _seeded_json(seeded: Seeded) -> dict[str, Any]:
    return {"orders": seeded.orders, "payments": seeded.payments, "merchants": seeded.merchants,
            "seconds": round(seeded.seconds, 1)}  # fmt: skip


def profiled(server: Server, db: Database, opts: Options) -> str | None:
    """An extra (unmeasured) lookup run under py-spy; the collapsed stacks go to results/."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        log("  (no py-spy: pip install py-spy to profile)")
        return None
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"profile-{db.work.name}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    cmd = [spy, "record", "-p", str(server.pid), "-d", f"{int(opts.plan.duration)}", "-r", "100",
           "-f", "raw", "-o", str(out)]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        time.sleep(1)
        harness.wrk(server.port, "lookup", opts.plan)
        _, err = proc.communicate(timeout=60)
    if not out.exists():
        log(f"  py-spy failed: {err.decode(errors='replace')[-500:]}")
        return None
    log(f"  profile (collapsed stacks): {out}")
    summary = out.with_suffix(".summary.txt")
    summary.write_text(harness.profile_summary(out, top=30))
    print(harness.profile_summary(out), flush=True)
    return str(out)


# -- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    backend: str
    target: str
    value: str
    passed: bool


def verdicts(backend: str, big: Case, small: Case | None) -> list[Verdict]:
    want = TARGET_RATIO[backend]
    out = [
        Verdict(backend, f"lookup/static >= {want:.2f}", f"{big.ratio:.3f}", big.ratio >= want),
        Verdict(backend, f"lookup p99 <= {TARGET_P99_MS:g} ms",
                f"{big.lookup_ms('p99_ms'):.2f} ms (mean floor {big.connections} conns / req/s ="
                f" {1000 * big.connections / big.lookup_rps:.1f} ms)",
                big.lookup_ms("p99_ms") <= TARGET_P99_MS),
        Verdict(backend, f"server peak RSS <= {TARGET_RSS_MB:g} MB", f"{big.peak_mb:.1f} MB",
                big.peak_mb <= TARGET_RSS_MB),
    ]  # fmt: skip
    if small is not None:
        # Compared as ratios to each run's own ceiling, which cancels most machine noise
        # between the two server runs; raw req/s shown alongside.
        scale = min(small.ratio, big.ratio) / max(small.ratio, big.ratio)
        raw = big.lookup_rps / small.lookup_rps
        out.append(Verdict(
            backend, f"{small.orders:,} vs {big.orders:,} within 10 %",
            f"{scale:.3f} (ratios {small.ratio:.3f}/{big.ratio:.3f}; raw req/s {raw:.3f})",
            scale >= TARGET_SCALE,
        ))  # fmt: skip
    if big.errors or (small is not None and small.errors):
        out.append(Verdict(backend, "no non-2xx / socket errors", "errors", False))
    return out


def table(cases: list[Case]) -> str:
    head = (f"{'backend':<9}{'orders':>10} {'log':>4} {'static r/s':>11} {'lookup r/s':>11}"
            f" {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'st.p99':>7} {'RSS MB':>7} {'peak':>6}"
            f" {'cpu srv/wrk/db':>15} {'runq':>5} {'cpu-ratio':>9} {'seed s':>7}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for c in cases:
        cpu = c.lookup[-1].cpu
        cpus = "/".join(f"{cpu.get(k, 0) * 100:.0f}" for k in ("server", "wrk", "postgres"))
        lines.append(
            f"{c.backend:<9}{c.orders:>10,} {'on' if c.access_log else 'off':>4}"
            f" {c.static_rps:>11,.0f} {c.lookup_rps:>11,.0f} {c.ratio:>6.3f}"
            f" {c.lookup_ms('p50_ms'):>7.2f} {c.lookup_ms('p99_ms'):>7.2f}"
            f" {c.static_ms('p99_ms'):>7.2f} {c.memory_kb.get('VmRSS', 0) / 1024:>7.1f}"
            f" {c.peak_mb:>6.1f} {cpus:>15} {cpu.get('server_runq', 0) * 100:>5.0f}"
            f" {c.cpu_ratio:>9.3f} {c.seeded['seconds']:>7.1f}"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": platform.python_version(),
        "platform": platform.platform(), "wrk": harness.wrk_version(),
    }  # fmt: skip


def report(
    cases: list[Case], verdicts_: list[Verdict], args: argparse.Namespace, info: dict[str, Any]
) -> Path:
    print()
    print(table(cases))
    print()
    for v in verdicts_:
        print(f"{'PASS' if v.passed else 'FAIL'}  {v.backend:<9} {v.target:<32} {v.value}")
    print()
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, {args.unknown:.0%} unknown ids;"
        f" wrk, the server (one process) and PostgreSQL share {os.cpu_count()} cores."
    )
    print(
        "ratio = lookup req/s / static req/s from the same server process; p50/p99 are the lookups'"
        " (wrk, coordinated omission not corrected); st.p99 the static route's; RSS now / peak"
        " (VmHWM) after the runs; cpu = share of one core during the last lookup run;"
        " runq = share of one core the server spent runnable but waiting for a CPU then;"
        " cpu-ratio = server CPU per static request / per lookup (a cross-check for busy machines)."
    )
    print("access log off except rows marked 'on' (see bench/README.md).")
    return harness.save_results("lookup", info, args, {
        "cases": [c.to_json() for c in cases], "verdicts": [v.__dict__ for v in verdicts_],
    })  # fmt: skip


# -- main -----------------------------------------------------------------------------------------


def run_backend(backend: str, args: argparse.Namespace, root: Path) -> list[Case]:
    sizes = [n for n in (args.small_orders, args.orders) if n > 0]
    cases: list[Case] = []
    for orders in dict.fromkeys(sizes):
        with database(backend, orders, root, args.pg_url) as db:
            log(f"{backend} {orders:,} orders: seeding")
            seeded = seed(db.url, fake.Plan(orders, args.merchants), db.work / "pairs.tsv")
            log(f"  seeded {seeded.describe()}")
            large = orders == args.orders
            opts = Options(
                WrkPlan(args.duration, args.connections, args.threads, args.unknown, seeded.pairs),
                args.warmup, args.rounds, args.pg_url, args.profile and large,
            )  # fmt: skip
            cases.append(measure(db, seeded, opts, access_log=False))
            if args.access_log_run and large:
                log(f"{backend} {orders:,} orders: again with the access log on")
                cases.append(measure(db, seeded, opts, access_log=True))
    return cases


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="lacak tracking-lookup benchmark (see bench/README.md)")
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--orders", type=int, default=1_000_000, help="the large database")
    p.add_argument("--small-orders", type=int, default=10_000,
                   help="the small database to compare with (0: skip)")  # fmt: skip
    p.add_argument("--merchants", type=int, default=100)
    p.add_argument("--duration", type=float, default=15.0, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of each mode before measuring")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="wrk threads (the machine has 2 cores)")
    p.add_argument("--unknown", type=float, default=0.10, help="share of lookups of unknown ids")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate static/lookup runs this many times; medians are reported")  # fmt: skip
    p.add_argument("--access-log-run", action=argparse.BooleanOptionalAction, default=True,
                   help="also measure the large database once with the access log on")  # fmt: skip
    p.add_argument("--profile", action="store_true",
                   help="one extra lookup run under py-spy on the large database")  # fmt: skip
    p.add_argument("--pg-url", default=PG_ADMIN_DEFAULT, help="PostgreSQL admin URL")
    p.add_argument("--keep", action="store_true", help="keep the SQLite work directory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        info = machine()  # finds wrk first: fail before seeding anything
    except BenchError as exc:
        print(f"BENCHMARK NOT RUN: {exc}", file=sys.stderr)
        return 2
    log(f"machine: {info['cpus']} cpus, load {info['loadavg'][0]:.2f}; {info['wrk']}")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    root = Path(tempfile.mkdtemp(prefix="lacak-bench-"))
    cases: list[Case] = []
    found: list[Verdict] = []
    try:
        for backend in backends:
            mine = run_backend(backend, args, root)
            cases += mine
            quiet = [c for c in mine if not c.access_log]
            big = next(c for c in quiet if c.orders == args.orders)
            small = next((c for c in quiet if c.orders == args.small_orders and c is not big), None)
            found += verdicts(backend, big, small)
    except BenchError as exc:
        if cases:
            print("\n" + table(cases))
        print(f"\nBENCHMARK ABORTED: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            log(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(cases, found, args, info)
    return 0 if all(v.passed for v in found) else 1


if __name__ == "__main__":
    sys.exit(main())
