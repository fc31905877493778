"""PostgreSQL through asyncpg: plain SQL and one pool per process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from lacak.errors import DatabaseUnavailable, StorageError, UniqueViolation

_UNAVAILABLE = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
)


def _translate(exc: Exception) -> StorageError:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return UniqueViolation(str(exc))
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(str(exc))
    return StorageError(str(exc))


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release `RESET ALL; UNLISTEN *; …` round trip.

    lacak keeps no session state (no SET, LISTEN, advisory locks or cursors outlive a call),
    and that extra query cost more than the tracking lookup itself. asyncpg still rolls back
    a transaction left open on release.
    """


class PostgresConnection:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._conn.fetchrow(sql, *args)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self._conn.fetch(sql, *args)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc
        return rows

    async def fetchval(self, sql: str, *args: Any) -> Any:
        try:
            return await self._conn.fetchval(sql, *args)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            await self._conn.execute(sql, *args)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(sql, rows)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc


Values = tuple[Any, ...]


class Coalesced:
    """Concurrent single-row reads of one query, sent as one query per round trip.

    A pool round trip costs the server ~150 µs of CPU (acquire, protocol, release) and the
    backend a plan execution; the tracking lookup is little more than that. When a read
    arrives while another is in flight, it waits for the next round trip instead, and all
    reads that waited go together in `batch_sql`: the same query over arrays of the arguments
    (`unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS k(..., i)`), whose first column is
    `k.i`, the 1-based position of the read in the batch. Under load, batches grow with the
    concurrency and each read costs a fraction of a round trip; alone, a read is one plain
    query as before. At most one query is in flight per `Coalesced`.
    """

    def __init__(self, db: PostgresDatabase, sql: str, batch_sql: str, limit: int = 256) -> None:
        self.db = db
        self.sql = sql
        self.batch_sql = batch_sql
        self.limit = limit
        self._pending: list[tuple[Values, asyncio.Future[Values | None]]] = []
        self._busy = False

    async def fetchrow(self, *args: Any) -> Values | None:
        """The row's values (not a Record: batched rows carry the extra position column)."""
        if self._busy:
            waiter: asyncio.Future[Values | None] = asyncio.get_running_loop().create_future()
            self._pending.append((args, waiter))
            return await waiter
        self._busy = True
        try:
            row = await self.db.fetchrow(self.sql, *args)
        finally:
            self._next()
        return None if row is None else tuple(row)

    def _next(self) -> None:
        if self._pending:  # stay busy: the reads that queued meanwhile go as the next batch
            asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.limit], self._pending[self.limit :]
                await self._run(batch)
        finally:
            self._busy = False

    async def _run(self, batch: list[tuple[Values, asyncio.Future[Values | None]]]) -> None:
        columns = [list(column) for column in zip(*(args for args, _ in batch), strict=True)]
        try:
            rows = await self.db.fetch(self.batch_sql, *columns)
        except Exception as exc:  # every waiter gets its own copy of the failure
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(type(exc)(*exc.args) if isinstance(exc, StorageError) else exc)
            return
        found = {row[0]: tuple(row)[1:] for row in rows}
        for i, (_, waiter) in enumerate(batch, 1):
            if not waiter.done():  # a cancelled request no longer waits
                waiter.set_result(found.get(i))


class PostgresDatabase:
    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url.replace("postgres://", "postgresql://", 1)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._coalesced: dict[str, Coalesced] = {}

    def point_reader(self, sql: str, batch_sql: str) -> Coalesced:
        """The batching reader of one hot query (see `Coalesced`), made on first use."""
        found = self._coalesced.get(sql)
        if found is None:
            found = self._coalesced[sql] = Coalesced(self, sql, batch_sql)
        return found

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, command_timeout=30, reset=_no_reset
            )
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseUnavailable("database not open")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        try:
            async with self._require_pool().acquire() as conn, conn.transaction():
                yield PostgresConnection(conn)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._require_pool().fetchrow(sql, *args)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self._require_pool().fetch(sql, *args)
        except (asyncpg.PostgresError, *_UNAVAILABLE) as exc:
            raise _translate(exc) from exc
        return rows

    async def ping(self) -> None:
        await self.fetchrow("SELECT 1")
