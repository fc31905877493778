"""SQL for drivers, their assignments and their positions' bookkeeping.

Each function runs on a connection the caller holds (inside its transaction) or on the
database for plain reads; the service decides what goes into one transaction.
"""

# SQL text is assembled only from module constants; values are bound parameters.

from __future__ import annotations

from datetime import datetime

from lacak.drivers.models import CARRIED, DriverAccount
from lacak.orders.models import Order, State
from lacak.storage.db import Connection, Database, Row
from lacak.storage.rows import ORDER_COLUMNS, as_dt, order_from_row

_COLUMNS = "id, name, phone, plate, photo, lat, long, position_at, created_at, revoked_at"
_CARRIED_SQL = ", ".join(f"'{s.value}'" for s in sorted(CARRIED))
_FLEET = "EXISTS (SELECT 1 FROM bookings b WHERE b.order_pk = orders.id AND b.provider = 'fleet')"

Reader = Database | Connection


def _driver(row: Row) -> DriverAccount:
    id_, name, phone, plate, photo, lat, long, position_at, created_at, revoked_at = tuple(row)[:10]
    created = as_dt(created_at)
    assert created is not None
    return DriverAccount(
        id=id_,
        name=name,
        phone=phone,
        plate=plate,
        photo=photo,
        lat=lat,
        long=long,
        position_at=as_dt(position_at),
        created_at=created,
        revoked_at=as_dt(revoked_at),
    )


# -- accounts -------------------------------------------------------------------------------


async def create(
    tx: Connection, name: str, phone: str, plate: str | None, photo: str | None, digest: str, now: datetime
) -> DriverAccount:
    row = await tx.fetchrow(
        "INSERT INTO drivers (name, phone, plate, photo, token_hash, created_at)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        name,
        phone,
        plate,
        photo,
        digest,
        now,
    )
    assert row is not None
    return _driver(row)


async def by_token(db: Reader, digest: str) -> tuple[DriverAccount, str] | None:
    """The active driver holding the token with this hash, and the stored hash to compare."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS}, token_hash FROM drivers WHERE token_hash = $1 AND revoked_at IS NULL", digest
    )
    return None if row is None else (_driver(row), str(row["token_hash"]))


async def listing(db: Reader) -> list[tuple[DriverAccount, int]]:
    """Every driver with the number of orders it carries now."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM assignments a JOIN orders o ON o.id = a.order_pk"
        f" WHERE a.driver_id = drivers.id AND o.state IN ({_CARRIED_SQL})) AS carrying"
        " FROM drivers ORDER BY id"
    )
    return [(_driver(r), int(r["carrying"])) for r in rows]


async def revoke(tx: Connection, driver_id: int, now: datetime) -> DriverAccount | None:
    row = await tx.fetchrow(
        f"UPDATE drivers SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {_COLUMNS}",
        driver_id,
        now,
    )
    return None if row is None else _driver(row)


async def move(tx: Connection, driver_id: int, lat: float, long: float, at: datetime) -> None:
    """The driver's live position; a late batch of older points never moves it backwards."""
    await tx.execute(
        "UPDATE drivers SET lat = $2, long = $3, position_at = $4"
        " WHERE id = $1 AND (position_at IS NULL OR position_at <= $4)",
        driver_id,
        lat,
        long,
        at,
    )


# -- orders as drivers see them -------------------------------------------------------------


async def open_orders(db: Reader, lat: float, long: float, squeeze: float, limit: int) -> list[Order]:
    """Fleet orders waiting for a driver, nearest pickup first.

    Ordered by the equirectangular distance (`squeeze` = cos²(latitude) shrinks degrees of
    longitude), plain arithmetic that both databases run and that ranks like the great-circle
    distance at city scale. The state is the truth: an assignment row left on a
    `finding_driver` order belongs to the driver before a find-new-driver.
    """
    rows = await db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE state = 'finding_driver' AND {_FLEET}"
        " ORDER BY (origin_lat - $1) * (origin_lat - $1) + (origin_long - $2) * (origin_long - $2) * $3, id"
        " LIMIT $4",
        lat,
        long,
        squeeze,
        limit,
    )
    return [order_from_row(r) for r in rows]


async def carried_orders(db: Reader, driver_id: int) -> list[Order]:
    rows = await db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE state IN ({_CARRIED_SQL})"
        " AND id IN (SELECT order_pk FROM assignments WHERE driver_id = $1) ORDER BY id",
        driver_id,
    )
    return [order_from_row(r) for r in rows]


async def carried_pks(tx: Connection, driver_id: int) -> list[int]:
    rows = await tx.fetch(
        f"SELECT a.order_pk FROM assignments a JOIN orders o ON o.id = a.order_pk"
        f" WHERE a.driver_id = $1 AND o.state IN ({_CARRIED_SQL}) ORDER BY a.order_pk",
        driver_id,
    )
    return [int(r[0]) for r in rows]


async def lock_fleet_order(tx: Connection, order_pk: int) -> State | None:
    """Lock a fleet order's row for this transaction; None when there is no such fleet order."""
    state = await tx.fetchval(f"SELECT state FROM orders WHERE id = $1 AND {_FLEET} FOR UPDATE", order_pk)
    return None if state is None else State(state)


async def assignee(tx: Connection, order_pk: int) -> int | None:
    driver_id = await tx.fetchval("SELECT driver_id FROM assignments WHERE order_pk = $1", order_pk)
    return None if driver_id is None else int(driver_id)


async def assign(tx: Connection, order_pk: int, driver_id: int, now: datetime) -> bool:
    """Take the order for the driver; False when another driver's row is already there."""
    taken = await tx.fetchval(
        "INSERT INTO assignments (order_pk, driver_id, assigned_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (order_pk) DO NOTHING RETURNING order_pk",
        order_pk,
        driver_id,
        now,
    )
    return taken is not None


async def release(tx: Connection, order_pk: int) -> None:
    """Drop the order's assignment unless its driver still carries it (see `CARRIED`)."""
    await tx.execute(
        "DELETE FROM assignments WHERE order_pk = $1"
        f" AND NOT EXISTS (SELECT 1 FROM orders WHERE id = $1 AND state IN ({_CARRIED_SQL}))",
        order_pk,
    )


async def set_plate(tx: Connection, order_pk: int, plate: str | None) -> None:
    await tx.execute("UPDATE orders SET driver_plate = $2 WHERE id = $1", order_pk, plate)
