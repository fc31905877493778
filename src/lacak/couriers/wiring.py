"""The courier side of lacak, assembled: effects on the store, providers, the task runner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from lacak.couriers.deps import CourierDeps
from lacak.couriers.effects import CourierEffects
from lacak.couriers.registry import Providers
from lacak.couriers.tasks import BookTask, CancelTask, RedriveTask
from lacak.jobs.runner import Handler, Runner
from lacak.metrics import Metrics
from lacak.settings import Settings
from lacak.storage.db import Database
from lacak.storage.store import Store
from lacak.timeutil import utcnow


@dataclass(slots=True)
class Couriers:
    deps: CourierDeps
    providers: Providers
    runner: Runner
    _stop: asyncio.Event | None = None
    _loop: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings, db: Database, store: Store, metrics: Metrics) -> Couriers:
        deps = CourierDeps(settings=settings, db=db, store=store, clock=utcnow)
        store.effects.append(CourierEffects(settings.couriers))
        providers = Providers(deps)
        handlers: list[Handler] = [
            BookTask(deps, providers),
            RedriveTask(deps, providers),
            CancelTask(deps, providers),
            *providers.extra_handlers(),
        ]
        runner = Runner(db, handlers, utcnow, lease=timedelta(seconds=settings.task_lease))
        store.listeners.append(runner.wake)
        return cls(deps, providers, runner)

    def start(self) -> None:
        """Run the task loop in the background of this process."""
        self._stop = asyncio.Event()
        self._loop = asyncio.create_task(self.runner.run_forever(self._stop), name="lacak-tasks")

    async def close(self) -> None:
        if self._stop is not None and self._loop is not None:
            self._stop.set()
            await self._loop
        await self.providers.close()
