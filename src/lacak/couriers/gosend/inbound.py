"""GoSend `booking_event` webhooks: a static token header, one event per POST."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from lacak.couriers.inbound import (
    InboundEvent,
    MalformedPayload,
    check,
    configured,
    decode,
    driver,
    epoch,
    text,
)
from lacak.orders.models import State
from lacak.settings import CourierSettings

PROVIDER = "gosend"

# lifecycle.md, "Native → unified mapping", GoSend column (webhook `status`).
STATES: dict[str, State] = {
    "confirmed": State.FINDING_DRIVER,
    "allocated": State.DRIVER_ASSIGNED,
    "out_for_pickup": State.AT_PICKUP,
    "picked": State.PICKED_UP,
    "out_for_delivery": State.IN_TRANSIT,
    "on_hold": State.ON_HOLD,
    "delivered": State.DELIVERED,
    "cancelled": State.CANCELLED,
    "no_driver": State.NO_DRIVER,
    "rejected": State.FAILED,
}


class BookingEvent(msgspec.Struct, frozen=True):
    status: str | None = None
    booking_status: str | None = None
    booking_id: str | None = None
    entity_id: str | None = None  # carries the same AWB as booking_id
    event_id: str | None = None
    event_date: int | float | None = None  # epoch milliseconds
    type: str | None = None  # event name, e.g. DRIVER_NOT_FOUND
    driver_name: str | None = None
    driver_phone: str | None = None
    driver_photo_url: str | None = None
    live_tracking_url: str | None = None
    cancellation_reason: str | None = None


def verify(settings: CourierSettings, headers: Mapping[str, str], raw_body: bytes) -> None:
    """The token GoSend was given, verbatim in the configured header (`Authorization`)."""
    token = configured(settings.gosend_callback_token, PROVIDER, "LACAK_GOSEND_CALLBACK_TOKEN")
    check(headers.get(settings.gosend_callback_header.lower()), token, PROVIDER)


def parse(raw_body: bytes) -> list[InboundEvent]:
    e = decode(raw_body, BookingEvent)
    awb = text(e.booking_id) or text(e.entity_id)
    status = text(e.status) or text(e.booking_status)
    if awb is None or status is None:
        raise MalformedPayload("a GoSend booking_event needs booking_id (or entity_id) and status")
    # Without an event id the same status at the same time is the same event (lifecycle.md).
    dedupe = text(e.event_id) or f"{awb}:{status}:{e.event_date}"
    return [
        InboundEvent(
            external_id=awb,
            native_status=status,
            state=STATES.get(status.lower()),
            occurred_at=None if e.event_date is None else epoch(e.event_date, per_second=1000),
            dedupe_key=dedupe,
            native_text=text(e.type),
            driver=driver(e.driver_name, e.driver_phone, e.driver_photo_url),
            live_tracking_url=text(e.live_tracking_url),
            reason=text(e.cancellation_reason),
        )
    ]
