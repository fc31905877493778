"""Task handlers that talk to providers: book, find a new driver, cancel."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from lacak.couriers import bookings
from lacak.couriers.base import Booked, CourierError
from lacak.couriers.deps import CourierDeps
from lacak.couriers.effects import BOOK, CANCEL, REDRIVE
from lacak.couriers.registry import Providers
from lacak.jobs import store as jobs
from lacak.jobs.models import Task
from lacak.jobs.runner import Retry
from lacak.orders.models import Order, Source, State, Update
from lacak.storage.db import Connection

log = logging.getLogger("lacak.couriers")


class _BookingTask:
    """Shared by book and redrive: call the provider, record the booking, or give up."""

    kind = ""

    def __init__(self, deps: CourierDeps, providers: Providers) -> None:
        self.deps = deps
        self.providers = providers
        self.max_attempts = deps.settings.couriers.book_attempts

    async def call(
        self, provider_name: str, order: Order, external_id: str | None, generation: int
    ) -> Booked:
        raise NotImplementedError

    async def run(self, task: Task) -> None:
        d = self.deps
        assert task.order_pk is not None
        order = await d.store.order_by_pk(task.order_pk)
        booking = await bookings.get(d.db, task.order_pk)
        current = (
            order is not None
            and booking is not None
            and order.state == State.FINDING_DRIVER
            and booking.generation == task.payload.get("generation")
        )
        if not current:
            await self._finish(task)  # superseded: cancelled, re-booked, or moved on
            return
        assert order is not None and booking is not None
        try:
            booked = await self.call(booking.provider, order, booking.external_id, booking.generation)
        except CourierError as exc:
            if exc.permanent:
                await self.give_up(task, str(exc))
                return
            raise Retry(str(exc), exc.retry_after) from exc
        now = d.clock()
        async with d.db.transaction() as tx:
            latest = await bookings.get(tx, order.pk)
            if latest is not None and latest.status == "cancelled":
                # Voided while the courier was booking: the cancel task saw no id yet, so cancel
                # the booking that now exists instead of leaving it live at the courier.
                await jobs.enqueue(tx, CANCEL, order.pk, now, {"external_id": booked.external_id}, now)
                await jobs.complete(tx, task, now)
                return
            await bookings.booked(tx, order.pk, booked.external_id, now)
            if booked.live_tracking_url:
                await _set_live_url(tx, order.pk, booked.live_tracking_url, now)
            for f in booked.follow_up:
                due = now + _seconds(f.delay)
                await jobs.enqueue(
                    tx, f.kind, order.pk, due, {**f.payload, "generation": booking.generation}, now
                )
            await jobs.complete(tx, task, now)

    async def _finish(self, task: Task) -> None:
        async with self.deps.db.transaction() as tx:
            await jobs.complete(tx, task, self.deps.clock())

    async def give_up(self, task: Task, error: str) -> None:
        """Out of attempts (or refused for good): the order becomes no_driver, with the reason."""
        d, now = self.deps, self.deps.clock()
        assert task.order_pk is not None
        order = await d.store.order_by_pk(task.order_pk)
        async with d.db.transaction() as tx:
            await bookings.set_status(tx, task.order_pk, "failed", error[:2000], now)
            if order is not None and order.state == State.FINDING_DRIVER:
                update = Update(
                    state=State.NO_DRIVER,
                    source=Source.COURIER,
                    occurred_at=now,
                    reason=f"courier booking failed: {error}"[:500],
                )
                await d.store.transition_in(tx, "id = $1", (task.order_pk,), update, now)
            await jobs.complete(tx, task, now)
        d.store._notify()


class BookTask(_BookingTask):
    kind = BOOK

    async def call(
        self, provider_name: str, order: Order, external_id: str | None, generation: int
    ) -> Booked:
        return await self.providers.get(provider_name).book(order, generation)


class RedriveTask(_BookingTask):
    kind = REDRIVE

    async def call(
        self, provider_name: str, order: Order, external_id: str | None, generation: int
    ) -> Booked:
        return await self.providers.get(provider_name).find_new_driver(order, external_id, generation)


class CancelTask:
    kind = CANCEL

    def __init__(self, deps: CourierDeps, providers: Providers) -> None:
        self.deps = deps
        self.providers = providers
        self.max_attempts = deps.settings.couriers.book_attempts

    async def run(self, task: Task) -> None:
        d = self.deps
        assert task.order_pk is not None
        order = await d.store.order_by_pk(task.order_pk)
        booking = await bookings.get(d.db, task.order_pk)
        if order is not None and booking is not None:
            try:
                await self.providers.get(booking.provider).cancel(order, task.payload.get("external_id"))
            except CourierError as exc:
                if not exc.permanent:
                    raise Retry(str(exc), exc.retry_after) from exc
                log.warning("courier refused cancel", extra={"order_pk": order.pk, "error": str(exc)})
        async with d.db.transaction() as tx:
            await jobs.complete(tx, task, d.clock())

    async def give_up(self, task: Task, error: str) -> None:
        log.error("courier cancel given up", extra={"order_pk": task.order_pk, "error": error})
        async with self.deps.db.transaction() as tx:
            await jobs.complete(tx, task, self.deps.clock())


async def _set_live_url(tx: Connection, order_pk: int, url: str, now: datetime) -> None:
    # Not a state change (no seq, no webhook); updated_at moves so the tracking ETag does.
    await tx.execute(
        # tracking_json = NULL: the stored view no longer matches; lookups render from columns.
        "UPDATE orders SET live_tracking_url = $2, updated_at = $3, tracking_json = NULL WHERE id = $1"
        " AND live_tracking_url IS DISTINCT FROM $2",
        order_pk,
        url,
        now,
    )


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
