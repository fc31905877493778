"""SQL for bookings: which provider carries an order, under which external id."""

from __future__ import annotations

from datetime import datetime

import msgspec

from lacak.storage.db import Connection, Database

_COLUMNS = "order_pk, provider, external_id, status, generation, attempts"


class Booking(msgspec.Struct, frozen=True):
    order_pk: int
    provider: str
    external_id: str | None
    status: str  # pending, booked, failed, cancelled
    generation: int
    attempts: int


async def create(tx: Connection, order_pk: int, provider: str, now: datetime) -> None:
    await tx.execute(
        "INSERT INTO bookings (order_pk, provider, status, created_at, updated_at)"
        " VALUES ($1, $2, 'pending', $3, $3) ON CONFLICT (order_pk) DO NOTHING",
        order_pk,
        provider,
        now,
    )


async def get(db: Database | Connection, order_pk: int) -> Booking | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM bookings WHERE order_pk = $1", order_pk)
    return None if row is None else Booking(*row)


async def by_external(db: Database | Connection, provider: str, external_id: str) -> Booking | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM bookings WHERE provider = $1 AND external_id = $2", provider, external_id
    )
    return None if row is None else Booking(*row)


async def booked(tx: Connection, order_pk: int, external_id: str | None, now: datetime) -> None:
    await tx.execute(
        "UPDATE bookings SET external_id = $2, status = 'booked', attempts = attempts + 1,"
        " last_error = NULL, updated_at = $3 WHERE order_pk = $1",
        order_pk,
        external_id,
        now,
    )


async def set_status(tx: Connection, order_pk: int, status: str, error: str | None, now: datetime) -> None:
    await tx.execute(
        "UPDATE bookings SET status = $2, last_error = $3, updated_at = $4 WHERE order_pk = $1",
        order_pk,
        status,
        error,
        now,
    )


async def next_generation(tx: Connection, order_pk: int, now: datetime) -> int:
    generation = await tx.fetchval(
        "UPDATE bookings SET generation = generation + 1, status = 'pending', updated_at = $2"
        " WHERE order_pk = $1 RETURNING generation",
        order_pk,
        now,
    )
    return int(generation or 0)
