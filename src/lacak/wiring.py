"""Builds lacak's parts from settings: one place, used by the server and the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from lacak.couriers.wiring import Couriers
from lacak.crypto import SecretBox, load_or_create_key
from lacak.errors import ConfigError, StorageError
from lacak.live.links import Links
from lacak.live.wiring import LiveRuntime
from lacak.merchants.service import Merchants
from lacak.metrics import Metrics
from lacak.orders.service import Orders
from lacak.pricing.tariff import load_tariff
from lacak.settings import Settings
from lacak.storage.db import Database, connect
from lacak.storage.migrate import head_revision
from lacak.storage.store import Store
from lacak.timeutil import utcnow
from lacak.webhooks.wiring import WebhookRuntime


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    db: Database
    store: Store
    merchants: Merchants
    orders: Orders
    metrics: Metrics
    couriers: Couriers
    hooks: WebhookRuntime
    live: LiveRuntime


async def ensure_schema(db: Database) -> None:
    """Refuse to run on a database whose schema is not the one this code was written for."""
    head = head_revision()
    try:
        row = await db.fetchrow("SELECT version_num FROM alembic_version")
    except StorageError:
        row = None
    current = None if row is None else row[0]
    if current != head:
        raise ConfigError(
            f"database schema is at {current or 'nothing'}, this lacak needs {head}: run `lacak migrate`"
        )


@asynccontextmanager
async def services(settings: Settings, metrics: Metrics | None = None) -> AsyncIterator[Services]:
    tariff = load_tariff(settings.tariff_file)
    box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir))
    db = connect(settings.resolved_database_url, pool_size=settings.db_pool_size)
    await db.open()
    try:
        await ensure_schema(db)
        store = Store(db)
        metrics = metrics or Metrics()
        couriers = Couriers.build(settings, db, store, metrics)
        hooks = WebhookRuntime.build(settings, db, store, box, metrics)
        live = LiveRuntime.build(settings, db, store)
        try:
            yield Services(
                settings=settings,
                db=db,
                store=store,
                merchants=Merchants(store, box, utcnow, settings.key_cache_ttl),
                orders=Orders(store, tariff, utcnow, metrics, Links(settings.base_url)),
                metrics=metrics,
                couriers=couriers,
                hooks=hooks,
                live=live,
            )
        finally:
            await live.close()
            await hooks.close()
            await couriers.close()
    finally:
        await db.close()
