"""Bulk seeding straight into the database (not through the HTTP API, which would take hours).

    python -m bench.seed --url sqlite:///tmp/b/lacak.db --orders 1000000 --pairs /tmp/b/pairs.tsv

The schema comes from lacak's own migrations; rows come from `bench.fake`. Orders' secondary
indexes (and, on PostgreSQL, their foreign keys) are dropped for the load and rebuilt after,
which is several times faster than maintaining them row by row; the rebuilt foreign keys are
validated by PostgreSQL, and on SQLite they hold by construction (every `merchant_id` and
`payment_pk` is generated from the rows written before them).

Not written: `order_events` (the one `created` history row per order that the API writes) and
`deliveries`. The tracking lookup reads neither, so they would only cost seeding time; the
benchmark's numbers do not depend on them.

The pairs file has one `key<TAB>order_id` line per order: what the load generator picks from.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg

from bench import fake
from lacak.crypto import SecretBox
from lacak.storage import migrate

# The benchmark's own fixed secret: seeding seals the keys with it, the server opens them.
BENCH_SECRET_KEY = "5e" * 32
_CHUNK = 20_000


@dataclass(frozen=True)
class Seeded:
    orders: int
    payments: int
    merchants: int
    seconds: float
    pairs: Path

    def describe(self) -> str:
        rate = self.orders / self.seconds if self.seconds else 0.0
        return (f"{self.orders:,} orders, {self.payments:,} payments, {self.merchants} merchants"
                f" in {self.seconds:.1f} s ({rate:,.0f} orders/s)")  # fmt: skip


def _with_pairs(rows: Iterable[fake.Row], out: IO[str], merchants: list[fake.Merchant]) -> Iterator[fake.Row]:
    """Pass rows through, writing each order's `key<TAB>order_id` on the way."""
    key_of = {m.id: m.key for m in merchants}
    for row in rows:
        out.write(f"{key_of[row[1]]}\t{row[2]}\n")
        yield row


def _chunks(rows: Iterable[fake.Row], size: int = _CHUNK) -> Iterator[list[fake.Row]]:
    chunk: list[fake.Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- SQLite -------------------------------------------------------------------------------------


def _sqlite_insert(conn: sqlite3.Connection, table: str, cols: tuple[str, ...],
                   rows: Iterable[fake.Row]) -> None:  # fmt: skip
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    for chunk in _chunks(rows):
        conn.executemany(sql, chunk)


def _sqlite_drop_indexes(conn: sqlite3.Connection, table: str) -> list[str]:
    found = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (table,),
    ).fetchall()
    for name, _ in found:
        conn.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in found]


def _optional(columns: set[str]) -> tuple[str, ...]:
    return tuple(c for c in fake.OPTIONAL_ORDER_COLS if c in columns)


def seed_sqlite(path: Path, plan: fake.Plan, pairs: Path) -> Seeded:
    started = time.perf_counter()
    migrate.upgrade(f"sqlite:///{path}")
    box = SecretBox(bytes.fromhex(BENCH_SECRET_KEY))
    ms, templates, stamp = fake.merchants(plan), fake.trips(plan.seed), fake.wire_text
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Bulk-load settings for this connection only: no journal, no fsync, a big cache.
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-262144",
                       "temp_store=MEMORY", "locking_mode=EXCLUSIVE"):  # fmt: skip
            conn.execute(f"PRAGMA {pragma}")
        optional = _optional({r[1] for r in conn.execute("PRAGMA table_info(orders)")})
        indexes = _sqlite_drop_indexes(conn, "orders")
        conn.execute("BEGIN")
        _sqlite_insert(conn, "merchants", fake.MERCHANT_COLS, fake.merchant_rows(plan, ms, stamp))
        _sqlite_insert(conn, "api_keys", fake.KEY_COLS, fake.key_rows(ms, box, stamp))
        _sqlite_insert(conn, "payments", fake.PAYMENT_COLS, fake.payment_rows(plan, templates, stamp))
        with pairs.open("w") as out:
            rows = _with_pairs(fake.order_rows(plan, ms, templates, stamp, optional), out, ms)
            _sqlite_insert(conn, "orders", (*fake.ORDER_COLS, *optional), rows)
        conn.execute("COMMIT")
        for sql in indexes:
            conn.execute(sql)
    finally:
        conn.close()
    return Seeded(plan.orders, plan.payment_count(), plan.merchants,
                  time.perf_counter() - started, pairs)  # fmt: skip


# -- PostgreSQL ---------------------------------------------------------------------------------


async def _pg_drop_orders_extras(conn: asyncpg.Connection) -> list[str]:
    """Drop orders' secondary indexes and foreign keys; return the DDL that puts them back."""
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        " AND tablename = 'orders' AND indexname <> 'orders_pkey'"
    )
    fks = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid = 'orders'::regclass AND contype = 'f'"
    )
    for fk in fks:
        await conn.execute(f'ALTER TABLE orders DROP CONSTRAINT "{fk["conname"]}"')
    for ix in indexes:
        await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
    return [ix["indexdef"] for ix in indexes] + [
        f'ALTER TABLE orders ADD CONSTRAINT "{fk["conname"]}" {fk["def"]}' for fk in fks
    ]


async def _pg_copy(conn: asyncpg.Connection, table: str, cols: tuple[str, ...],
                   rows: Iterable[fake.Row]) -> None:  # fmt: skip
    await conn.copy_records_to_table(table, records=rows, columns=list(cols))


async def _pg_finish(conn: asyncpg.Connection) -> None:
    for table in ("merchants", "api_keys", "payments", "orders"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" (SELECT coalesce(max(id), 1) FROM {table}))"
        )
    # A steady-state database: statistics gathered and hint bits set (otherwise the first
    # read of each freshly loaded row dirties its page during the measurement), WAL flushed.
    await conn.execute("VACUUM (FREEZE, ANALYZE)")
    await conn.execute("CHECKPOINT")


async def _seed_postgres(url: str, plan: fake.Plan, pairs: Path) -> None:
    box = SecretBox(bytes.fromhex(BENCH_SECRET_KEY))
    ms, templates, stamp = fake.merchants(plan), fake.trips(plan.seed), fake.as_datetime
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'orders'"
        )
        optional = _optional({r["column_name"] for r in columns})
        async with conn.transaction():
            restore = await _pg_drop_orders_extras(conn)
            await _pg_copy(conn, "merchants", fake.MERCHANT_COLS, fake.merchant_rows(plan, ms, stamp))
            await _pg_copy(conn, "api_keys", fake.KEY_COLS, fake.key_rows(ms, box, stamp))
            await _pg_copy(conn, "payments", fake.PAYMENT_COLS,
                           fake.payment_rows(plan, templates, stamp))  # fmt: skip
            with pairs.open("w") as out:
                rows = _with_pairs(fake.order_rows(plan, ms, templates, stamp, optional), out, ms)
                await _pg_copy(conn, "orders", (*fake.ORDER_COLS, *optional), rows)
            for ddl in restore:
                await conn.execute(ddl)
        await _pg_finish(conn)
    finally:
        await conn.close()


def seed_postgres(url: str, plan: fake.Plan, pairs: Path) -> Seeded:
    started = time.perf_counter()
    migrate.upgrade(url)  # runs its own event loop: must not be called from inside one
    asyncio.run(_seed_postgres(url, plan, pairs))
    return Seeded(plan.orders, plan.payment_count(), plan.merchants,
                  time.perf_counter() - started, pairs)  # fmt: skip


def seed(url: str, plan: fake.Plan, pairs: Path) -> Seeded:
    if url.startswith("sqlite:///"):
        return seed_sqlite(Path(url.removeprefix("sqlite:///")), plan, pairs)
    return seed_postgres(url, plan, pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description="Seed a fresh lacak database for the benchmark.")
    parser.add_argument("--url", required=True, help="sqlite:///path or postgresql://... (empty)")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--merchants", type=int, default=100)
    parser.add_argument("--pairs", type=Path, required=True, help="where to write key<TAB>order_id")
    args = parser.parse_args()
    done = seed(args.url, fake.Plan(args.orders, args.merchants), args.pairs)
    print(f"seeded {done.describe()}; pairs in {done.pairs}")
    print(f"server secret: LACAK_SECRET_KEY={BENCH_SECRET_KEY}")


if __name__ == "__main__":
    main()
