"""The built-in courier simulator: the default provider of every service (a sandbox courier)."""

from __future__ import annotations

from lacak.couriers.base import Booked
from lacak.couriers.deps import CourierDeps
from lacak.jobs.runner import Handler
from lacak.orders.models import Order


class SimulatorProvider:
    name = "simulator"

    def __init__(self, deps: CourierDeps) -> None:
        self.deps = deps

    async def book(self, order: Order, generation: int) -> Booked:
        return Booked(external_id=f"SIM-{order.pk}")

    async def cancel(self, order: Order, external_id: str | None) -> None:
        return None

    async def find_new_driver(self, order: Order, external_id: str | None, generation: int) -> Booked:
        return Booked(external_id=external_id)


def build(deps: CourierDeps) -> SimulatorProvider:
    return SimulatorProvider(deps)


def handlers(deps: CourierDeps, providers: object) -> list[Handler]:
    return []
