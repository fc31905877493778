"""The order as its customer sees it: one snapshot, the same in the page, the stream and `/state`.

Pure: built from records the store read. It holds only what the customer needs: no phone
numbers but the driver's masked one, no pickup address, no merchant data beyond names.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import polyline

from lacak.live.links import expires_at, mask_phone, zone_for
from lacak.orders.lifecycle import KA_STATUS, TERMINAL
from lacak.orders.models import HistoryEvent, Order, Outcome, State
from lacak.positions.store import Point

S = State

# The progress bar's steps; states off the happy path show the furthest step reached.
STEPS: dict[State, int] = {
    S.CREATED: 0,
    S.FINDING_DRIVER: 0,
    S.DRIVER_ASSIGNED: 1,
    S.AT_PICKUP: 2,
    S.PICKED_UP: 3,
    S.IN_TRANSIT: 4,
    S.DELIVERED: 5,
}
LAST_STEP = 5
_WARNING = frozenset({S.NO_DRIVER, S.ON_HOLD, S.RETURNING})
_FAILED = frozenset({S.CANCELLED, S.FAILED, S.RETURNED})
# The reason is shown with these (a courier's cancel text is meant for the merchant otherwise).
_WITH_NOTE = frozenset({S.NO_DRIVER, S.CANCELLED, S.FAILED, S.RETURNING, S.RETURNED, S.ON_HOLD})


def tone(state: State) -> str:
    if state == S.DELIVERED:
        return "done"
    if state in _FAILED:
        return "failed"
    return "warning" if state in _WARNING else "active"


def progress(state: State, applied: list[HistoryEvent]) -> int:
    if state in STEPS:
        return STEPS[state]
    return max((STEPS.get(e.state, 0) for e in applied), default=0)


class Clock:
    """Formats instants in the order's own zone (the customer is where the parcel is)."""

    def __init__(self, long: float) -> None:
        name, self.abbr = zone_for(long)
        self.zone = ZoneInfo(name)

    def iso(self, at: datetime) -> str:
        return at.astimezone(self.zone).isoformat(timespec="seconds")


def position(p: Point | None, clock: Clock) -> dict[str, Any] | None:
    # A courier may send anything it likes; JSON (and the map) has no place for NaN.
    if p is None or not (math.isfinite(p.lat) and math.isfinite(p.long)):
        return None
    return {"lat": p.lat, "long": p.long, "at": clock.iso(p.at)}


def site_path(url: str | None, own_origin: str) -> str | None:
    """lacak's own URLs as paths: the page is served from wherever the customer reached it
    (and its CSP lets images come from there, not from `http://` elsewhere)."""
    if url and own_origin and url.startswith(own_origin.rstrip("/") + "/"):
        return url[len(own_origin.rstrip("/")) :]
    return url


def snapshot(
    order: Order,
    plate: str | None,
    events: list[HistoryEvent],
    live: Point | None,
    ttl_hours: float,
    own_origin: str = "",
) -> dict[str, Any]:
    clock = Clock(order.origin.long)
    applied = [e for e in events if e.outcome == Outcome.APPLIED]
    d = order.driver
    expiry = expires_at(order, ttl_hours)
    return {
        "order_id": order.order_id,
        "service": order.service,
        "tracking_code": order.tracking_code,
        "seq": order.seq,
        "state": order.state.value,
        "status_code": KA_STATUS[order.state],
        "terminal": order.state in TERMINAL,
        "tone": tone(order.state),
        "progress": {"value": progress(order.state, applied), "max": LAST_STEP},
        "note": order.cancel_description if order.state in _WITH_NOTE else None,
        "zone": clock.abbr,
        "timeline": [{"state": e.state.value, "at": clock.iso(e.occurred_at)} for e in reversed(applied)],
        "driver": None
        if not d.name
        else {
            "name": d.name,
            "phone": mask_phone(d.phone),
            "plate": plate,
            "photo": site_path(d.photo, own_origin),
        },
        "origin": {"name": order.origin.name, "lat": order.origin.lat, "long": order.origin.long},
        "destination": {
            "name": order.destination.name,
            "address": order.destination.address,
            "lat": order.destination.lat,
            "long": order.destination.long,
        },
        "route": [list(p) for p in polyline.decode(order.poly_line)] if order.poly_line else [],
        # Only while the driver is on the way: afterwards the last point is nobody's business.
        "position": None if order.state in TERMINAL else position(live, clock),
        "expires_at": None if expiry is None else clock.iso(expiry),
    }
