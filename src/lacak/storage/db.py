"""The seam between the store and a database driver.

The store writes PostgreSQL-style SQL (`$1` placeholders, `FOR UPDATE`, `RETURNING`); each
driver module adapts it and translates its own exceptions into `lacak.errors` in one place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class Row(Protocol):
    def __getitem__(self, key: str | int, /) -> Any: ...

    def keys(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class Connection(Protocol):
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class PointReader(Protocol):
    """One hot single-row query, bound once (see `Database.point_reader`)."""

    async def fetchrow(self, *args: Any) -> Sequence[Any] | None: ...


class Database(Protocol):
    dialect: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A read-write transaction; commits on exit, rolls back on an exception."""
        ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """One read outside any transaction (the hot path)."""
        ...

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...

    async def ping(self) -> None: ...

    def point_reader(self, sql: str, batch_sql: str) -> PointReader:
        """A reader of `sql`; a driver that can send concurrent calls together (PostgreSQL)
        uses `batch_sql` (arrays of the arguments, plus the position column) for them."""
        ...


def connect(url: str, *, pool_size: int = 10) -> Database:
    if url.startswith("sqlite:///"):
        from lacak.storage.sqlite import SQLiteDatabase

        return SQLiteDatabase(url.removeprefix("sqlite:///"))
    from lacak.storage.postgres import PostgresDatabase

    return PostgresDatabase(url, pool_size=pool_size)
