"""Borzo callbacks: `X-DV-Signature` = hex HMAC-SHA256 of the raw body, checked before parsing."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

import msgspec

from lacak.couriers.inbound import (
    InboundEvent,
    MalformedPayload,
    check,
    configured,
    decode,
    driver,
    iso,
    position,
    text,
)
from lacak.orders.models import State
from lacak.settings import CourierSettings

PROVIDER = "borzo"

# lifecycle.md, "Native → unified mapping", Borzo column: delivery statuses, plus the order
# statuses `available` and `reactivated` it names. Order and delivery statuses share one table:
# where the same word is both (`canceled`, `delayed`) it means the same thing.
STATES: dict[str, State] = {
    "planned": State.FINDING_DRIVER,
    "available": State.FINDING_DRIVER,
    "reactivated": State.FINDING_DRIVER,
    "courier_assigned": State.DRIVER_ASSIGNED,
    "courier_departed": State.DRIVER_ASSIGNED,
    "courier_at_pickup": State.AT_PICKUP,
    "parcel_picked_up": State.PICKED_UP,
    "courier_arrived": State.IN_TRANSIT,
    "delayed": State.ON_HOLD,
    "return_courier_picked_up": State.RETURNING,
    "finished": State.DELIVERED,
    "return_finished": State.RETURNED,
    "canceled": State.CANCELLED,
}


class Courier(msgspec.Struct, frozen=True):
    name: str | None = None
    middlename: str | None = None
    surname: str | None = None
    phone: str | None = None
    photo_url: str | None = None
    latitude: float | str | None = None
    longitude: float | str | None = None


class Subject(msgspec.Struct, frozen=True):
    """The `order` or `delivery` object of a callback (the fields lacak reads from either)."""

    status: str
    order_id: int | str | None = None
    delivery_id: int | str | None = None
    client_order_id: str | None = None
    status_description: str | None = None
    courier: Courier | None = None


class Callback(msgspec.Struct, frozen=True):
    event_datetime: str
    event_type: str | None = None  # order_created, order_changed, delivery_created, delivery_changed
    order: Subject | None = None
    delivery: Subject | None = None


def verify(settings: CourierSettings, headers: Mapping[str, str], raw_body: bytes) -> None:
    secret = configured(settings.borzo_callback_secret, PROVIDER, "LACAK_BORZO_CALLBACK_SECRET")
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    given = headers.get("x-dv-signature")
    check(None if given is None else given.strip().lower(), expected, PROVIDER)


def _name(c: Courier) -> str | None:
    return text(" ".join(part for part in (c.name, c.middlename, c.surname) if part))


def parse(raw_body: bytes) -> list[InboundEvent]:
    e = decode(raw_body, Callback)
    kind, subject = ("delivery", e.delivery) if e.delivery is not None else ("order", e.order)
    if subject is None:
        raise MalformedPayload("a Borzo callback needs an order or a delivery object")
    # The order id is what create-order returned (the booking's external id); a delivery
    # callback carries it too.
    own_id = subject.delivery_id if kind == "delivery" else subject.order_id
    external = subject.order_id if subject.order_id is not None else own_id
    if external is None:
        raise MalformedPayload(f"a Borzo {kind} callback needs order_id")
    c = subject.courier or Courier()
    lat, long = position(c.latitude, c.longitude)
    return [
        InboundEvent(
            external_id=str(external),
            native_status=subject.status,
            state=STATES.get(subject.status.strip().lower()),
            occurred_at=iso(e.event_datetime),
            dedupe_key=f"{kind}:{own_id}:{subject.status}:{e.event_datetime}",
            merchant_order_id=text(subject.client_order_id),
            native_text=text(subject.status_description),
            driver=driver(_name(c), c.phone, c.photo_url),
            lat=lat,
            long=long,
        )
    ]
