"""The embedded default: stdlib sqlite3 in WAL mode.

Reads run inline on the event loop (a primary-key read is ~20 µs; a thread hop costs
more than the read). Writes go through one connection guarded by an asyncio lock, inside
`BEGIN IMMEDIATE`, so one process never interleaves two write transactions and other
processes wait on SQLite's own lock (busy_timeout).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from lacak.errors import DatabaseUnavailable, StorageError, UniqueViolation
from lacak.timeutil import wire

log = logging.getLogger("lacak.storage")
_PLACEHOLDER = re.compile(r"\$(\d+)")
T = TypeVar("T")
Work = Callable[["SQLiteConnection"], Awaitable[T]]


@lru_cache(maxsize=512)
def adapt(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql).replace(" FOR UPDATE SKIP LOCKED", "").replace(" FOR UPDATE", "")


def _params(args: Sequence[Any]) -> Sequence[Any]:
    for a in args:  # most reads bind only ids and strings: pass those through untouched
        if isinstance(a, datetime):
            return tuple(wire(a) if isinstance(a, datetime) else a for a in args)
    return args


def _translate(exc: sqlite3.Error) -> StorageError:
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return UniqueViolation(str(exc))
    if isinstance(exc, sqlite3.OperationalError):
        return DatabaseUnavailable(str(exc))
    return StorageError(str(exc))


def _open(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    # 32 MiB of page cache per connection (default 2 MiB): hot orders stay in memory without
    # memory-mapping a database that may be far larger than the RSS budget.
    conn.execute("PRAGMA cache_size=-32768")
    # Every grouped write is a SAVEPOINT, whose statement journal keeps the first change to each
    # page: in a temp file that cost a third of a courier callback; in memory it is a copy.
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


class SQLiteConnection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _run(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self._conn.execute(adapt(sql), _params(args))
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._run(sql, args).fetchone()
        return row

    async def fetch(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self._run(sql, args).fetchall()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = self._run(sql, args).fetchone()
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> None:
        self._run(sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(adapt(sql), [_params(r) for r in rows])
        except sqlite3.Error as exc:
            raise _translate(exc) from exc


class Checkpointer:
    """Moves WAL frames into the database file from a background thread.

    PASSIVE checkpoints never wait for readers or writers, so the thread cannot stall the
    server; it only keeps the WAL from growing. Every process runs one (harmless: SQLite
    serialises checkpoints itself).
    """

    def __init__(self, path: str, every: float = 0.5) -> None:
        self.path = path
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lacak-sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=1000")
        try:
            while not self._stop.wait(self.every):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.warning("sqlite checkpoint failed", exc_info=True)
        finally:
            conn.close()


class Snapshot:
    """One read transaction shared by the reads of one event-loop tick.

    Outside a transaction every SELECT takes and drops WAL read locks (fcntl, fstat, fcntl),
    which cost a third of a tracking lookup's read. Reads opened in the same tick share a
    `BEGIN`, ended by `call_soon`: before the loop runs anything scheduled later, so before
    any request that arrived after the snapshot began. A read therefore never sees an older
    state than it would have in autocommit mode, except for writes by this process in the
    same tick, which end the snapshot as soon as they commit (`SQLiteDatabase.transaction`).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.open = False

    def begin(self) -> None:
        if not self.open:
            self.conn.execute("BEGIN")
            self.open = True
            asyncio.get_running_loop().call_soon(self.end)

    def end(self) -> None:
        if self.open:
            self.open = False
            try:
                self.conn.execute("COMMIT")  # read-only: just drops the read lock
            except sqlite3.Error:
                log.warning("sqlite read snapshot did not end cleanly", exc_info=True)
                self.conn.rollback()


class _Queued:
    """One caller's unit of work in `GroupCommit`'s queue, and where its result goes."""

    __slots__ = ("error", "future", "value", "work")

    def __init__(self, work: Work[Any], future: asyncio.Future[Any]) -> None:
        self.work = work
        self.future = future
        self.value: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """Group commit: concurrent write transactions applied together in one SQLite transaction.

    A commit, not the statements, is most of a small write transaction's cost: every page it
    dirtied goes to the WAL, and the read connection's page cache is dropped at its next read.
    Callers that queue up while the writer is busy (or in the same event-loop tick) are run by
    one task inside one `BEGIN IMMEDIATE … COMMIT`, each in its own SAVEPOINT: a unit of work
    that raises is rolled back alone and its caller gets the exception, the others go on.
    Every caller's result is handed back only after the COMMIT, so nothing is acknowledged
    before it is stored; if the COMMIT fails, every caller in the batch gets that error.
    """

    def __init__(self, db: SQLiteDatabase, limit: int = 64) -> None:
        self.db = db
        self.limit = limit  # units per transaction: bounds how long one batch holds the loop
        self._queue: list[_Queued] = []
        self._runner: asyncio.Task[None] | None = None

    async def run(self, work: Work[T]) -> T:
        loop = asyncio.get_running_loop()
        item = _Queued(work, loop.create_future())
        self._queue.append(item)
        if self._runner is None:
            # Started on the next loop iteration: whatever else is runnable now queues first.
            self._runner = loop.create_task(self._drain())
        value: T = await item.future
        return value

    async def _drain(self) -> None:
        batch: list[_Queued] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.limit], self._queue[self.limit :]
                await self._apply(batch)
        except BaseException as exc:  # cancelled (shutdown): nobody may wait forever
            batch, self._queue = batch + self._queue, []
            _fail(batch, exc)
            raise
        finally:
            self._runner = None

    async def _apply(self, batch: list[_Queued]) -> None:
        db = self.db
        assert db._writer is not None, "database not open"
        conn = db._writer
        raw = conn._conn
        async with db._lock:
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except Exception as exc:  # e.g. another process held the lock past busy_timeout
                _fail(batch, exc)
                return
            try:
                for item in batch:
                    if item.future.done():  # its caller was cancelled while it waited
                        continue
                    conn._run("SAVEPOINT lacak_group", ())
                    try:
                        item.value = await item.work(conn)
                    except Exception as exc:
                        item.error = exc
                        if not raw.in_transaction:  # SQLite rolled the whole transaction back
                            raise
                        conn._run("ROLLBACK TO lacak_group", ())
                    conn._run("RELEASE lacak_group", ())
                await conn.execute("COMMIT")
            except BaseException as exc:
                if raw.in_transaction:
                    try:
                        raw.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.warning("sqlite group rollback failed", exc_info=True)
                _fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            if db._snapshot is not None:  # reads after this commit must see it
                db._snapshot.end()
        for item in batch:
            if item.future.done():
                continue
            if item.error is not None:
                item.future.set_exception(item.error)
            else:
                item.future.set_result(item.value)


def _fail(batch: list[_Queued], exc: BaseException) -> None:
    """Nothing of the batch was stored: every caller still waiting gets the error."""
    for item in batch:
        if not item.future.done():
            if isinstance(exc, Exception):
                item.future.set_exception(exc)
            else:
                item.future.cancel()


class PlainReader:
    def __init__(self, db: SQLiteDatabase, sql: str) -> None:
        self.db = db
        self.sql = sql

    async def fetchrow(self, *args: Any) -> sqlite3.Row | None:
        return await self.db.fetchrow(self.sql, *args)


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._read: sqlite3.Connection | None = None
        self._snapshot: Snapshot | None = None
        self._writer: SQLiteConnection | None = None
        self._raw: list[sqlite3.Connection] = []
        self._lock = asyncio.Lock()
        self._checkpointer: Checkpointer | None = None
        self._group = GroupCommit(self)

    async def grouped(self, work: Work[T]) -> T:
        """`work(tx)` in a write transaction that concurrent callers share (`GroupCommit`).

        `work` must only use `tx` (not open another transaction: the writer is held) and should
        leave side effects outside the database until this returns, i.e. after the commit.
        """
        return await self._group.run(work)

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            read, write = _open(self.path), _open(self.path)
            # SQLite's automatic checkpoint runs inside whichever COMMIT crosses the threshold,
            # on the event loop, and stalls every request for milliseconds; a thread does it.
            write.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        self._raw = [read, write]
        self._read, self._snapshot = read, Snapshot(read)
        self._writer = SQLiteConnection(write)
        self._checkpointer = Checkpointer(self.path)
        self._checkpointer.start()

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._snapshot is not None:
            self._snapshot.end()
        for conn in self._raw:
            conn.close()
        self._raw = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteConnection]:
        assert self._writer is not None, "database not open"
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")
            if self._snapshot is not None:  # reads after this commit must see it
                self._snapshot.end()

    def _cursor(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        """A read on the shared connection, inside this tick's snapshot."""
        assert self._read is not None and self._snapshot is not None, "database not open"
        try:
            self._snapshot.begin()
            return self._read.execute(adapt(sql), _params(args))
        except sqlite3.Error as exc:
            self._snapshot.end()
            raise _translate(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._cursor(sql, args).fetchone()
        return row

    async def fetch(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self._cursor(sql, args).fetchall()

    def point_reader(self, sql: str, batch_sql: str) -> PlainReader:
        # Reads run inline here: there is no round trip to share, so no batching.
        return PlainReader(self, sql)

    async def ping(self) -> None:
        await self.fetchrow("SELECT 1")
