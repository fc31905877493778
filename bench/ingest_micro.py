"""In-process CPU cost of a GoSend courier callback, without a server or wrk.

    .venv/bin/python bench/ingest_micro.py                          # SQLite, 100,000 orders
    .venv/bin/python bench/ingest_micro.py --backend postgres
    .venv/bin/python bench/ingest_micro.py --profile                # + cProfile top functions

Seeds a fresh database like bench/ingest.py (bench/seed.py, then bench/ingest_seed.py's GoSend
orders waiting for a driver), then drives lacak's ASGI app directly on uvloop with
`--concurrency` clients sending `POST /couriers/gosend/callback`, the stream of bench/ingest.lua
(waves of orders walked through confirmed … delivered, 5 % of them with one event twice, 5 % with
`picked` overtaking `out_for_pickup`). Reports µs of this process's CPU and of wall time per
callback: on a busy 2-core machine wrk's callbacks/s move a lot, in-process CPU hardly does. What
only the real server adds (sockets, HTTP parsing) is left out, so the numbers are lower than
bench/ingest.py's `us server CPU each`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import uvloop

from bench import fake
from bench.ingest_seed import CALLBACK_TOKEN, add_fixtures
from bench.seed import BENCH_SECRET_KEY, seed
from lacak.http.app import create_app
from lacak.settings import Settings
from lacak.storage import migrate

PG_ADMIN_DEFAULT = os.environ.get("LACAK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PATH = "/couriers/gosend/callback"
Message = dict[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
               Awaitable[None]]  # fmt: skip

# bench/ingest.lua's STEPS and stories.
STEPS = (
    ("confirmed", "CONFIRMED", 0, False),
    ("allocated", "DRIVER_FOUND", 3, True),
    ("out_for_pickup", "DRIVER_OTW_PICKUP", 4, True),
    ("picked", "ITEM_PICKED", 12, True),
    ("out_for_delivery", "DRIVER_OTW_DROP", 13, True),
    ("delivered", "COMPLETED", 38, True),
)
IN_ORDER, REPEATED, SWAPPED = (1, 2, 3, 4, 5, 6), (1, 2, 3, 3, 4, 5, 6), (1, 2, 4, 3, 5, 6)
ROUNDS = 7
NAMES = ("Anton Lucarus", "Budi Santoso", "Siti Rahayu", "Agus Pratama", "Dewi Kusuma", "Rizky Saputra",
         "Joko Wibowo", "Eko Nugroho")  # fmt: skip


def events_of(n: int) -> tuple[int, ...]:
    h = n * 2654435761 % 1000 / 1000
    return REPEATED if h < 0.05 else SWAPPED if h < 0.10 else IN_ORDER


def booking_event(awb: str, n: int, step: int, base_ms: int) -> bytes:
    status, kind, minutes, known = STEPS[step - 1]
    at = base_ms + n * 1000 + minutes * 60000
    body = {
        "@type": "booking_event", "entity_id": awb, "type": kind, "event_date": at,
        "event_id": f"{n:08x}-{step:04x}-4000-8000-{n * 8 + step:012x}", "partner_id": "601",
        "destination_type": "market_place", "booking_id": awb, "status": status, "booking_status": status,
        "booking_type": "instant", "driver_name": NAMES[n % len(NAMES)] if known else "",
        "driver_phone": f"62811{n % 10000000:07d}" if known else "", "driver_phone2": "",
        "driver_phone3": "", "driver_photo_url": f"https://gosend.example/d/{510000 + n % 5000}.jpg"
        if known else "", "total_distance_in_kms": round(1 + n % 90 / 10, 2),
        "price": float(12000 + n % 40 * 500), "receiver_name": "Ibu Wulan" if status == "delivered" else "",
        "live_tracking_url": f"http://gjk.io/{n:x}", "cancelled_by": None, "cancellation_reason": None,
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


def stream(awbs: list[str], first: int, count: int, wave: int, base_ms: int) -> Iterator[bytes]:
    """ingest.lua's walk: every order of a wave gets its first event, then its second, …"""
    for start in range(first, first + count, wave):
        lines = range(start, min(start + wave, first + count))
        for r in range(ROUNDS):
            for n in lines:
                events = events_of(n)
                if r < len(events):
                    yield booking_event(awbs[n], n, events[r], base_ms)


def scope_for(body: bytes) -> Message:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000), "scheme": "http",
        "root_path": "", "method": "POST", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "state": {}, "headers": [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
                                 (b"content-length", str(len(body)).encode()),
                                 (b"authorization", CALLBACK_TOKEN.encode())],
    }  # fmt: skip


async def drive(app: App, bodies: list[bytes], concurrency: int) -> tuple[Counter[int], list[bytes]]:
    statuses: Counter[int] = Counter()
    replies: list[bytes] = []
    work = iter(bodies)

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1
        elif message.get("body"):
            replies.append(message["body"])

    async def client() -> None:
        for body in work:  # shared: each client takes the next callback, as wrk's connections do

            async def receive(body: bytes = body) -> Message:
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope_for(body), receive, send)
            await asyncio.sleep(0)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return statuses, replies


def outcomes(replies: list[bytes]) -> Counter[str]:
    out: Counter[str] = Counter()
    for r in replies:
        out.update(json.loads(r)["result"]["outcomes"])
    return out


async def _pg(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def bench(args: argparse.Namespace, url: str, work: Path, awbs: list[str], base_ms: int) -> None:
    env = {
        "LACAK_DATABASE_URL": url, "LACAK_DATA_DIR": str(work), "LACAK_SECRET_KEY": BENCH_SECRET_KEY,
        "LACAK_ACCESS_LOG": "0", "LACAK_LOG_LEVEL": "ERROR", "LACAK_PROVIDER_GOSEND": "gosend",
        "LACAK_GOSEND_CALLBACK_TOKEN": CALLBACK_TOKEN, "LACAK_RUN_TASKS": "0",
    }  # fmt: skip
    app: Any = create_app(Settings.from_env(env))
    per_round = args.requests * 10 // 62 + args.wave  # orders a round uses (6.2 events each)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        cursor = 0

        def take(n_orders: int) -> list[bytes]:
            nonlocal cursor
            bodies = list(stream(awbs, cursor, n_orders, args.wave, base_ms))
            cursor += n_orders
            return bodies

        await drive(app, take(args.wave * 2), args.concurrency)  # warm-up
        cpu_us, wall_us = [], []
        seen: Counter[str] = Counter()
        for _ in range(args.rounds):
            bodies = take(per_round)[: args.requests]
            wall, cpu = time.perf_counter(), time.process_time()
            statuses, replies = await drive(app, bodies, args.concurrency)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if set(statuses) != {200}:
                raise SystemExit(f"unexpected statuses {dict(statuses)}: {replies[:3]}")
            seen += outcomes(replies)
            cpu_us.append(cpu / len(bodies) * 1e6)
            wall_us.append(wall / len(bodies) * 1e6)
            print(f"  round: {len(bodies):,} callbacks, {cpu_us[-1]:.0f} us CPU, {wall_us[-1]:.0f} us wall"
                  f" each ({1e6 / wall_us[-1]:,.0f}/s)", flush=True)  # fmt: skip
        print(f"{args.backend}: median {statistics.median(cpu_us):.0f} us CPU,"
              f" {statistics.median(wall_us):.0f} us wall per callback"
              f" ({1e6 / statistics.median(wall_us):,.0f}/s in process); outcomes {dict(seen)}")  # fmt: skip
        if args.profile:
            bodies = take(per_round)[: args.requests]
            prof = cProfile.Profile()
            prof.enable()
            await drive(app, bodies, args.concurrency)
            prof.disable()
            out = io.StringIO()
            stats = pstats.Stats(prof, stream=out).strip_dirs()
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(args.top)
            print(out.getvalue())


def prepare(args: argparse.Namespace, url: str, work: Path, callbacks: int) -> tuple[list[str], int]:
    """Seed the database at `url`, or copy a cached SQLite one; the AWBs and their base time."""
    cached = (
        args.cache / f"ingest-{args.orders}-{callbacks}" if args.cache and args.backend == "sqlite" else None
    )
    if cached is not None and (cached / "done").exists():
        shutil.copy(cached / "lacak.db", work / "lacak.db")
        migrate.upgrade(url)  # others may have added migrations since
        return (cached / "awbs.txt").read_text().split(), int((cached / "done").read_text())
    plan = fake.Plan(args.orders, 100)
    seed(url, plan, work / "pairs.tsv")
    fx = add_fixtures(url, plan, callbacks, 0, work)
    if cached is not None:
        cached.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(work / "lacak.db")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        shutil.copy(work / "lacak.db", cached / "lacak.db")
        shutil.copy(fx.awbs, cached / "awbs.txt")
        (cached / "done").write_text(str(fx.first_created_ms))
    return fx.awbs.read_text().split(), fx.first_created_ms


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--orders", type=int, default=100_000, help="orders seeded for lookups (background)")
    p.add_argument("--requests", type=int, default=10_000, help="callbacks per measured round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--wave", type=int, default=500)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--pg-url", default=PG_ADMIN_DEFAULT)
    p.add_argument("--cache", type=Path, help="SQLite: keep the seeded database here and copy it per run")
    args = p.parse_args(argv)
    per_round = args.requests * 10 // 62 + args.wave
    callbacks = args.wave * 3 + per_round * (args.rounds + 1)
    with tempfile.TemporaryDirectory(prefix="lacak-ingest-micro-") as tmp:
        work = Path(tmp)
        pg_name = f"lacak_ingest_micro_{os.getpid()}"
        if args.backend == "sqlite":
            url = f"sqlite:///{work / 'lacak.db'}"
        else:
            url = args.pg_url.rsplit("/", 1)[0] + f"/{pg_name}"
            asyncio.run(_pg(args.pg_url, f'CREATE DATABASE "{pg_name}"'))
        try:
            awbs, base_ms = prepare(args, url, work, callbacks)
            uvloop.run(bench(args, url, work, awbs, base_ms))
        finally:
            if args.backend == "postgres":
                asyncio.run(_pg(args.pg_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
