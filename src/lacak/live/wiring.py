"""The live page's parts, assembled: its store, the hub, and where the hub hears of changes."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from lacak.live.hub import LiveHub
from lacak.live.store import LiveStore
from lacak.settings import LiveSettings, Settings
from lacak.storage.db import Connection, Database
from lacak.storage.notify import listen_forever
from lacak.storage.store import Change, Store
from lacak.timeutil import utcnow

CHANNEL = "lacak_live"


@dataclass(slots=True)
class LiveRuntime:
    settings: LiveSettings
    store: LiveStore
    hub: LiveHub
    database_url: str
    dialect: str
    _stop: asyncio.Event | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, db: Database, store: Store) -> LiveRuntime:
        live = LiveStore(db, store)
        hub = LiveHub(live, settings.live.ttl_hours, settings.live.poll, utcnow, own_origin=settings.base_url)
        runtime = cls(settings.live, live, hub, settings.resolved_database_url, db.dialect)
        store.effects.append(runtime._announce)
        if db.dialect != "postgresql":
            store.listeners.append(hub.committed)
        return runtime

    async def _announce(self, tx: Connection, change: Change) -> None:
        # Every applied change, in its own transaction. PostgreSQL delivers the notification at
        # commit to every process (this one included); SQLite has one serving process, which
        # hears its own commits through the store's listeners.
        if self.dialect == "postgresql":
            await tx.execute("SELECT pg_notify($1, $2)", CHANNEL, str(change.after.pk))
        else:
            self.hub.pending(change.after.pk)

    def _changed(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.hub.changed(int(payload))

    def start(self) -> None:
        """Serve changes to open pages from this process (inside `lacak serve`)."""
        self._stop = stop = asyncio.Event()
        self._tasks.append(asyncio.create_task(self.hub.run(stop), name="lacak-live"))
        if self.dialect == "postgresql":
            listener = listen_forever(
                self.database_url, CHANNEL, self.hub.changed_all, stop, on_message=self._changed
            )
            self._tasks.append(asyncio.create_task(listener, name="lacak-live-listen"))

    async def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self.hub.wake()
            await asyncio.gather(*self._tasks)
