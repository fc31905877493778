"""SQL for positions. High-rate writes: one batch is one transaction, and the trail is pruned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from lacak.storage.db import Connection, Database
from lacak.storage.rows import as_dt

TRAIL_LIMIT = 500  # points kept per order


class Point(msgspec.Struct, frozen=True):
    lat: float
    long: float
    at: datetime
    accuracy: float | None = None


async def add(tx: Connection, order_pk: int, points: Sequence[Point], source: str) -> None:
    """Append points to the order's trail and move its live position to the newest one."""
    if not points:
        return
    await tx.executemany(
        "INSERT INTO positions (order_pk, lat, long, accuracy, at, source) VALUES ($1, $2, $3, $4, $5, $6)",
        [(order_pk, p.lat, p.long, p.accuracy, p.at, source) for p in points],
    )
    newest = max(points, key=lambda p: p.at)
    await tx.execute(
        "INSERT INTO live_positions (order_pk, lat, long, at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (order_pk) DO UPDATE SET lat = excluded.lat, long = excluded.long, at = excluded.at"
        " WHERE live_positions.at <= excluded.at",
        order_pk,
        newest.lat,
        newest.long,
        newest.at,
    )


async def prune(tx: Connection, order_pk: int, keep: int = TRAIL_LIMIT) -> None:
    cutoff = await tx.fetchval(
        "SELECT id FROM positions WHERE order_pk = $1 ORDER BY id DESC LIMIT 1 OFFSET $2", order_pk, keep
    )
    if cutoff is not None:
        await tx.execute("DELETE FROM positions WHERE order_pk = $1 AND id <= $2", order_pk, cutoff)


async def live(db: Database, order_pk: int) -> Point | None:
    row = await db.fetchrow("SELECT lat, long, at FROM live_positions WHERE order_pk = $1", order_pk)
    if row is None:
        return None
    at = as_dt(row[2])
    assert at is not None
    return Point(row[0], row[1], at)


async def trail(db: Database, order_pk: int, limit: int = TRAIL_LIMIT) -> list[Point]:
    rows = await db.fetch(
        "SELECT lat, long, at, accuracy FROM positions WHERE order_pk = $1 ORDER BY id DESC LIMIT $2",
        order_pk,
        limit,
    )
    points = []
    for lat, long, at, accuracy in reversed(rows):
        when = as_dt(at)
        assert when is not None
        points.append(Point(lat, long, when, accuracy))
    return points
