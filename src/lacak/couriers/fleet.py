"""The operator's own drivers: booking just waits for a driver to accept in the driver API."""

from __future__ import annotations

from lacak.couriers.base import Booked
from lacak.couriers.deps import CourierDeps
from lacak.drivers import store as drivers
from lacak.orders.models import Order


class FleetProvider:
    name = "fleet"

    def __init__(self, deps: CourierDeps) -> None:
        self.deps = deps

    async def book(self, order: Order, generation: int) -> Booked:
        return Booked(external_id=None)  # the order shows up in /api/driver/v1/orders/available

    async def cancel(self, order: Order, external_id: str | None) -> None:
        await self._release(order)

    async def find_new_driver(self, order: Order, external_id: str | None, generation: int) -> Booked:
        # The previous driver loses the order; it is open to every driver again.
        await self._release(order)
        return Booked(external_id=None)

    async def _release(self, order: Order) -> None:
        # Conditional on the order's current state: if another driver accepted the reopened
        # order before this task ran, that driver's assignment stays.
        async with self.deps.db.transaction() as tx:
            await drivers.release(tx, order.pk)


def build(deps: CourierDeps) -> FleetProvider:
    return FleetProvider(deps)
