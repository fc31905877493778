"""GrabExpress tracking webhooks: the partner's secret verbatim in `Authorization`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec

from lacak.couriers.inbound import InboundEvent, check, configured, decode, driver, epoch, iso, position, text
from lacak.orders.models import State
from lacak.settings import CourierSettings

PROVIDER = "grab_express"

# lifecycle.md, "Native → unified mapping", GrabExpress column. `CANCELLED` is the webhook's
# spelling in Grab's state diagram (a typo per Grab's FAQ, but sent): an alias of `CANCELED`.
STATES: dict[str, State] = {
    "QUEUEING": State.FINDING_DRIVER,
    "ALLOCATING": State.FINDING_DRIVER,
    "PENDING_PICKUP": State.DRIVER_ASSIGNED,
    "PICKING_UP": State.AT_PICKUP,
    "PENDING_DROP_OFF": State.PICKED_UP,
    "IN_DELIVERY": State.IN_TRANSIT,
    "IN_RETURN": State.RETURNING,
    "COMPLETED": State.DELIVERED,
    "RETURNED": State.RETURNED,
    "CANCELED": State.CANCELLED,
    "CANCELLED": State.CANCELLED,
    "FAILED": State.NO_DRIVER,  # before pickup; after it, AFTER_PICKUP
}
AFTER_PICKUP: dict[str, State] = {"FAILED": State.FAILED}


class GrabDriver(msgspec.Struct, frozen=True):
    name: str | None = None
    phone: str | None = None
    licensePlate: str | None = None
    photoURL: str | None = None
    currentLat: float | None = None
    currentLng: float | None = None


class TrackingEvent(msgspec.Struct, frozen=True):
    deliveryID: str
    status: str
    merchantOrderID: str | None = None
    timestamp: int | float | str | None = None  # Unix seconds; ISO 8601 accepted too
    trackURL: str | None = None
    failedReason: str | None = None  # "6|Could not find driver"
    driver: GrabDriver | None = None


def verify(settings: CourierSettings, headers: Mapping[str, str], raw_body: bytes) -> None:
    token = configured(settings.grab_callback_token, PROVIDER, "LACAK_GRAB_CALLBACK_TOKEN")
    check(headers.get("authorization"), token, PROVIDER)


def occurred_at(value: float | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return epoch(int(value)) if value.strip().isdigit() else iso(value)
    return epoch(value)


def _reason(failed: str | None) -> str | None:
    """`6|Could not find driver` → `Could not find driver` (the code stays in native_text)."""
    found = text(failed)
    return None if found is None else text(found.partition("|")[2]) or found


def parse(raw_body: bytes) -> list[InboundEvent]:
    e = decode(raw_body, TrackingEvent)
    d = e.driver or GrabDriver()
    status = e.status.strip().upper()
    lat, long = position(d.currentLat, d.currentLng)
    return [
        InboundEvent(
            external_id=e.deliveryID,
            native_status=e.status,
            state=STATES.get(status),
            after_pickup=AFTER_PICKUP.get(status),
            occurred_at=occurred_at(e.timestamp),
            dedupe_key=f"{e.deliveryID}:{e.status}:{e.timestamp}",
            merchant_order_id=text(e.merchantOrderID),
            native_text=text(e.failedReason),
            driver=driver(d.name, d.phone, d.photoURL),
            plate=text(d.licensePlate),
            live_tracking_url=text(e.trackURL),
            reason=_reason(e.failedReason),
            lat=lat,
            long=long,
        )
    ]
