"""What a state change means for the courier, written in the change's own transaction.

A paid order gets a booking and a `courier.book` task; find-new-driver gets a new booking
generation and a `courier.redrive` task; a merchant or operator cancel gets `courier.cancel`.
The tasks run after commit, so a slow or failing courier never fails the merchant's request.
"""

from __future__ import annotations

from lacak.couriers import bookings
from lacak.jobs import store as jobs
from lacak.orders.models import Source, State
from lacak.settings import CourierSettings
from lacak.storage.db import Connection
from lacak.storage.store import Change

BOOK = "courier.book"
REDRIVE = "courier.redrive"
CANCEL = "courier.cancel"
_REOPENED_FROM = (State.NO_DRIVER, State.DRIVER_ASSIGNED, State.AT_PICKUP)


class CourierEffects:
    def __init__(self, settings: CourierSettings) -> None:
        self.providers = settings.providers

    async def __call__(self, tx: Connection, change: Change) -> None:
        before, after = change.before.state, change.after.state
        pk, now = change.after.pk, change.now
        if after == State.FINDING_DRIVER and before == State.CREATED:
            await bookings.create(tx, pk, self.providers[change.after.service], now)
            await jobs.enqueue(tx, BOOK, pk, now, {"generation": 1}, now)
        elif after == State.FINDING_DRIVER and before in _REOPENED_FROM and _asked(change):
            generation = await bookings.next_generation(tx, pk, now)
            await jobs.enqueue(tx, REDRIVE, pk, now, {"generation": generation}, now)
        elif after == State.CANCELLED and _asked(change):
            booking = await bookings.get(tx, pk)
            if booking is not None and booking.status in ("pending", "booked"):
                await bookings.set_status(tx, pk, "cancelled", None, now)
                await jobs.enqueue(tx, CANCEL, pk, now, {"external_id": booking.external_id}, now)


def _asked(change: Change) -> bool:
    """Only the merchant or the operator asks the courier; a courier's own news needs no reply."""
    return change.event.source in (Source.API, Source.OPERATOR)
