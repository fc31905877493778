"""SQL for the live page: an order by its token, everything its snapshot needs, and a batched
look at the orders that open pages are watching."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from lacak.orders.models import HistoryEvent, Order
from lacak.positions.store import Point, live
from lacak.storage.db import Database
from lacak.storage.rows import ORDER_COLUMNS, as_dt, order_from_row
from lacak.storage.store import Store

_N = len(ORDER_COLUMNS.split(","))
_BY_TOKEN = f"SELECT {ORDER_COLUMNS}, driver_plate FROM orders WHERE live_token = $1"
_BY_PK = f"SELECT {ORDER_COLUMNS}, driver_plate FROM orders WHERE id = $1"
_CHUNK = 100  # SQLite: a fixed number of placeholders per look, so the statement is cached once
_WATCH_PG = (
    "SELECT o.id, o.seq, p.lat, p.long, p.at FROM orders o"
    " LEFT JOIN live_positions p ON p.order_pk = o.id WHERE o.id = ANY($1::bigint[])"
)
_WATCH_SQLITE = (
    "SELECT o.id, o.seq, p.lat, p.long, p.at FROM orders o"
    " LEFT JOIN live_positions p ON p.order_pk = o.id WHERE o.id IN ("
    + ", ".join(f"${i}" for i in range(1, _CHUNK + 1))
    + ")"
)


class Found(msgspec.Struct, frozen=True):
    order: Order
    plate: str | None


class Loaded(msgspec.Struct, frozen=True):
    order: Order
    plate: str | None
    events: list[HistoryEvent]
    position: Point | None


class Seen(msgspec.Struct, frozen=True):
    """A watched order as one look found it: its `seq`, and its live position's time."""

    seq: int
    position: Point | None


class LiveStore:
    def __init__(self, db: Database, store: Store) -> None:
        self.db = db
        self.store = store

    async def by_token(self, token: str) -> Found | None:
        return await self._found(_BY_TOKEN, token)

    async def by_pk(self, pk: int) -> Found | None:
        return await self._found(_BY_PK, pk)

    async def _found(self, sql: str, arg: object) -> Found | None:
        row = await self.db.fetchrow(sql, arg)
        if row is None:
            return None
        values = tuple(row)
        return Found(order_from_row(values[:_N]), values[_N])

    async def load(self, pk: int, found: Found | None = None) -> Loaded | None:
        """Everything the snapshot needs; `found` is the order already read by its token."""
        found = found or await self.by_pk(pk)
        if found is None:
            return None
        events = await self.store.history(pk)
        return Loaded(found.order, found.plate, events, await live(self.db, pk))

    async def look(self, pks: Sequence[int]) -> dict[int, Seen]:
        """`seq` and live position of each order, in one query (a few on SQLite)."""
        if not pks:
            return {}
        if self.db.dialect == "postgresql":
            rows = list(await self.db.fetch(_WATCH_PG, list(pks)))
        else:
            rows = []
            for i in range(0, len(pks), _CHUNK):
                part = list(pks[i : i + _CHUNK])
                part += [part[-1]] * (_CHUNK - len(part))
                rows.extend(await self.db.fetch(_WATCH_SQLITE, *part))
        return {r[0]: Seen(r[1], _point(r[2], r[3], r[4])) for r in rows}


def _point(lat: float | None, long: float | None, at: datetime | str | None) -> Point | None:
    when = as_dt(at)
    if lat is None or long is None or when is None:
        return None
    return Point(lat, long, when)
