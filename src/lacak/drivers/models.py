"""Driver records and the shapes of the driver API's request bodies (no I/O here)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from lacak.orders.lifecycle import TERMINAL
from lacak.orders.models import State

Number = int | float

# The states a driver may report; everything else (cancel, hold) belongs to merchant or operator.
REPORTABLE = frozenset(
    {
        State.AT_PICKUP,
        State.PICKED_UP,
        State.IN_TRANSIT,
        State.DELIVERED,
        State.RETURNING,
        State.RETURNED,
        State.FAILED,
    }
)

# An order is in its driver's hands from acceptance until it ends. In any other state
# (finding_driver after find-new-driver, cancelled) an `assignments` row is a leftover.
CARRIED = frozenset(
    {
        State.DRIVER_ASSIGNED,
        State.AT_PICKUP,
        State.PICKED_UP,
        State.IN_TRANSIT,
        State.ON_HOLD,
        State.RETURNING,
    }
)
# Where the assigned driver may still post: a finished order answers a retried post as a
# duplicate, or refuses a new move with its current state named.
HELD = CARRIED | TERMINAL


class DriverAccount(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    phone: str
    plate: str | None = None
    photo: str | None = None
    lat: float | None = None
    long: float | None = None
    position_at: datetime | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class StatusRequest(msgspec.Struct, frozen=True):
    status: str
    note: str | None = None


class PointIn(msgspec.Struct, frozen=True):
    lat: Number
    long: Number
    # ISO 8601 with an offset (`2026-01-01T10:00:00+07:00`, `…Z`) or epoch milliseconds.
    at: datetime | int
    accuracy: Number | None = None


class LocationRequest(msgspec.Struct, frozen=True):
    points: list[PointIn] = []


class Located(msgspec.Struct, frozen=True):
    """What one location batch did: the driver's new live position and the orders it fed."""

    points: int
    lat: float
    long: float
    at: datetime
    orders: list[int]
