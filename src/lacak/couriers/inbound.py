"""Inbound courier callbacks: the event every provider's message becomes, and its ingestion.

Each provider module (`gosend`, `grab_express`, `borzo`: `inbound.py`) checks its own
authentication (`verify`) and turns its wire format into `InboundEvent`s (`parse`), mapping
native statuses per lifecycle.md. `Inbox.ingest` then stores every event in `courier_inbox`
with what became of it and, when the order and the status are known, applies it to the
lifecycle in the same transaction, so an event is never half recorded.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import msgspec

from lacak.errors import AuthError, NotFound, ValidationError
from lacak.metrics import Metrics
from lacak.orders.lifecycle import RANK
from lacak.orders.models import Driver, Outcome, Source, State, Update
from lacak.positions import store as positions
from lacak.storage.db import Connection
from lacak.storage.sqlite import SQLiteDatabase
from lacak.storage.store import Store

log = logging.getLogger("lacak.couriers")
T = TypeVar("T")

# Outcomes beyond the lifecycle's own (applied, stale, refused, duplicate).
UNKNOWN_ORDER = "unknown_order"
UNKNOWN_STATUS = "unknown_status"
# Stored positions that are news: a stale, refused or repeated event carries an old one.
_POSITION_OUTCOMES = frozenset({Outcome.APPLIED.value, UNKNOWN_STATUS})
# `transition_in`'s order: the one booked with the provider under the event's external id.
_BOOKED = "id = (SELECT order_pk FROM bookings WHERE provider = $1 AND external_id = $2)"


class MalformedPayload(ValidationError):
    """The (authenticated) body is not the JSON the courier documents: HTTP 400, nothing stored."""


class InboundEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One courier status message, in lacak's words.

    `state` is the unified state of `native_status`, or None for a status lacak does not know.
    When `after_pickup` is set the meaning depends on the order (Grab `FAILED`): `state` holds
    before pickup, `after_pickup` after it; `resolve` decides with the order in hand.
    """

    external_id: str  # the courier's booking id: GoSend AWB, Grab deliveryID, Borzo order_id
    native_status: str
    state: State | None
    after_pickup: State | None = None
    occurred_at: datetime | None = None  # None: the message carries no time (received time is used)
    dedupe_key: str  # unique per courier event, without the provider prefix
    merchant_order_id: str | None = None
    native_text: str | None = None
    driver: Driver | None = None
    plate: str | None = None
    live_tracking_url: str | None = None
    reason: str | None = None
    lat: float | None = None
    long: float | None = None


# -- helpers for the provider modules (pure) --------------------------------------------------


def configured(secret: str | None, provider: str, env: str) -> str:
    """The provider's callback secret; without one every callback is refused."""
    if not secret:
        raise AuthError(f"{provider} callbacks are refused: {env} is not configured on this server")
    return secret


def check(given: str | None, expected: str, provider: str) -> None:
    """Constant-time comparison, so response timing does not leak the secret."""
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthError(f"invalid {provider} callback credentials")


def decode(raw: bytes, kind: type[T]) -> T:
    try:
        value = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise MalformedPayload(f"unexpected callback body: {exc}") from None
    except msgspec.DecodeError:
        raise MalformedPayload("request body is not valid JSON") from None
    if b"\\u0000" in raw:  # PostgreSQL text cannot hold NUL
        raise MalformedPayload("request body holds a NUL character")
    return value


def text(value: str | None) -> str | None:
    """Couriers send `""` for "not yet known": that is None here."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def driver(name: str | None, phone: str | None, photo: str | None) -> Driver | None:
    found = Driver(text(name), text(phone), text(photo))
    return None if found == Driver() else found


def number(value: float | str | None) -> float | None:
    """A coordinate sent as a number or a numeric string; anything else is no coordinate."""
    if value is None or isinstance(value, float | int):
        return value
    try:
        return float(value)
    except ValueError:
        return None


def position(lat: float | str | None, long: float | str | None) -> tuple[float | None, float | None]:
    """A driver position, or none: couriers send 0,0 (or nothing) before a driver reports one."""
    la, lo = number(lat), number(long)
    if la is None or lo is None or (la == 0 and lo == 0):
        return None, None
    return la, lo


def epoch(value: float, per_second: int = 1) -> datetime:
    """Unix time in seconds (`per_second=1`) or milliseconds (`per_second=1000`)."""
    try:
        return datetime.fromtimestamp(value / per_second, UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedPayload(f"{value!r} is not a valid timestamp") from None


def iso(value: str) -> datetime:
    """ISO 8601; a time without an offset is taken as UTC."""
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedPayload(f"{value!r} is not an ISO 8601 time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def resolve(event: InboundEvent, state: State, hold_from: State | None) -> State | None:
    """The unified state `event` means for an order now in `state` (held from `hold_from`)."""
    if event.after_pickup is None:
        return event.state
    reached = hold_from if state == State.ON_HOLD and hold_from is not None else state
    return event.after_pickup if RANK[reached] >= RANK[State.PICKED_UP] else event.state


def to_update(provider: str, event: InboundEvent, state: State, at: datetime) -> Update:
    return Update(
        state=state,
        source=Source.COURIER,
        occurred_at=at,
        native_code=event.native_status,
        native_text=event.native_text,
        dedupe_key=f"{provider}:{event.dedupe_key}",
        driver=event.driver,
        tracking_code=event.external_id,
        live_tracking_url=event.live_tracking_url,
        reason=event.reason,
        lat=event.lat,
        long=event.long,
    )


# -- ingestion -----------------------------------------------------------------------------


class _Recorded(msgspec.Struct, frozen=True, gc=False):
    """What one event's transaction did, for the metrics and the log after its commit."""

    outcome: str
    state: State | None  # the state it meant, when the order and the status are known
    position: bool  # a driver position was stored


class Inbox:
    def __init__(self, store: Store, metrics: Metrics, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock

    async def ingest(self, provider: str, raw_body: bytes, events: Sequence[InboundEvent]) -> list[str]:
        """Store and apply each event (one transaction each); returns their outcomes.

        On SQLite the transactions of concurrent callbacks share one commit (`grouped`), each
        in its own savepoint; the outcome comes back only once it is committed either way.
        """
        db = self.store.db
        payload = raw_body.decode("utf-8", "replace")
        outcomes: list[str] = []
        for event in events:
            now = self.clock()
            if isinstance(db, SQLiteDatabase):
                work = partial(self._record, provider=provider, event=event, payload=payload, now=now)
                done = await db.grouped(work)
            else:
                async with db.transaction() as tx:
                    done = await self._record(tx, provider, event, payload, now)
            outcome = done.outcome
            self.metrics.courier_events.labels(provider, outcome).inc()
            if done.state is not None:
                self.metrics.state_changes.labels(done.state.value, outcome).inc()
            if done.position:
                self.metrics.driver_positions.labels("courier").inc()
            if outcome in (UNKNOWN_ORDER, UNKNOWN_STATUS):
                log.warning(
                    "%s callback %s for %s: %s", provider, event.native_status, event.external_id, outcome
                )
            outcomes.append(outcome)
        if Outcome.APPLIED.value in outcomes:
            self.store._notify()
        return outcomes

    async def _record(
        self, tx: Connection, provider: str, event: InboundEvent, payload: str, now: datetime
    ) -> _Recorded:
        """The event's inbox row and, for a known order and status, its transition."""
        at = event.occurred_at or now
        if event.state is not None and event.after_pickup is None:
            # The common case: one statement finds the booked order, locks it, brings its merchant.
            locked: list[int] = []
            update = to_update(provider, event, event.state, at)
            try:
                decision = await self.store.transition_in(
                    tx, _BOOKED, (provider, event.external_id), update, now, lambda o: locked.append(o.pk)
                )
            except NotFound:
                if locked:  # not the lookup: something after it (nothing may be half written)
                    raise
                order_pk, done = None, _Recorded(UNKNOWN_ORDER, None, False)
            else:
                order_pk = decision.order.pk
                done = await self._applied(tx, event, order_pk, event.state, decision.outcome.value, at)
        else:
            order_pk = await tx.fetchval(
                "SELECT order_pk FROM bookings WHERE provider = $1 AND external_id = $2",
                provider,
                event.external_id,
            )
            done = await self._apply(tx, provider, event, order_pk, at, now)
        await tx.execute(
            "INSERT INTO courier_inbox (provider, external_id, native_status, outcome, order_pk,"
            " payload, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            provider,
            event.external_id,
            event.native_status,
            done.outcome,
            order_pk,
            payload,
            now,
        )
        return done

    async def _apply(
        self,
        tx: Connection,
        provider: str,
        event: InboundEvent,
        order_pk: int | None,
        at: datetime,
        now: datetime,
    ) -> _Recorded:
        if order_pk is None:
            return _Recorded(UNKNOWN_ORDER, None, False)
        state = event.state
        if event.after_pickup is not None:
            # Lock now: the answer must hold until the transition below, in this transaction.
            row = await tx.fetchrow("SELECT state, hold_from FROM orders WHERE id = $1 FOR UPDATE", order_pk)
            assert row is not None, "a booking always has its order (foreign key)"
            state = resolve(event, State(row[0]), State(row[1]) if row[1] else None)
        if state is None:
            return await self._applied(tx, event, order_pk, None, UNKNOWN_STATUS, at)
        update = to_update(provider, event, state, at)
        decision = await self.store.transition_in(tx, "id = $1", (order_pk,), update, now)
        return await self._applied(tx, event, order_pk, state, decision.outcome.value, at)

    async def _applied(
        self,
        tx: Connection,
        event: InboundEvent,
        order_pk: int,
        state: State | None,
        outcome: str,
        at: datetime,
    ) -> _Recorded:
        """What goes with the outcome: the plate of a new driver, a position that is news."""
        if outcome == Outcome.APPLIED.value and state == State.DRIVER_ASSIGNED and event.plate:
            # The lifecycle's Update has no plate; it travels with the driver it belongs to.
            await tx.execute("UPDATE orders SET driver_plate = $2 WHERE id = $1", order_pk, event.plate)
        stored = outcome in _POSITION_OUTCOMES and event.lat is not None and event.long is not None
        if stored:
            assert event.lat is not None and event.long is not None
            await positions.add(tx, order_pk, [positions.Point(event.lat, event.long, at)], "courier")
        return _Recorded(outcome, state, stored)
