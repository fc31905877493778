"""The webhook side of lacak, assembled: operations, the dispatcher, its transport and wake-ups."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from lacak.crypto import SecretBox
from lacak.metrics import Metrics
from lacak.settings import Settings
from lacak.storage.db import Database
from lacak.storage.notify import listen_forever
from lacak.storage.store import Store
from lacak.timeutil import utcnow
from lacak.webhooks.dispatcher import DispatchConfig, Dispatcher, Secrets
from lacak.webhooks.schedule import Policy
from lacak.webhooks.service import Webhooks
from lacak.webhooks.store import CHANNEL
from lacak.webhooks.transport import AiohttpTransport


@dataclass(slots=True)
class WebhookRuntime:
    service: Webhooks
    dispatcher: Dispatcher
    transport: AiohttpTransport
    database_url: str
    dialect: str
    _stop: asyncio.Event | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls, settings: Settings, db: Database, store: Store, box: SecretBox, metrics: Metrics
    ) -> WebhookRuntime:
        w = settings.webhooks
        transport = AiohttpTransport(
            timeout=w.timeout, allow_private=settings.webhook_allow_private, limit=w.concurrency
        )
        dispatcher = Dispatcher(
            db,
            transport,
            Secrets(box),
            Policy(disable_after=w.disable_after_hours * 3600, scale=w.retry_scale),
            metrics,
            utcnow,
            DispatchConfig(
                concurrency=w.concurrency,
                per_endpoint=w.per_endpoint,
                lease=w.lease,
                idle=w.poll_interval(settings.is_sqlite),
            ),
        )
        store.listeners.append(dispatcher.wake)
        service = Webhooks(
            db, box, utcnow, w, allow_private=settings.webhook_allow_private, on_due=dispatcher.wake
        )
        return cls(service, dispatcher, transport, settings.resolved_database_url, db.dialect)

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop` (and listen for other processes' changes on PostgreSQL)."""
        tasks = [asyncio.create_task(self.dispatcher.run_forever(stop), name="lacak-webhooks")]
        if self.dialect == "postgresql":
            listener = listen_forever(self.database_url, CHANNEL, self.dispatcher.wake, stop)
            tasks.append(asyncio.create_task(listener, name="lacak-webhooks-listen"))
        await asyncio.gather(*tasks)

    def start(self) -> None:
        """Run in the background of this process (inside `lacak serve`)."""
        self._stop = asyncio.Event()
        self._tasks.append(asyncio.create_task(self.run(self._stop), name="lacak-webhooks-run"))

    async def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
            await asyncio.gather(*self._tasks)
        await self.transport.close()
