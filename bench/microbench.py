"""In-process CPU cost of the static route and of the tracking lookup, without a server or wrk.

    .venv/bin/python bench/microbench.py --backend sqlite --orders 100000
    .venv/bin/python bench/microbench.py --backend postgres --profile      # + cProfile top functions
    .venv/bin/python bench/microbench.py --work /tmp/lacak-micro            # reuse a seeded database

Drives lacak's ASGI app (`bench.static_app`: the real app plus `/bench/static`) directly with
uvicorn-shaped scopes, on uvloop, and reports µs per request: wall time and this process's CPU
time (what matters on PostgreSQL, whose backend work happens in another process). The request
mix is `bench/lookup.lua`'s: random seeded orders with their merchant's key, 10 % unknown ids.

It answers "where do the microseconds go" on a busy 2-core machine, where wrk's req/s move by
±30 % between runs but in-process CPU per request hardly moves. It leaves out what only the
server adds (socket I/O, the HTTP parser, uvicorn's per-request objects), which costs both
routes the same, so its static/lookup ratio is higher than wrk's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import uvloop

from bench import fake
from bench.harness import TRACKING, read_pairs
from bench.seed import BENCH_SECRET_KEY, seed
from bench.static_app import STATIC_PATH, with_static_route
from lacak.http.app import create_app
from lacak.http.routes import freeze_heap
from lacak.settings import Settings
from lacak.storage import migrate

PG_ADMIN_DEFAULT = os.environ.get("LACAK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
Message = dict[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
               Awaitable[None]]  # fmt: skip


# -- the database ---------------------------------------------------------------------------------


async def _pg_admin(url: str, sql: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def prepare(backend: str, orders: int, work: Path, pg_admin: str) -> str:
    """A seeded database for `backend` in `work` (reused when its pairs file is there)."""
    work.mkdir(parents=True, exist_ok=True)
    pairs = work / f"pairs-{backend}-{orders}.tsv"
    if backend == "sqlite":
        url = f"sqlite:///{work / f'lacak-{orders}.db'}"
    else:
        name = f"lacak_micro_{orders}"
        url = pg_admin.rsplit("/", 1)[0] + f"/{name}"
        exists = asyncio.run(_pg_admin(pg_admin, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))
        if not exists:
            pairs.unlink(missing_ok=True)
            asyncio.run(_pg_admin(pg_admin, f'CREATE DATABASE "{name}"'))
    if not pairs.exists():
        if backend == "sqlite":
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        print(f"seeding {orders:,} orders into {url} ...", flush=True)
        done = seed(url, fake.Plan(orders, 100), pairs.with_suffix(".tmp"))
        pairs.with_suffix(".tmp").rename(pairs)
        print(f"  {done.describe()}", flush=True)
    else:
        migrate.upgrade(url)  # other work may have added migrations since it was seeded
    return url


def settings_for(url: str, work: Path) -> Settings:
    env = {
        "LACAK_DATABASE_URL": url, "LACAK_DATA_DIR": str(work), "LACAK_SECRET_KEY": BENCH_SECRET_KEY,
        "LACAK_ACCESS_LOG": "0", "LACAK_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    return Settings.from_env(env)


# -- requests -------------------------------------------------------------------------------------


def scope_for(path: str, key: str) -> Message:
    """What uvicorn's httptools protocol hands the app for `GET path` with wrk's headers."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000), "scheme": "http",
        "root_path": "", "method": "GET", "path": path, "raw_path": path.encode(),
        "query_string": b"", "state": {},
        "headers": [(b"host", b"127.0.0.1:8080"), (b"authorization", f"Bearer {key}".encode())],
    }  # fmt: skip


def workload(pairs: list[tuple[str, str]], n: int, unknown: float, seed_: int) -> list[tuple[str, str]]:
    """(key, lookup path) as bench/lookup.lua picks them."""
    rnd = random.Random(seed_)
    out = []
    for _ in range(n):
        key, order_id = pairs[rnd.randrange(len(pairs))]
        if rnd.random() < unknown:
            order_id = f"NX{rnd.randint(100000, 999999)}-{rnd.randint(1000000000, 2000000000)}"
        out.append((key, TRACKING + order_id))
    return out


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


@dataclass
class Checked:
    """Counts what came back, so a broken app cannot look fast."""

    statuses: dict[int, int]

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            self.statuses[status] = self.statuses.get(status, 0) + 1


async def drive(app: App, work: list[tuple[str, str]], mode: str, concurrency: int) -> Checked:
    checked = Checked({})
    send = checked.send

    async def client(part: list[tuple[str, str]]) -> None:
        for key, path in part:
            await app(scope_for(STATIC_PATH if mode == "static" else path, key), _receive, send)
            await asyncio.sleep(0)  # uvicorn runs each request in its own task: one tick each

    if concurrency == 1:
        await client(work)
    else:
        await asyncio.gather(*(client(work[i::concurrency]) for i in range(concurrency)))
    return checked


@dataclass(frozen=True)
class Sample:
    mode: str
    wall_us: float
    cpu_us: float


async def timed(app: App, work: list[tuple[str, str]], mode: str, concurrency: int) -> Sample:
    wall, cpu = time.perf_counter(), time.process_time()
    checked = await drive(app, work, mode, concurrency)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if set(checked.statuses) != {200}:
        raise SystemExit(f"{mode}: unexpected statuses {checked.statuses}")
    return Sample(mode, wall / len(work) * 1e6, cpu / len(work) * 1e6)


def profile_text(prof: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


async def bench(args: argparse.Namespace, backend: str, url: str) -> None:
    app: Any = with_static_route(create_app(settings_for(url, args.work)))
    pairs = read_pairs(args.work / f"pairs-{backend}-{args.orders}.tsv")
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        freeze_heap()  # as FastRoutes does when a server reports the lifespan started
        warm = workload(pairs, 2000, args.unknown, 1)
        for mode in ("static", "lookup"):
            await drive(app, warm, mode, args.concurrency)
        samples: dict[str, list[Sample]] = {"static": [], "lookup": []}
        for r in range(args.rounds):
            work = workload(pairs, args.requests, args.unknown, 100 + r)
            for mode in ("static", "lookup"):
                samples[mode].append(await timed(app, work, mode, args.concurrency))
        report(backend, args, samples)
        if args.profile:
            work = workload(pairs, args.requests, args.unknown, 999)
            for mode in ("static", "lookup"):
                prof = cProfile.Profile()
                prof.enable()
                await drive(app, work, mode, args.concurrency)
                prof.disable()
                print(f"\n==== cProfile {backend} {mode} ({len(work)} requests) ====")
                print(profile_text(prof, args.top))


def report(backend: str, args: argparse.Namespace, samples: dict[str, list[Sample]]) -> None:
    def med(mode: str, what: str) -> float:
        return statistics.median(getattr(s, what) for s in samples[mode])

    st_cpu, lk_cpu = med("static", "cpu_us"), med("lookup", "cpu_us")
    print(f"{backend:<9} {args.orders:>9,} orders  c={args.concurrency:<3}"
          f" static {med('static', 'wall_us'):6.1f} us wall {st_cpu:6.1f} us cpu   "
          f" lookup {med('lookup', 'wall_us'):6.1f} us wall {lk_cpu:6.1f} us cpu   "
          f" extra {lk_cpu - st_cpu:6.1f} us   cpu ratio {st_cpu / lk_cpu:.3f}"
          f"   (median of {args.rounds} x {args.requests:,})", flush=True)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    p.add_argument("--orders", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=20_000, help="requests per timed run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=0,
                   help="requests in flight (default: 1 on SQLite, 16 on PostgreSQL)")  # fmt: skip
    p.add_argument("--unknown", type=float, default=0.10)
    p.add_argument("--profile", action="store_true", help="cProfile one run of each route")
    p.add_argument("--top", type=int, default=30, help="functions per cProfile table")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lacak-microbench",
                   help="where the seeded databases and pairs files live (reused)")  # fmt: skip
    p.add_argument("--pg-url", default=PG_ADMIN_DEFAULT, help="PostgreSQL admin URL")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        url = prepare(backend, args.orders, args.work, args.pg_url)
        one = argparse.Namespace(**vars(args))
        one.concurrency = args.concurrency or (1 if backend == "sqlite" else 16)
        uvloop.run(bench(one, backend, url))


if __name__ == "__main__":
    main()
