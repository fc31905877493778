"""Webhook records as the rest of lacak sees them (no I/O here)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from lacak.orders.models import Payment


class Status(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (the first, or a retry)
    DELIVERED = "delivered"
    FAILED = "failed"  # retries spent; `recover` sends it again
    PAUSED = "paused"  # the endpoint is disabled; re-enabling it resumes these
    NO_ENDPOINT = "no_endpoint"  # the merchant had no callback URL when the change happened


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One claimed delivery with everything needed to send it."""

    id: int
    event_id: str
    merchant_id: int
    seq: int
    attempt: int  # the number of the attempt being made (the claim counted it)
    payload: str  # the order as it was right after the change (msgspec JSON of `Order`)
    created_at: datetime
    manual: bool
    url: str | None
    dialect: str
    key_enc: str | None
    secret_enc: str | None
    old_secret_enc: str | None
    old_secret_until: datetime | None
    failing_since: datetime | None
    disabled: bool
    payment: Payment | None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery as listed to merchants and operators."""

    event_id: str
    merchant_id: int
    order_id: str
    seq: int
    state: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    trigger: str
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error_class: str | None
    error: str | None
    response_body: str | None
    outcome: str


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    merchant_id: int
    url: str | None
    dialect: str
    has_secret: bool
    rotating_until: datetime | None  # the old secret still signs until then
    failing_since: datetime | None
    held_until: datetime | None  # unreachable: its new events are scheduled after then
    disabled_at: datetime | None
    disabled_reason: str | None
