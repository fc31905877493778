"""Rows to domain records and back. Column lists live here, next to their mapping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lacak.merchants.models import Merchant, PaymentMode
from lacak.orders.models import (
    Driver,
    HistoryEvent,
    Order,
    Outcome,
    Payment,
    Place,
    Source,
    State,
)
from lacak.storage.db import Row


def as_dt(value: datetime | str | None) -> datetime | None:
    # SQLite hands back the stored wire text; PostgreSQL an aware datetime.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _dt(value: datetime | str) -> datetime:
    out = as_dt(value)
    assert out is not None
    return out


_PLACE = ("name", "phone", "address", "address_note", "lat", "long")

ORDER_COLUMNS = (
    "id, merchant_id, order_id, payment_pk, service, service_type, vehicle, state, hold_from, seq, "
    + ", ".join(f"{side}_{f}" for side in ("origin", "destination") for f in _PLACE)
    + ", item_name, item_description, item_price, item_weight, shipping_cost, insurance,"
    " admin_fee, total_price, tracking_code, driver_name, driver_phone, driver_photo,"
    " cancel_description, live_tracking_url, poly_line, created_at, allocated_at, finished_at,"
    " canceled_at, updated_at, live_token"
)


_STATES = State._value2member_map_


def order_from_row(row: Row | tuple[Any, ...]) -> Order:
    # Positional unpacking (in ORDER_COLUMNS order): this runs on every tracking lookup, and
    # by-name access on sqlite3.Row costs more than the query itself.
    (
        pk,
        merchant_id,
        order_id,
        payment_pk,
        service,
        service_type,
        vehicle,
        state,
        hold,
        seq,
        o_name,
        o_phone,
        o_address,
        o_note,
        o_lat,
        o_long,
        d_name,
        d_phone,
        d_address,
        d_note,
        d_lat,
        d_long,
        item_name,
        item_description,
        item_price,
        item_weight,
        shipping_cost,
        insurance,
        admin_fee,
        total_price,
        tracking_code,
        driver_name,
        driver_phone,
        driver_photo,
        cancel_description,
        live_tracking_url,
        poly_line,
        created_at,
        allocated_at,
        finished_at,
        canceled_at,
        updated_at,
        live_token,
    ) = row
    return Order(
        pk=pk,
        merchant_id=merchant_id,
        order_id=order_id,
        payment_pk=payment_pk,
        service=service,
        service_type=service_type,
        vehicle=vehicle,
        state=_STATES[state],  # type: ignore[arg-type]  # the map holds State members
        hold_from=_STATES[hold] if hold else None,  # type: ignore[arg-type]  # as above
        seq=seq,
        origin=Place(o_name, o_phone, o_address, o_note, o_lat, o_long),
        destination=Place(d_name, d_phone, d_address, d_note, d_lat, d_long),
        item_name=item_name,
        item_description=item_description,
        item_price=item_price,
        item_weight=item_weight,
        shipping_cost=shipping_cost,
        insurance=insurance,
        admin_fee=admin_fee,
        total_price=total_price,
        tracking_code=tracking_code,
        driver=Driver(driver_name, driver_phone, driver_photo),
        cancel_description=cancel_description,
        live_tracking_url=live_tracking_url,
        poly_line=poly_line,
        created_at=_dt(created_at),
        allocated_at=as_dt(allocated_at),
        finished_at=as_dt(finished_at),
        canceled_at=as_dt(canceled_at),
        updated_at=_dt(updated_at),
        live_token=live_token,
    )


def order_values(o: Order) -> tuple[Any, ...]:
    """Values for ORDER_COLUMNS minus `id`, in order."""
    return (
        o.merchant_id,
        o.order_id,
        o.payment_pk,
        o.service,
        o.service_type,
        o.vehicle,
        o.state.value,
        o.hold_from.value if o.hold_from else None,
        o.seq,
        *(getattr(o.origin, f) for f in _PLACE),
        *(getattr(o.destination, f) for f in _PLACE),
        o.item_name,
        o.item_description,
        o.item_price,
        o.item_weight,
        o.shipping_cost,
        o.insurance,
        o.admin_fee,
        o.total_price,
        o.tracking_code,
        o.driver.name,
        o.driver.phone,
        o.driver.photo,
        o.cancel_description,
        o.live_tracking_url,
        o.poly_line,
        o.created_at,
        o.allocated_at,
        o.finished_at,
        o.canceled_at,
        o.updated_at,
        o.live_token,
    )


PAYMENT_COLUMNS = "id, merchant_id, payment_id, amount, status_code, qr_content, pay_time, created_at"


def payment_from_row(row: Row) -> Payment:
    return Payment(
        pk=row["id"],
        merchant_id=row["merchant_id"],
        payment_id=row["payment_id"],
        amount=row["amount"],
        status_code=row["status_code"],
        qr_content=row["qr_content"],
        pay_time=as_dt(row["pay_time"]),
        created_at=_dt(row["created_at"]),
    )


MERCHANT_COLUMNS = "id, name, payment_mode, callback_url, webhook_dialect, created_at"


def merchant_from_row(row: Row) -> Merchant:
    return Merchant(
        id=row["id"],
        name=row["name"],
        payment_mode=PaymentMode(row["payment_mode"]),
        callback_url=row["callback_url"],
        webhook_dialect=row["webhook_dialect"],
        created_at=_dt(row["created_at"]),
    )


EVENT_COLUMNS = (
    "order_pk, seq, state, from_state, outcome, source, native_code, native_text, dedupe_key,"
    " lat, long, note, occurred_at, recorded_at"
)


def event_values(e: HistoryEvent) -> tuple[Any, ...]:
    return (
        e.order_pk,
        e.seq,
        e.state.value,
        e.from_state.value if e.from_state else None,
        e.outcome.value,
        e.source.value,
        e.native_code,
        e.native_text,
        e.dedupe_key,
        e.lat,
        e.long,
        e.note,
        e.occurred_at,
        e.recorded_at,
    )


def event_from_row(row: Row) -> HistoryEvent:
    prev = row["from_state"]
    return HistoryEvent(
        order_pk=row["order_pk"],
        seq=row["seq"],
        state=State(row["state"]),
        from_state=State(prev) if prev else None,
        outcome=Outcome(row["outcome"]),
        source=Source(row["source"]),
        native_code=row["native_code"],
        native_text=row["native_text"],
        dedupe_key=row["dedupe_key"],
        lat=row["lat"],
        long=row["long"],
        note=row["note"],
        occurred_at=_dt(row["occurred_at"]),
        recorded_at=_dt(row["recorded_at"]),
    )


def placeholders(n: int, start: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n))
