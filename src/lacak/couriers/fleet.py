"""The operator's own drivers: booking just waits for a driver to accept in the driver API."""

from __future__ import annotations

from lacak.couriers.base import Booked
from lacak.couriers.deps import CourierDeps
from lacak.orders.models import Order


class FleetProvider:
    name = "fleet"

    def __init__(self, deps: CourierDeps) -> None:
        self.deps = deps

    async def book(self, order: Order, generation: int) -> Booked:
        return Booked(external_id=None)  # the order shows up in /api/driver/v1/orders/available

    async def cancel(self, order: Order, external_id: str | None) -> None:
        async with self.deps.db.transaction() as tx:
            await tx.execute("DELETE FROM assignments WHERE order_pk = $1", order.pk)

    async def find_new_driver(self, order: Order, external_id: str | None, generation: int) -> Booked:
        # The previous driver loses the order; it is open to every driver again.
        await self.cancel(order, external_id)
        return Booked(external_id=None)


def build(deps: CourierDeps) -> FleetProvider:
    return FleetProvider(deps)
