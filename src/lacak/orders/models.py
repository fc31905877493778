"""The order, payment and history records as the domain sees them (no I/O here)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class State(StrEnum):
    CREATED = "created"
    FINDING_DRIVER = "finding_driver"
    NO_DRIVER = "no_driver"
    DRIVER_ASSIGNED = "driver_assigned"
    AT_PICKUP = "at_pickup"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    ON_HOLD = "on_hold"
    RETURNING = "returning"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Source(StrEnum):
    API = "api"
    COURIER = "courier"
    DRIVER = "driver"
    SIMULATOR = "simulator"
    OPERATOR = "operator"


class Outcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # lower rank than the current state: recorded, changes nothing
    REFUSED = "refused"  # not a move the lifecycle allows: recorded, changes nothing
    DUPLICATE = "duplicate"  # the same event again: not recorded twice


class Place(msgspec.Struct, frozen=True, gc=False):
    name: str
    phone: str
    address: str
    address_note: str
    lat: float
    long: float


class Driver(msgspec.Struct, frozen=True, gc=False):
    name: str | None = None
    phone: str | None = None
    photo: str | None = None


# gc=False: orders hold only scalars and other gc-free structs, never cycles; not tracking
# them keeps the garbage collector off the lookup path.
class Order(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    pk: int
    merchant_id: int
    order_id: str
    payment_pk: int
    service: str
    service_type: str
    vehicle: str
    state: State
    hold_from: State | None = None
    seq: int
    origin: Place
    destination: Place
    item_name: str
    item_description: str
    item_price: int
    item_weight: int
    shipping_cost: int
    insurance: int | None = None
    admin_fee: int
    total_price: int
    tracking_code: str = ""
    driver: Driver = Driver()
    cancel_description: str | None = None
    live_tracking_url: str | None = None
    poly_line: str = ""
    created_at: datetime
    allocated_at: datetime | None = None
    finished_at: datetime | None = None
    canceled_at: datetime | None = None
    updated_at: datetime
    # The public page's capability token (`/t/{token}`); None for orders older than the page.
    live_token: str | None = None


class Payment(msgspec.Struct, frozen=True, kw_only=True):
    pk: int
    merchant_id: int
    payment_id: str
    amount: int
    status_code: int  # 0 paid, 9 unpaid (KiriminAja's codes)
    qr_content: str | None = None
    pay_time: datetime | None = None
    created_at: datetime

    @property
    def paid(self) -> bool:
        return self.status_code == PAID


PAID = 0
UNPAID = 9


class Update(msgspec.Struct, frozen=True, kw_only=True):
    """A request to move an order to `state`, from whatever source reported it."""

    state: State
    source: Source
    occurred_at: datetime
    native_code: str | None = None
    native_text: str | None = None
    dedupe_key: str | None = None
    driver: Driver | None = None
    tracking_code: str | None = None
    live_tracking_url: str | None = None
    reason: str | None = None
    lat: float | None = None
    long: float | None = None
    note: str | None = None


class HistoryEvent(msgspec.Struct, frozen=True, kw_only=True):
    order_pk: int
    seq: int
    state: State
    from_state: State | None
    outcome: Outcome
    source: Source
    native_code: str | None = None
    native_text: str | None = None
    dedupe_key: str | None = None
    lat: float | None = None
    long: float | None = None
    note: str | None = None
    occurred_at: datetime
    recorded_at: datetime
