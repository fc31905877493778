"""The provider interface and its one error type."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from lacak.orders.models import Order


class CourierError(Exception):
    """A courier call failed.

    `permanent` says retrying cannot help (refused request, bad credentials): the booking
    gives up at once. Otherwise it is retried with backoff, honouring `retry_after`.
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class FollowUp(msgspec.Struct, frozen=True):
    """A task to enqueue in the same transaction that records the booking."""

    kind: str
    delay: float  # seconds from now
    payload: dict[str, Any]


class Booked(msgspec.Struct, frozen=True):
    external_id: str | None  # the courier's id for the booking (GoSend orderNo, Grab deliveryID, …)
    live_tracking_url: str | None = None
    follow_up: list[FollowUp] = []


class Provider(Protocol):
    name: str

    async def book(self, order: Order, generation: int) -> Booked:
        """Hand the order to the courier. Called after the order is committed, with retries."""
        ...

    async def cancel(self, order: Order, external_id: str | None) -> None: ...

    async def find_new_driver(self, order: Order, external_id: str | None, generation: int) -> Booked:
        """Ask for another driver; may return a new booking (a new external id)."""
        ...
