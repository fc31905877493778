"""The `sim.step` task: runs one step of a simulated trip, exactly once.

Everything a step does lands in one transaction: the order is locked, the step is planned
from the locked order and the task's payload (`trip.step`, pure), its state change goes
through the store (history + webhook outbox + effects), its positions go to the trail, the
next step is enqueued and this task is completed. `complete` is fenced by the task's lease, so
a worker that lost its claim rolls all of it back: with several processes, or after a crash and
a restart, no step is ever applied twice and none is lost.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from lacak.couriers import bookings
from lacak.couriers.deps import CourierDeps
from lacak.couriers.simulator import trip
from lacak.jobs import store as jobs
from lacak.jobs.models import Task
from lacak.orders.lifecycle import TERMINAL
from lacak.orders.models import Order, Outcome
from lacak.positions import store as positions
from lacak.storage.db import Connection
from lacak.storage.rows import ORDER_COLUMNS, order_from_row

log = logging.getLogger("lacak.simulator")

KIND = "sim.step"
_LOCK_ORDER = f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"  # noqa: S608  (constant columns)


class SimStep:
    kind = KIND
    max_attempts = 5

    def __init__(self, deps: CourierDeps) -> None:
        self.deps = deps
        self.avatar_base = f"{deps.settings.base_url}/avatars"

    async def run(self, task: Task) -> None:
        d = self.deps
        assert task.order_pk is not None
        now = d.clock()
        async with d.db.transaction() as tx:
            order = await self._current(tx, task)
            if order is not None:
                ctx = trip.Ctx(
                    sim=d.settings.sim,
                    order=order,
                    generation=task.payload["generation"],
                    n=task.payload["n"],
                    now=now,
                    avatar_base=self.avatar_base,
                )
                await self._carry_out(tx, ctx, trip.step(ctx, task.payload))
            await jobs.complete(tx, task, now)
        d.store._notify()

    async def _current(self, tx: Connection, task: Task) -> Order | None:
        """The locked order if this step is still the trip's, else None (the trip is over).

        A trip ends quietly when the order is gone or finished, when find-new-driver started a
        new generation, or when someone else (an operator, the merchant) moved the order away
        from the state this trip left it in: the simulator never fights a manual override.
        """
        row = await tx.fetchrow(_LOCK_ORDER, task.order_pk)
        if row is None:
            return None
        order = order_from_row(row)
        booking = await bookings.get(tx, order.pk)
        if order.state in TERMINAL or booking is None or booking.generation != task.payload["generation"]:
            return None
        if order.state.value != task.payload["expect"]:
            log.info("simulated trip handed over", extra={"order_pk": order.pk, "state": order.state.value})
            return None
        return order

    async def _carry_out(self, tx: Connection, c: trip.Ctx, plan: trip.Plan) -> None:
        d, pk = self.deps, c.order.pk
        if plan.update is not None:
            decision = await d.store.transition_in(tx, "id = $1", (pk,), plan.update, c.now)
            if decision.outcome != Outcome.APPLIED:  # cannot happen under the lock; never loop on it
                log.warning("simulated step not applied", extra={"order_pk": pk, "outcome": decision.outcome})
                return
            if plan.plate is not None:
                await tx.execute("UPDATE orders SET driver_plate = $2 WHERE id = $1", pk, plan.plate)
        if plan.points:
            await positions.add(tx, pk, plan.points, "simulator")
            await positions.prune(tx, pk)
        if plan.next is not None:
            due = c.now + timedelta(seconds=plan.delay)
            await jobs.enqueue(tx, KIND, pk, due, plan.next, c.now)

    async def give_up(self, task: Task, error: str) -> None:
        # Only a persistent database or programming error gets here: the order stays where it
        # is (an operator can move it on) rather than the step looping for ever.
        log.error("simulated step given up", extra={"order_pk": task.order_pk, "error": error})
        async with self.deps.db.transaction() as tx:
            await jobs.complete(tx, task, self.deps.clock())
