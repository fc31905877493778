"""Webhook bodies: one order's state after a change, in the merchant's chosen dialect.

Pure: no I/O and no clock; the caller passes the event's id and time. Every state change is
sent in both dialects, including states KiriminAja itself never pushes (finding_driver,
on_hold, ...): receivers see every change, each payload carries the full current state plus
`seq`, and a receiver that switches on the method or status can skip the ones it does not know.

The bodies are msgspec Structs, not dicts: field order is the wire key order (exactly the
spec fixtures'), and building + encoding them is faster than the same dicts (this runs for
every delivery attempt).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from lacak.orders.lifecycle import KA_STATUS
from lacak.orders.models import Order, Payment, Place, State
from lacak.timeutil import wire

S = State


class Dialect(StrEnum):
    KIRIMINAJA_2024 = "kiriminaja-2024"
    KIRIMINAJA_2025 = "kiriminaja-2025"


DEFAULT = Dialect.KIRIMINAJA_2024

# -- kiriminaja-2024: {"method": "update_instant_packages", "data": {...}} ------------------

METHOD_2024 = "update_instant_packages"

# KiriminAja's own status strings; states it has no string for use their unified name.
STATUS_2024: dict[State, str] = {
    **{s: s.value for s in State},
    S.IN_TRANSIT: "sent",
    S.CANCELLED: "cancel",
    S.RETURNING: "return",
}

# The reason a merchant may act on: why the order stopped (cancel, no driver, failure).
_CANCEL_REASON = frozenset({S.CANCELLED, S.NO_DRIVER, S.FAILED})
# Recipient refused: the parcel is (or was) heading back to the sender.
_REJECTED = frozenset({S.RETURNING, S.RETURNED})


class _Driver(msgspec.Struct, gc=False):
    name: str | None
    phone: str | None
    image: str | None


class _Detail(msgspec.Struct, gc=False):
    weight: int
    width: None
    height: None
    length: None


class _Data2024(msgspec.Struct, gc=False):
    order_id: str
    status: str
    awb: str | None
    driver: _Driver
    shipping_price: int
    live_track_url: str | None
    detail: _Detail
    insurance: int | None
    insurance_amount: int | None
    service: str
    service_name: str
    poly_line: str | None
    event_date: str | None
    cancel_date: str | None
    cancel_reason: str | None
    rejected_date: str | None
    rejection_note: str | None
    seq: int
    event_id: str


class _Body2024(msgspec.Struct, gc=False):
    method: str
    data: _Data2024


# -- kiriminaja-2025: {"method", "data": [...], "payment": {...}, "packages": [...]} ---------

METHOD_2025: dict[State, str] = {
    # KiriminAja sends no event for these; "updated_packages" is ours, so receivers see every
    # change (a receiver switching on the method ignores an unknown one).
    **{s: "updated_packages" for s in State},
    S.DRIVER_ASSIGNED: "processed_packages",  # a driver and AWB are assigned
    S.AT_PICKUP: "processed_packages",
    S.PICKED_UP: "shipped_packages",
    S.IN_TRANSIT: "shipped_packages",
    S.DELIVERED: "finished_packages",
    S.CANCELLED: "canceled_packages",
    S.RETURNED: "returned_packages",
}

_SHIPPED = frozenset({S.PICKED_UP, S.IN_TRANSIT})
_REASON_2025 = _CANCEL_REASON | _REJECTED


class _Data2025(msgspec.Struct, gc=False):
    order_id: str
    awb: str
    date: str | None
    shipped_at: str | None
    finished_at: str | None
    returned_at: str | None
    rejected_at: str | None
    reason: str | None
    seq: int
    event_id: str


class _Payment(msgspec.Struct, gc=False):
    payment_id: str
    amount: int
    status_code: int
    qr_content: str | None
    pay_time: str | None


class _Point(msgspec.Struct, gc=False):
    name: str
    address: str
    phone: str
    latitude: float
    longitude: float


class _Package(msgspec.Struct, gc=False):
    awb: str
    order_id: str
    service: str
    service_type: str
    status: int
    live_tracking_url: str | None
    poly_line: str
    origin: _Point
    destination: _Point
    driver: _Driver


class _Body2025(msgspec.Struct, gc=False):
    method: str
    data: list[_Data2025]
    payment: _Payment | None
    packages: list[_Package]


_encode = msgspec.json.Encoder().encode


def render(
    dialect: Dialect,
    order: Order,
    *,
    event_id: str,
    event_time: datetime,
    payment: Payment | None,
    live_url: str | None = None,
) -> bytes:
    """The JSON body of one webhook for `order` (its state after the change).

    `live_url` is lacak's own live-tracking page, sent when the courier gave no link.
    """
    if dialect == Dialect.KIRIMINAJA_2025:  # == : a plain str from a row works too
        return _encode(_body_2025(order, event_id, event_time, payment, live_url))
    return _encode(_body_2024(order, event_id, event_time, live_url))


def _driver(o: Order) -> _Driver:
    d = o.driver
    return _Driver(d.name, d.phone, d.photo)


# The big structs below are built positionally, in their field order: keyword arguments cost
# over 1 µs of a 7 to 8 µs render; the tests pin every key and value.


def _body_2024(o: Order, event_id: str, event_time: datetime, live_url: str | None) -> _Body2024:
    state = o.state
    rejected = state in _REJECTED
    at = wire(event_time)  # formatted once: wire() is the costliest step of a render
    data = _Data2024(
        o.order_id,
        STATUS_2024[state],
        o.tracking_code or None,  # awb: null until the courier assigns one
        _driver(o),
        o.shipping_cost,  # shipping_price: what the tracking response shows as cost.shipping_cost
        o.live_tracking_url or live_url,
        # weight in grams, as pickup requests are stored (weight_kg is converted on the way in);
        # the order keeps no dimensions.
        _Detail(o.item_weight, None, None, None),
        # insurance: the premium the order pays (null when uninsured, as the tracking response's
        # cost.insurance); insurance_amount: the value it covers, the item price (what the
        # couriers are told to insure).
        o.insurance,
        o.item_price if o.insurance else None,
        o.service,
        o.service_type,  # service_name: "instant" / "sameday"
        o.poly_line or None,
        at,  # event_date
        wire(o.canceled_at) if state is S.CANCELLED else None,
        o.cancel_description if state in _CANCEL_REASON else None,
        # rejected_date / rejection_note: no separate refusal time or note is stored, the
        # refusal is this event.
        at if rejected else None,
        o.cancel_description if rejected else None,
        o.seq,
        event_id,
    )
    return _Body2024(METHOD_2024, data)


def _point(p: Place) -> _Point:
    return _Point(p.name, p.address, p.phone, p.lat, p.long)


def _body_2025(
    o: Order, event_id: str, event_time: datetime, payment: Payment | None, live_url: str | None
) -> _Body2025:
    state = o.state
    data = _Data2025(
        o.order_id,
        o.tracking_code,  # awb: "" until assigned, as in get_payment's packages
        wire(o.created_at),  # date
        # shipped_at: no pickup time is stored, the shipped events carry their own time.
        wire(event_time) if state in _SHIPPED else None,
        wire(o.finished_at) if state is S.DELIVERED else None,
        # returned_at: the lifecycle stamps finished_at on returned too; the event time if not.
        wire(o.finished_at or event_time) if state is S.RETURNED else None,
        wire(event_time) if state in _REJECTED else None,  # rejected_at
        o.cancel_description if state in _REASON_2025 else None,  # reason
        o.seq,
        event_id,
    )
    pay = None
    if payment is not None:
        p = payment
        pay = _Payment(p.payment_id, p.amount, p.status_code, p.qr_content, wire(p.pay_time))
    package = _Package(
        o.tracking_code,
        o.order_id,
        o.service,
        o.service_type,
        KA_STATUS[state],
        o.live_tracking_url or live_url,
        o.poly_line,
        _point(o.origin),
        _point(o.destination),
        _driver(o),
    )
    return _Body2025(METHOD_2025[state], [data], pay, [package])
