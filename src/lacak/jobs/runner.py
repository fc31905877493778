"""The loop that claims due tasks and runs their handlers.

It runs inside `lacak serve` (every worker process runs one; claims keep them from doing the
same work twice) and as `lacak worker` when scaled out. Producers that enqueue work in this
process call `wake()` after their commit so the work starts at once instead of at the next poll.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from lacak.errors import StorageError
from lacak.jobs import store
from lacak.jobs.models import Task
from lacak.storage.db import Database

log = logging.getLogger("lacak.jobs")


class Retry(Exception):
    """Try this task again after `after` seconds (a courier said 429, a timeout, …)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Handler(Protocol):
    kind: str
    max_attempts: int

    async def run(self, task: Task) -> None:
        """Do the work; finish with `jobs.store.complete(tx, task, now)` in the same transaction."""
        ...

    async def give_up(self, task: Task, error: str) -> None:
        """Called once when `max_attempts` is spent."""
        ...


def backoff(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    delay: float = min(cap, base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)


class Runner:
    def __init__(
        self,
        db: Database,
        handlers: list[Handler],
        clock: Callable[[], datetime],
        *,
        lease: timedelta = timedelta(seconds=60),
        batch: int = 50,
        concurrency: int = 20,
        idle: float = 1.0,
    ) -> None:
        self.db = db
        self.handlers = {h.kind: h for h in handlers}
        self.clock = clock
        self.lease = lease
        self.batch = batch
        self.idle = idle
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        tasks = await store.claim(self.db, list(self.handlers), self.clock(), self.lease, self.batch)
        await asyncio.gather(*(self._run(t) for t in tasks))
        return len(tasks)

    async def _run(self, task: Task) -> None:
        handler = self.handlers[task.kind]
        async with self._slots:
            try:
                await handler.run(task)
            except store.LeaseLost:
                log.warning("task lease lost", extra={"task": task.id, "kind": task.kind})
            except Exception as exc:  # any failure of one task must not stop the loop
                await self._failed(handler, task, exc)

    async def _failed(self, handler: Handler, task: Task, exc: Exception) -> None:
        # A Retry already says what went wrong in the courier's words; others need their type.
        error = str(exc) if isinstance(exc, Retry) else f"{type(exc).__name__}: {exc}"
        if task.attempts >= handler.max_attempts:
            log.warning("task given up", extra={"task": task.id, "kind": task.kind, "error": error})
            try:
                await handler.give_up(task, error)
            except Exception:  # giving up must not crash the loop either
                log.exception("give_up failed", extra={"task": task.id})
            return
        after = exc.after if isinstance(exc, Retry) and exc.after is not None else backoff(task.attempts)
        log.info("task retry", extra={"task": task.id, "kind": task.kind, "error": error, "after": after})
        await store.retry(self.db, task, self.clock() + timedelta(seconds=after), error)

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                # A cheap read first: a wake-up after a state change that enqueued nothing
                # (or work due later) must not cost a write transaction.
                wait = await self._until_next_due()
                if wait <= 0 and await self.run_once() >= self.batch:
                    continue  # more may be due right now
                if wait <= 0:
                    wait = await self._until_next_due()
            except StorageError:
                log.exception("task loop: database error")
                wait = self.idle
            self._wake.clear()
            waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()

    async def _until_next_due(self) -> float:
        nxt = await store.next_due(self.db, list(self.handlers))
        if nxt is None:
            return self.idle
        return max(0.0, min(self.idle, (nxt - self.clock()).total_seconds()))
