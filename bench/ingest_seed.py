"""What the ingestion benchmark adds to a database seeded by `bench.seed`.

- `callbacks` GoSend orders waiting for a driver (`finding_driver`, with their `created` and
  `finding_driver` history rows), each booked with GoSend (`bookings`: provider `gosend`,
  `external_id` = its AWB `GK-11-…`). Courier callbacks walk them forward to `delivered`.
- `drivers` own-fleet drivers, each with a token (`drv_…`, stored as its SHA-256 like
  `lacak driver create` does), carrying one fleet order in `driver_assigned` (`assignments`
  row, history), with a full trail of `TRAIL_LIMIT` positions and a live position. With a
  full trail every location batch also prunes, as on a server that has been running.

Written through lacak's own database layer (`lacak.storage.db`), so one code path serves
SQLite and PostgreSQL; these are tens of thousands of rows, not millions.

Files in the work directory: `awbs.txt` (one AWB per line, in the order the wrk script walks
them) and `drivers.tsv` (`token<TAB>lat<TAB>long<TAB>order pk` per driver).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import fake
from lacak.drivers import tokens
from lacak.orders.models import HistoryEvent, Outcome, Source, State
from lacak.positions.store import TRAIL_LIMIT
from lacak.storage.db import Connection, Database, connect
from lacak.storage.rows import EVENT_COLUMNS, event_values, placeholders

# LACAK_GOSEND_CALLBACK_TOKEN of the bench server, which only ever listens on loopback.
CALLBACK_TOKEN = "bench-gosend-callback-token"  # noqa: S105
AWB_BASE = 8_000_000  # AWBs GK-11-8000000…: apart from the tracking codes bench.fake writes
# Callback orders are created one second apart, after every order bench.fake wrote, so their
# `{prefix}-{epoch ms}` ids cannot collide with those.
FIRST_CREATED = fake.BASE + fake.SPAN + timedelta(minutes=1)
_CHUNK = 5_000


@dataclass(frozen=True)
class Fixtures:
    awbs: Path
    callback_orders: int
    drivers: Path
    driver_count: int
    first_created_ms: int  # created_at of the first callback order; the n-th is n seconds later
    seconds: float

    def describe(self) -> str:
        return (f"{self.callback_orders:,} GoSend orders to call back, {self.driver_count} fleet drivers"
                f" with {TRAIL_LIMIT}-point trails, in {self.seconds:.1f} s")  # fmt: skip


def awb(n: int) -> str:
    return f"GK-11-{AWB_BASE + n}"


def _gosend_templates(seed: int) -> list[fake.Row]:
    """bench.fake's trip templates, only the gosend ones (repeated to the same count)."""
    every = fake.trips(seed)
    mine = [t for t in every if t[0] == "gosend"]
    return [mine[i % len(mine)] for i in range(len(every))]


def _paid_payment(plan: fake.Plan, merchant_id: int) -> int:
    """The pk of one of the merchant's paid payments in the seeded database."""
    p = merchant_id - 1
    while plan.unpaid(p) and p + plan.merchants < plan.payment_count():
        p += plan.merchants
    return p + 1


@dataclass(frozen=True)
class _Orders:
    """Order rows modelled on bench.fake's, re-stated for the benchmark's purpose."""

    plan: fake.Plan
    columns: tuple[str, ...]
    prefixes: dict[int, str]

    def rows(self, count: int, seed: int, first_id: int, fields: Any) -> Iterator[fake.Row]:
        """`count` rows; `fields(i, row)` gives each one's overrides (state, times, driver …)."""
        optional = tuple(c for c in self.columns if c in fake.OPTIONAL_ORDER_COLS)
        plan = fake.Plan(count, self.plan.merchants, seed)
        generated = fake.order_rows(
            plan, fake.merchants(plan), _gosend_templates(seed), fake.as_datetime, optional
        )
        for i, row in enumerate(generated):
            named = dict(zip(self.columns, row, strict=True))
            merchant = named["merchant_id"]
            named.update(
                id=first_id + i, payment_pk=_paid_payment(self.plan, merchant), hold_from=None,
                tracking_code="", driver_name=None, driver_phone=None, driver_photo=None,
                cancel_description=None, live_tracking_url=None, allocated_at=None, finished_at=None,
                canceled_at=None, **({"driver_plate": None} if "driver_plate" in named else {}),
            )  # fmt: skip
            named.update(fields(i, named))
            named["order_id"] = f"{self.prefixes[merchant]}-{int(named['created_at'].timestamp() * 1000)}"
            yield tuple(named[c] for c in self.columns)


def _event(pk: int, seq: int, state: State, before: State | None, source: Source, at: datetime,
           note: str | None = None) -> tuple[Any, ...]:  # fmt: skip
    return event_values(HistoryEvent(order_pk=pk, seq=seq, state=state, from_state=before,
                                     outcome=Outcome.APPLIED, source=source, note=note,
                                     occurred_at=at, recorded_at=at))  # fmt: skip


def _paid_history(pk: int, created: datetime) -> list[tuple[Any, ...]]:
    """What the API writes for a paid order: created, then finding_driver."""
    return [
        _event(pk, 1, State.CREATED, None, Source.API, created),
        _event(pk, 2, State.FINDING_DRIVER, State.CREATED, Source.API, created, "paid"),
    ]


async def _insert(
    tx: Connection, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]
) -> None:
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders(len(columns))})"
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == _CHUNK:
            await tx.executemany(sql, chunk)
            chunk = []
    if chunk:
        await tx.executemany(sql, chunk)


_BOOKING_COLS = ("order_pk", "provider", "external_id", "status", "generation", "attempts", "created_at",
                 "updated_at")  # fmt: skip
_EVENT_COLS = tuple(c.strip() for c in EVENT_COLUMNS.split(","))


async def _callback_orders(tx: Connection, orders: _Orders, count: int, first_id: int) -> None:
    def fields(i: int, _: dict[str, Any]) -> dict[str, Any]:
        created = FIRST_CREATED + timedelta(seconds=i)
        return {"state": State.FINDING_DRIVER.value, "seq": 2, "created_at": created, "updated_at": created}

    await _insert(tx, "orders", orders.columns, orders.rows(count, orders.plan.seed + 11, first_id, fields))
    booked = FIRST_CREATED + timedelta(seconds=1)
    bookings = ((first_id + i, "gosend", awb(i), "booked", 1, 1, booked, booked) for i in range(count))
    await _insert(tx, "bookings", _BOOKING_COLS, bookings)
    created = (FIRST_CREATED + timedelta(seconds=i) for i in range(count))
    history = (e for i, at in enumerate(created) for e in _paid_history(first_id + i, at))
    await _insert(tx, "order_events", _EVENT_COLS, history)


@dataclass(frozen=True)
class _Driver:
    token: str
    pk: int  # the order it carries
    lat: float
    long: float


async def _fleet(tx: Connection, orders: _Orders, count: int, first_id: int, now: datetime) -> list[_Driver]:
    people = fake._drivers(orders.plan.seed + 23)
    created = now - timedelta(minutes=20)
    allocated = now - timedelta(minutes=15)
    out: list[_Driver] = []
    ids: list[int] = []
    for i in range(count):
        name, phone, photo, plate = people[i % len(people)]
        token = tokens.new_token()
        driver_id = await tx.fetchval(
            "INSERT INTO drivers (name, phone, plate, photo, token_hash, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            name, phone, plate, photo, tokens.token_hash(token), created,
        )  # fmt: skip
        ids.append(int(driver_id))
        out.append(_Driver(token, first_id + i, 0.0, 0.0))

    def fields(i: int, row: dict[str, Any]) -> dict[str, Any]:
        name, phone, photo, plate = people[i % len(people)]
        at = created + timedelta(milliseconds=i)
        extra = {"driver_plate": plate} if "driver_plate" in row else {}
        return {"state": State.DRIVER_ASSIGNED.value, "seq": 3, "created_at": at, "updated_at": allocated,
                "allocated_at": allocated, "tracking_code": f"FLT-{first_id + i}-{ids[i]}",
                "driver_name": name, "driver_phone": phone, "driver_photo": photo, **extra}  # fmt: skip

    rows = list(orders.rows(count, orders.plan.seed + 17, first_id, fields))
    await _insert(tx, "orders", orders.columns, iter(rows))
    lat_at, long_at = orders.columns.index("origin_lat"), orders.columns.index("origin_long")
    out = [
        _Driver(d.token, d.pk, float(r[lat_at]), float(r[long_at])) for d, r in zip(out, rows, strict=True)
    ]
    await _insert(tx, "bookings", _BOOKING_COLS,
                  ((d.pk, "fleet", None, "booked", 1, 1, created, created) for d in out))  # fmt: skip
    await _insert(tx, "assignments", ("order_pk", "driver_id", "assigned_at"),
                  ((d.pk, ids[i], allocated) for i, d in enumerate(out)))  # fmt: skip
    history = (e for i, d in enumerate(out) for e in (
        *_paid_history(d.pk, created + timedelta(milliseconds=i)),
        _event(d.pk, 3, State.DRIVER_ASSIGNED, State.FINDING_DRIVER, Source.DRIVER, allocated),
    ))  # fmt: skip
    await _insert(tx, "order_events", _EVENT_COLS, history)
    # A full trail, one point a second up to a second ago, ending at the live position.
    second = timedelta(seconds=1)
    await _insert(tx, "positions", ("order_pk", "lat", "long", "accuracy", "at", "source"), (
        (d.pk, d.lat + k * 2e-5, d.long + k * 2e-5, 8.0, now - (TRAIL_LIMIT + 1 - k) * second, "driver")
        for d in out for k in range(TRAIL_LIMIT)
    ))  # fmt: skip
    last = TRAIL_LIMIT - 1
    newest = now - timedelta(seconds=2)
    await _insert(tx, "live_positions", ("order_pk", "lat", "long", "at"),
                  ((d.pk, d.lat + last * 2e-5, d.long + last * 2e-5, newest) for d in out))  # fmt: skip
    for driver_id, d in zip(ids, out, strict=True):
        await tx.execute("UPDATE drivers SET lat = $2, long = $3, position_at = $4 WHERE id = $1",
                         driver_id, d.lat + last * 2e-5, d.long + last * 2e-5, newest)  # fmt: skip
    return out


async def _add(db: Database, plan: fake.Plan, callbacks: int, drivers: int) -> list[_Driver]:
    sample = await db.fetchrow("SELECT * FROM orders LIMIT 1")
    assert sample is not None, "seed the database first"
    columns = tuple(c for c in (*fake.ORDER_COLS, *fake.OPTIONAL_ORDER_COLS) if c in set(sample.keys()))
    top = await db.fetchrow("SELECT max(id) FROM orders")
    first = int(top[0] if top else 0) + 1
    orders = _Orders(plan, columns, {m.id: m.prefix for m in fake.merchants(plan)})
    async with db.transaction() as tx:
        await _callback_orders(tx, orders, callbacks, first)
        fleet = await _fleet(tx, orders, drivers, first + callbacks, datetime.now(UTC))
    if db.dialect == "postgresql":
        await db.fetchrow(
            "SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders))"
        )
        await db.fetchrow(
            "ANALYZE orders, bookings, drivers, assignments, positions, live_positions, order_events"
        )
    return fleet


def add_fixtures(url: str, plan: fake.Plan, callbacks: int, drivers: int, work: Path) -> Fixtures:
    """Add the ingestion rows to the database at `url` (seeded with `plan`); write the files."""
    started = time.perf_counter()

    async def go() -> list[_Driver]:
        db = connect(url, pool_size=1)
        await db.open()
        try:
            return await _add(db, plan, callbacks, drivers)
        finally:
            await db.close()

    fleet = asyncio.run(go())
    awbs, tsv = work / "awbs.txt", work / "drivers.tsv"
    awbs.write_text("".join(f"{awb(i)}\n" for i in range(callbacks)))
    tsv.write_text("".join(f"{d.token}\t{d.lat:.7f}\t{d.long:.7f}\t{d.pk}\n" for d in fleet))
    return Fixtures(awbs, callbacks, tsv, len(fleet), int(FIRST_CREATED.timestamp() * 1000),
                    time.perf_counter() - started)  # fmt: skip
