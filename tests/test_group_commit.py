"""SQLite group commit (`SQLiteDatabase.grouped`): concurrent write transactions share one
commit, each in its own savepoint; a failing one rolls back alone; nobody hears back before
the commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lacak.errors import UniqueViolation
from lacak.storage.sqlite import SQLiteConnection, SQLiteDatabase

pytestmark = pytest.mark.anyio


@pytest.fixture()
async def db(tmp_path: Path) -> AsyncIterator[SQLiteDatabase]:
    path = tmp_path / "group.db"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    setup.close()
    database = SQLiteDatabase(str(path))
    await database.open()
    yield database
    await database.close()


def committed(db: SQLiteDatabase) -> list[tuple[int, str]]:
    """What another connection sees: only committed rows."""
    other = sqlite3.connect(db.path)
    try:
        return [(int(k), str(v)) for k, v in other.execute("SELECT k, v FROM t ORDER BY k")]
    finally:
        other.close()


async def test_concurrent_callers_share_one_transaction(db: SQLiteDatabase) -> None:
    commits = 0
    assert db._writer is not None

    def count(sql: str) -> None:
        nonlocal commits
        commits += sql == "COMMIT"

    db._writer._conn.set_trace_callback(count)

    async def insert(k: int) -> int:
        async def work(tx: SQLiteConnection) -> int:
            await tx.execute("INSERT INTO t (k, v) VALUES ($1, $2)", k, f"v{k}")
            return k * 10

        return await db.grouped(work)

    results = await asyncio.gather(*(insert(k) for k in range(1, 21)))
    assert results == [k * 10 for k in range(1, 21)]
    assert commits == 1
    assert committed(db) == [(k, f"v{k}") for k in range(1, 21)]


async def test_a_failing_unit_rolls_back_alone(db: SQLiteDatabase) -> None:
    async def good(tx: SQLiteConnection, k: int) -> str:
        await tx.execute("INSERT INTO t (k, v) VALUES ($1, 'ok')", k)
        return "ok"

    async def bad(tx: SQLiteConnection) -> str:
        await tx.execute("INSERT INTO t (k, v) VALUES (100, 'half')")  # written, then undone
        await tx.execute("INSERT INTO t (k, v) VALUES (1, 'clash')")  # 1 is taken by the first unit
        return "never"

    async def boom(tx: SQLiteConnection) -> str:
        await tx.execute("INSERT INTO t (k, v) VALUES (101, 'half')")
        raise RuntimeError("boom")

    outcomes = await asyncio.gather(
        db.grouped(lambda tx: good(tx, 1)),
        db.grouped(bad),
        db.grouped(lambda tx: good(tx, 2)),
        db.grouped(boom),
        db.grouped(lambda tx: good(tx, 3)),
        return_exceptions=True,
    )
    assert outcomes[0] == outcomes[2] == outcomes[4] == "ok"
    assert isinstance(outcomes[1], UniqueViolation)
    assert isinstance(outcomes[3], RuntimeError)
    assert committed(db) == [(1, "ok"), (2, "ok"), (3, "ok")]


async def test_results_come_back_only_after_the_commit(db: SQLiteDatabase) -> None:
    seen: list[list[tuple[int, str]]] = []

    async def work(tx: SQLiteConnection) -> None:
        await tx.execute("INSERT INTO t (k, v) VALUES (7, 'x')")

    async def caller() -> None:
        await db.grouped(work)
        seen.append(committed(db))  # from another connection: the row is already durable

    await caller()
    assert seen == [[(7, "x")]]
    # The shared read connection sees it too (its snapshot ended at the commit).
    row = await db.fetchrow("SELECT v FROM t WHERE k = 7")
    assert row is not None and row[0] == "x"


async def test_grouped_and_plain_transactions_interleave(db: SQLiteDatabase) -> None:
    async def plain(k: int) -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t (k, v) VALUES ($1, 'plain')", k)

    async def grouped(k: int) -> None:
        async def work(tx: SQLiteConnection) -> None:
            await tx.execute("INSERT INTO t (k, v) VALUES ($1, 'grouped')", k)

        await db.grouped(work)

    await asyncio.gather(*(plain(k) if k % 2 else grouped(k) for k in range(1, 11)))
    assert committed(db) == [(k, "plain" if k % 2 else "grouped") for k in range(1, 11)]


async def test_a_cancelled_caller_is_skipped(db: SQLiteDatabase) -> None:
    async def work(tx: SQLiteConnection) -> None:
        await tx.execute("INSERT INTO t (k, v) VALUES (5, 'cancelled')")

    async def keep(tx: SQLiteConnection) -> None:
        await tx.execute("INSERT INTO t (k, v) VALUES (6, 'kept')")

    doomed = asyncio.ensure_future(db.grouped(work))
    kept = asyncio.ensure_future(db.grouped(keep))
    await asyncio.sleep(0)  # both queued; the runner has not started yet
    doomed.cancel()
    await kept
    assert doomed.cancelled()
    assert committed(db) == [(6, "kept")]
