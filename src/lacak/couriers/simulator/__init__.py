"""The built-in courier simulator: the default provider of every service (a sandbox courier).

Booking enqueues the trip's first step (`sim.step`, search); each step enqueues the next.
See `trip` for the steps and `steps` for how each runs exactly once.
"""

from __future__ import annotations

from lacak.couriers.base import Booked, FollowUp
from lacak.couriers.deps import CourierDeps
from lacak.couriers.simulator import trip
from lacak.couriers.simulator.steps import KIND, SimStep
from lacak.jobs.runner import Handler
from lacak.orders.models import Order


class SimulatorProvider:
    name = "simulator"

    def __init__(self, deps: CourierDeps) -> None:
        self.deps = deps

    def _search(self, order: Order, generation: int) -> Booked:
        payload, delay = trip.first_step(self.deps.settings.sim, order.pk, generation)
        return Booked(external_id=f"SIM-{order.pk}", follow_up=[FollowUp(KIND, delay, payload)])

    async def book(self, order: Order, generation: int) -> Booked:
        return self._search(order, generation)

    async def cancel(self, order: Order, external_id: str | None) -> None:
        return None  # the next step finds the order cancelled and ends the trip

    async def find_new_driver(self, order: Order, external_id: str | None, generation: int) -> Booked:
        # A new search under the new generation; the old trip's steps see it and stop.
        return self._search(order, generation)


def build(deps: CourierDeps) -> SimulatorProvider:
    return SimulatorProvider(deps)


def handlers(deps: CourierDeps, providers: object) -> list[Handler]:
    return [SimStep(deps)]
