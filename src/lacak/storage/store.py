"""The repository: every query lacak runs, over either database.

Each public method is one transaction or one read. State changes go through `_persist`,
which writes the order, its history row and its outbox row together.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from lacak.errors import DuplicateOrderId, NotFound
from lacak.merchants.models import Merchant, PaymentMode
from lacak.orders import lifecycle, views
from lacak.orders.models import (
    PAID,
    HistoryEvent,
    Order,
    Outcome,
    Payment,
    Source,
    State,
    Update,
)
from lacak.storage.db import Connection, Database
from lacak.storage.rows import (
    EVENT_COLUMNS,
    MERCHANT_COLUMNS,
    ORDER_COLUMNS,
    PAYMENT_COLUMNS,
    as_dt,
    event_from_row,
    event_values,
    merchant_from_row,
    order_from_row,
    order_values,
    payment_from_row,
    placeholders,
)

_ORDER_INSERT_COLUMNS = ORDER_COLUMNS.removeprefix("id, ")
_N_ORDER = len(_ORDER_INSERT_COLUMNS.split(","))
_N_EVENT = len(EVENT_COLUMNS.split(","))
_N_ORDER_COLUMNS = len(ORDER_COLUMNS.split(","))
_N_MERCHANT_COLUMNS = len(MERCHANT_COLUMNS.split(","))
_MERCHANT_JOINED = ", ".join(f"m.{c.strip()} AS m_{c.strip()}" for c in MERCHANT_COLUMNS.split(","))


def _merchant_from(values: tuple[Any, ...]) -> Merchant:
    """A merchant from its MERCHANT_COLUMNS values, in order (`transition_in`'s joined row)."""
    pk, name, payment_mode, callback_url, webhook_dialect, created_at = values
    at = as_dt(created_at)
    assert at is not None
    return Merchant(id=pk, name=name, payment_mode=PaymentMode(payment_mode), callback_url=callback_url,
                    webhook_dialect=webhook_dialect, created_at=at)  # fmt: skip


Guard = Callable[[Order], None]


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """An outbox row as the store sees it (the dispatcher comes later)."""

    id: int
    event_id: str
    merchant_id: int
    order_pk: int
    seq: int
    state: str
    status: str
    payload: str


_CREATE_LOCK = 0x6C61  # advisory lock namespace of order creation ("la")


def new_event_id() -> str:
    """`msg_` + 32 hex digits: the time in milliseconds (12), then 80 random bits (20).

    Time first, as KSUIDs and ULIDs do, so that new ids land at the end of the unique index
    instead of on a random page of it: an outbox insert then dirties one index page, not a
    fresh one per event (a commit writes every dirtied page). Still unguessable and unique.
    """
    ms = time.time_ns() // 1_000_000
    return f"msg_{ms & 0xFFFFFFFFFFFF:012x}{secrets.token_hex(10)}"


class Change(msgspec.Struct, frozen=True):
    """An applied state change, as effects see it inside its transaction."""

    merchant: Merchant
    before: Order
    after: Order
    event: HistoryEvent
    now: datetime


# Work that must happen atomically with a state change (e.g. enqueue a courier booking).
Effect = Callable[[Connection, Change], Awaitable[None]]


class TrackingView(msgspec.Struct, frozen=True, gc=False):
    pk: int
    seq: int
    updated_at: datetime
    json: str | None


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.effects: list[Effect] = []
        # Called after a commit that applied changes: wakes in-process consumers at once.
        self.listeners: list[Callable[[], None]] = []
        # The hottest read: on PostgreSQL concurrent lookups share round trips.
        self._tracking = db.point_reader(
            "SELECT id, seq, updated_at, tracking_json FROM orders WHERE merchant_id = $1 AND order_id = $2",
            "SELECT k.i, o.id, o.seq, o.updated_at, o.tracking_json"
            " FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS k(merchant_id, order_id, i)"
            " JOIN orders o ON o.merchant_id = k.merchant_id AND o.order_id = k.order_id",
        )

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()

    # -- merchants and keys -------------------------------------------------------------------

    async def create_merchant(
        self, name: str, mode: PaymentMode, key_hash: str, key_enc: str, now: datetime
    ) -> Merchant:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "INSERT INTO merchants (name, payment_mode, created_at) VALUES ($1, $2, $3)"
                f" RETURNING {MERCHANT_COLUMNS}",
                name,
                mode.value,
                now,
            )
            assert row is not None
            merchant = merchant_from_row(row)
            await self._insert_key(tx, merchant.id, key_hash, key_enc, now)
        return merchant

    async def _insert_key(
        self, tx: Connection, merchant_id: int, key_hash: str, key_enc: str, now: datetime
    ) -> None:
        await tx.execute(
            "INSERT INTO api_keys (merchant_id, key_hash, key_enc, created_at) VALUES ($1, $2, $3, $4)",
            merchant_id,
            key_hash,
            key_enc,
            now,
        )

    async def merchant_for_key(self, key_hash: str) -> tuple[Merchant, str] | None:
        row = await self.db.fetchrow(
            f"SELECT {', '.join('m.' + c for c in MERCHANT_COLUMNS.split(', '))}, k.key_hash"
            " FROM api_keys k JOIN merchants m ON m.id = k.merchant_id"
            " WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
            key_hash,
        )
        return None if row is None else (merchant_from_row(row), row["key_hash"])

    async def find_merchant(self, ref: str) -> Merchant | None:
        if "\x00" in ref:  # no name holds a NUL, and PostgreSQL refuses one in text
            return None
        if ref.isascii() and ref.isdigit():  # "²".isdigit() is true too
            if len(ref) > 18:  # beyond BIGINT: no such id
                return None
            row = await self.db.fetchrow(f"SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1", int(ref))
        else:
            row = await self.db.fetchrow(f"SELECT {MERCHANT_COLUMNS} FROM merchants WHERE name = $1", ref)
        return None if row is None else merchant_from_row(row)

    async def list_merchants(self) -> list[tuple[Merchant, int]]:
        rows = await self.db.fetch(
            f"SELECT {MERCHANT_COLUMNS}, (SELECT count(*) FROM api_keys k"
            " WHERE k.merchant_id = merchants.id AND k.revoked_at IS NULL) AS active_keys"
            " FROM merchants ORDER BY id"
        )
        return [(merchant_from_row(r), r["active_keys"]) for r in rows]

    async def rotate_key(self, merchant_id: int, key_hash: str, key_enc: str, now: datetime) -> None:
        async with self.db.transaction() as tx:
            await self._revoke(tx, merchant_id, now)
            await self._insert_key(tx, merchant_id, key_hash, key_enc, now)

    async def revoke_keys(self, merchant_id: int, now: datetime) -> int:
        async with self.db.transaction() as tx:
            return await self._revoke(tx, merchant_id, now)

    async def _revoke(self, tx: Connection, merchant_id: int, now: datetime) -> int:
        rows = await tx.fetch(
            "UPDATE api_keys SET revoked_at = $2 WHERE merchant_id = $1 AND revoked_at IS NULL RETURNING id",
            merchant_id,
            now,
        )
        return len(rows)

    async def active_key_enc(self, merchant_id: int) -> str | None:
        row = await self.db.fetchrow(
            "SELECT key_enc FROM api_keys WHERE merchant_id = $1 AND revoked_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            merchant_id,
        )
        return None if row is None else str(row["key_enc"])

    async def set_payment_mode(self, merchant_id: int, mode: PaymentMode) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE merchants SET payment_mode = $2 WHERE id = $1", merchant_id, mode.value)

    # -- orders: reads ------------------------------------------------------------------------

    async def get_order(self, merchant_id: int, order_id: str) -> Order | None:
        row = await self.db.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND order_id = $2",
            merchant_id,
            order_id,
        )
        return None if row is None else order_from_row(row)

    async def find_orders(self, order_id: str) -> list[Order]:
        rows = await self.db.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1 ORDER BY id", order_id
        )
        return [order_from_row(r) for r in rows]

    async def history(self, order_pk: int) -> list[HistoryEvent]:
        rows = await self.db.fetch(
            f"SELECT {EVENT_COLUMNS} FROM order_events WHERE order_pk = $1 ORDER BY id", order_pk
        )
        return [event_from_row(r) for r in rows]

    async def deliveries(self, order_pk: int) -> list[Delivery]:
        rows = await self.db.fetch(
            "SELECT id, event_id, merchant_id, order_pk, seq, state, status, payload"
            " FROM deliveries WHERE order_pk = $1 ORDER BY id",
            order_pk,
        )
        return [Delivery(**{k: r[k] for k in r.keys()}) for r in rows]  # noqa: SIM118  (sqlite3.Row iterates values)

    async def get_payment(self, merchant_id: int, payment_id: str) -> tuple[Payment, list[Order]]:
        row = await self.db.fetchrow(
            f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE merchant_id = $1 AND payment_id = $2",
            merchant_id,
            payment_id,
        )
        if row is None:
            raise NotFound()
        payment = payment_from_row(row)
        return payment, await self._payment_orders(payment.pk)

    async def _payment_orders(self, payment_pk: int) -> list[Order]:
        rows = await self.db.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE payment_pk = $1 ORDER BY id", payment_pk
        )
        return [order_from_row(r) for r in rows]

    async def payment_for(self, order: Order) -> Payment:
        row = await self.db.fetchrow(
            f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1", order.payment_pk
        )
        assert row is not None, "every order has a payment (foreign key)"
        return payment_from_row(row)

    # -- orders: writes -----------------------------------------------------------------------

    async def create_orders(
        self,
        merchant: Merchant,
        prefix: str,
        drafts: Sequence[Order],
        payment: Payment,
        now: datetime,
    ) -> tuple[Payment, list[Order]]:
        """Insert a payment and its orders; paid ones move on to finding_driver at once.

        A draft with an empty `order_id` gets `{prefix}-{epoch ms}`, bumped past collisions.
        """
        async with self.db.transaction() as tx:
            if self.db.dialect == "postgresql":
                # Generated payment and order ids are "the next free one": a merchant's creations
                # take turns, or concurrent ones pick the same id (SQLite's writer lock already
                # serialises them).
                await tx.execute("SELECT pg_advisory_xact_lock($1, $2)", _CREATE_LOCK, merchant.id % 2**31)
            # The caller's copy may be stale (key cache): the outbox status follows the database.
            merchant = await self._merchant(tx, merchant.id)
            pid = await self._free_payment_id(tx, merchant.id, payment.payment_id)
            row = await tx.fetchrow(
                "INSERT INTO payments (merchant_id, payment_id, amount, status_code, qr_content,"
                f" pay_time, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {PAYMENT_COLUMNS}",
                merchant.id,
                pid,
                payment.amount,
                payment.status_code,
                payment.qr_content,
                payment.pay_time,
                now,
            )
            assert row is not None
            saved_payment = payment_from_row(row)
            orders: list[Order] = []
            next_ms = int(now.timestamp() * 1000)
            for draft in drafts:
                order_id = draft.order_id
                if order_id:
                    if await self._order_exists(tx, merchant.id, order_id):
                        raise DuplicateOrderId(order_id)
                else:
                    order_id, next_ms = await self._free_order_id(tx, merchant.id, prefix, next_ms)
                order = await self._insert_order(
                    tx, msgspec.structs.replace(draft, order_id=order_id, payment_pk=saved_payment.pk)
                )
                if saved_payment.paid:
                    update = Update(
                        state=State.FINDING_DRIVER, source=Source.API, occurred_at=now, note="paid"
                    )
                    order = await self._decide_and_persist(tx, merchant, order, update, now)
                orders.append(order)
        self._notify()
        return saved_payment, orders

    async def _order_exists(self, tx: Connection, merchant_id: int, order_id: str) -> bool:
        found = await tx.fetchval(
            "SELECT 1 FROM orders WHERE merchant_id = $1 AND order_id = $2", merchant_id, order_id
        )
        return found is not None

    async def _free_order_id(self, tx: Connection, merchant_id: int, prefix: str, ms: int) -> tuple[str, int]:
        while await self._order_exists(tx, merchant_id, f"{prefix}-{ms}"):
            ms += 1
        return f"{prefix}-{ms}", ms + 1

    async def _free_payment_id(self, tx: Connection, merchant_id: int, wanted: str) -> str:
        base, _, num = wanted.rpartition("-")
        n = int(num)
        while await tx.fetchval(
            "SELECT 1 FROM payments WHERE merchant_id = $1 AND payment_id = $2",
            merchant_id,
            f"{base}-{n}",
        ):
            n += 1
        return f"{base}-{n}"

    async def _insert_order(self, tx: Connection, draft: Order) -> Order:
        pk = await tx.fetchval(
            f"INSERT INTO orders ({_ORDER_INSERT_COLUMNS}, tracking_json)"
            f" VALUES ({placeholders(_N_ORDER + 1)}) RETURNING id",
            *order_values(draft),
            views.tracking_json(draft),
        )
        order = msgspec.structs.replace(draft, pk=pk)
        created = HistoryEvent(
            order_pk=pk,
            seq=order.seq,
            state=order.state,
            from_state=None,
            outcome=Outcome.APPLIED,
            source=Source.API,
            occurred_at=order.created_at,
            recorded_at=order.created_at,
        )
        await self._insert_event(tx, created)
        return order

    async def _insert_event(self, tx: Connection, event: HistoryEvent) -> None:
        await tx.execute(
            f"INSERT INTO order_events ({EVENT_COLUMNS}) VALUES ({placeholders(_N_EVENT)})",
            *event_values(event),
        )

    async def transition(
        self,
        merchant_id: int,
        order_id: str,
        update: Update,
        now: datetime,
        guard: Guard | None = None,
    ) -> lifecycle.Decision:
        """Lock the order, let `guard` refuse (nothing written), decide, persist."""
        return await self._transition(
            "merchant_id = $1 AND order_id = $2", (merchant_id, order_id), update, now, guard
        )

    async def transition_pk(
        self, order_pk: int, update: Update, now: datetime, guard: Guard | None = None
    ) -> lifecycle.Decision:
        return await self._transition("id = $1", (order_pk,), update, now, guard)

    async def _transition(
        self, where: str, args: tuple[object, ...], update: Update, now: datetime, guard: Guard | None
    ) -> lifecycle.Decision:
        async with self.db.transaction() as tx:
            decision = await self.transition_in(tx, where, args, update, now, guard)
        self._notify()
        return decision

    async def transition_in(
        self,
        tx: Connection,
        where: str,
        args: tuple[object, ...],
        update: Update,
        now: datetime,
        guard: Guard | None = None,
    ) -> lifecycle.Decision:
        """The same, inside the caller's transaction (to add its own rows atomically)."""
        # The merchant comes with the locked order (one statement, not two). On SQLite, whose
        # write transactions run one at a time, so does "was this event seen": on PostgreSQL that
        # must be read after the lock is granted (a statement's snapshot predates its lock wait).
        check = bool(update.dedupe_key) and self.db.dialect == "sqlite"
        seen_sql = (
            ", EXISTS (SELECT 1 FROM order_events e WHERE e.order_pk = o.id"
            f" AND e.dedupe_key = ${len(args) + 1})"
            if check
            else ""
        )
        row = await tx.fetchrow(
            f"SELECT o.*, {_MERCHANT_JOINED}{seen_sql} FROM (SELECT {ORDER_COLUMNS} FROM orders WHERE {where}"
            " FOR UPDATE) AS o JOIN merchants m ON m.id = o.merchant_id",
            *args,
            *((update.dedupe_key,) if check else ()),
        )
        if row is None:
            raise NotFound()
        values = tuple(row)
        order = order_from_row(values[:_N_ORDER_COLUMNS])
        if guard is not None:
            guard(order)
        merchant = _merchant_from(values[_N_ORDER_COLUMNS : _N_ORDER_COLUMNS + _N_MERCHANT_COLUMNS])
        if not check:
            return await self._decide(tx, merchant, order, update, now)
        decision = lifecycle.decide(order, update, seen=bool(values[-1]), now=now)
        await self._persist(tx, merchant, order, decision, now)
        return decision

    async def tracking_view(self, merchant_id: int, order_id: str) -> TrackingView | None:
        """The stored tracking JSON (None until rendered) and what the ETag is made of."""
        row = await self._tracking.fetchrow(merchant_id, order_id)
        if row is None:
            return None
        pk, seq, updated_at, body = row
        return TrackingView(pk, seq, as_dt(updated_at), body)  # type: ignore[arg-type]  # NOT NULL column

    async def order_by_pk(self, order_pk: int) -> Order | None:
        row = await self.db.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1", order_pk)
        return None if row is None else order_from_row(row)

    async def _merchant(self, tx: Connection, merchant_id: int) -> Merchant:
        row = await tx.fetchrow(f"SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1", merchant_id)
        assert row is not None
        return merchant_from_row(row)

    async def _decide(
        self, tx: Connection, merchant: Merchant, order: Order, update: Update, now: datetime
    ) -> lifecycle.Decision:
        seen = bool(update.dedupe_key) and (
            await tx.fetchval(
                "SELECT 1 FROM order_events WHERE order_pk = $1 AND dedupe_key = $2",
                order.pk,
                update.dedupe_key,
            )
            is not None
        )
        decision = lifecycle.decide(order, update, seen=seen, now=now)
        await self._persist(tx, merchant, order, decision, now)
        return decision

    async def _decide_and_persist(
        self, tx: Connection, merchant: Merchant, order: Order, update: Update, now: datetime
    ) -> Order:
        return (await self._decide(tx, merchant, order, update, now)).order

    async def _persist(
        self,
        tx: Connection,
        merchant: Merchant,
        before: Order,
        decision: lifecycle.Decision,
        now: datetime,
    ) -> None:
        if decision.event is None:
            return
        if decision.outcome == Outcome.APPLIED:
            after = decision.order
            await tx.execute(
                "UPDATE orders SET state = $2, hold_from = $3, seq = $4, tracking_code = $5,"
                " driver_name = $6, driver_phone = $7, driver_photo = $8, cancel_description = $9,"
                " live_tracking_url = $10, allocated_at = $11, finished_at = $12,"
                " canceled_at = $13, updated_at = $14, tracking_json = $15 WHERE id = $1",
                after.pk,
                after.state.value,
                after.hold_from.value if after.hold_from else None,
                after.seq,
                after.tracking_code,
                after.driver.name,
                after.driver.phone,
                after.driver.photo,
                after.cancel_description,
                after.live_tracking_url,
                after.allocated_at,
                after.finished_at,
                after.canceled_at,
                after.updated_at,
                views.tracking_json(after),
            )
            await self._insert_event(tx, decision.event)
            await self._enqueue(tx, merchant, after, now)
            change = Change(merchant, before, after, decision.event, now)
            for effect in self.effects:
                await effect(tx, change)
        else:
            await self._insert_event(tx, decision.event)

    async def _enqueue(self, tx: Connection, merchant: Merchant, order: Order, now: datetime) -> None:
        # The outbox row is written in the state change's own transaction. Its status comes
        # from the merchant's row as it is now (not from a cached Merchant): `no_endpoint`
        # without a callback URL, `paused` while the endpoint is disabled; both are kept so
        # nothing is lost, and can be sent later. While the endpoint is held back as
        # unreachable it is first due when the hold ends (webhooks.store._holds).
        status = await tx.fetchval(
            "INSERT INTO deliveries (event_id, merchant_id, order_pk, seq, state, status, payload,"
            " next_attempt_at, created_at)"
            " SELECT $1, m.id, $3, $4, $5, CASE WHEN m.callback_url IS NULL THEN 'no_endpoint'"
            " WHEN e.disabled_at IS NOT NULL THEN 'paused' ELSE 'pending' END, $6,"
            " CASE WHEN e.held_until > $7 THEN e.held_until ELSE $7 END, $7"
            " FROM merchants m LEFT JOIN webhook_endpoints e ON e.merchant_id = m.id WHERE m.id = $2"
            " RETURNING status",
            new_event_id(),
            merchant.id,
            order.pk,
            order.seq,
            order.state.value,
            msgspec.json.encode(order).decode(),
            now,
        )
        if status == "pending" and self.db.dialect == "postgresql":
            # Delivered at commit: wakes idle webhook workers in every process at once.
            await tx.execute("NOTIFY lacak_deliveries")

    async def mark_payment_paid(self, merchant_id: int, payment_id: str, now: datetime) -> Payment:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE merchant_id = $1 AND payment_id = $2"
                " FOR UPDATE",
                merchant_id,
                payment_id,
            )
            if row is None:
                raise NotFound()
            payment = payment_from_row(row)
            if payment.paid:
                return payment
            await tx.execute(
                "UPDATE payments SET status_code = $2, pay_time = $3 WHERE id = $1",
                payment.pk,
                PAID,
                now,
            )
            merchant = await self._merchant(tx, merchant_id)
            rows = await tx.fetch(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE payment_pk = $1 ORDER BY id FOR UPDATE",
                payment.pk,
            )
            for r in rows:
                order = order_from_row(r)
                if order.state == State.CREATED:
                    update = Update(
                        state=State.FINDING_DRIVER,
                        source=Source.OPERATOR,
                        occurred_at=now,
                        note="payment received",
                    )
                    await self._decide(tx, merchant, order, update, now)
        self._notify()
        return msgspec.structs.replace(payment, status_code=PAID, pay_time=now)
