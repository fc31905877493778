"""Webhook operations, the same for merchants (their own endpoint) and operators (any).

`merchant_id=None` means "every merchant" and is only ever passed by operator surfaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from lacak import netguard
from lacak.crypto import SecretBox
from lacak.errors import NotFound, ValidationError
from lacak.settings import WebhookSettings
from lacak.storage.db import Database
from lacak.webhooks import signing, store
from lacak.webhooks.dialects import Dialect
from lacak.webhooks.dispatcher import SECRET_CONTEXT
from lacak.webhooks.models import Attempt, Delivery, Endpoint, Status
from lacak.webhooks.store import Filters

MAX_PAGE = 200
RECOVER_BATCH = 500


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Delivery]
    next_cursor: str | None


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:  # "²".isdigit() too
        raise ValidationError("The cursor is invalid.", "cursor")
    return int(cursor)


def parse_status(status: str | None) -> Status | None:
    if not status:
        return None
    try:
        return Status(status)
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise ValidationError(f"The status must be one of: {allowed}.", "status") from None


def parse_dialect(dialect: str) -> Dialect:
    try:
        return Dialect(dialect)
    except ValueError:
        allowed = ", ".join(d.value for d in Dialect)
        raise ValidationError(f"The dialect must be one of: {allowed}.", "dialect") from None


class Webhooks:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        clock: Callable[[], datetime],
        settings: WebhookSettings,
        *,
        allow_private: bool,
        on_due: Callable[[], None],
    ) -> None:
        self.db = db
        self.box = box
        self.clock = clock
        self.settings = settings
        self.allow_private = allow_private
        self.on_due = on_due  # wakes this process's dispatcher after a commit that made work

    # -- the endpoint ----------------------------------------------------------------------

    async def set_callback(self, merchant_id: int, url: str) -> str | None:
        """Point the merchant's webhooks at `url`; the signing secret if this created it."""
        url = url.strip()
        await netguard.check_url(url, allow_private=self.allow_private)  # refuses "" too
        sealed = self._seal(secret := signing.new_secret())
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE merchants SET callback_url = $2 WHERE id = $1", merchant_id, url)
            created = await store.ensure_secret(tx, merchant_id, sealed, self.clock())
        return secret if created else None

    async def endpoint(self, merchant_id: int) -> Endpoint:
        found = await store.endpoint(self.db, merchant_id)
        if found is None:
            raise NotFound()
        ep = found[0]
        if ep.held_until is not None and ep.held_until <= self.clock():  # a hold that has ended
            ep = msgspec.structs.replace(ep, held_until=None)
        return ep

    async def secret(self, merchant_id: int) -> str:
        """The current signing secret, made now if the merchant has none yet."""
        await self.endpoint(merchant_id)
        async with self.db.transaction() as tx:
            await store.ensure_secret(tx, merchant_id, self._seal(signing.new_secret()), self.clock())
        found = await store.endpoint(self.db, merchant_id)
        assert found is not None and found[1] is not None
        return self.box.open(found[1], context=SECRET_CONTEXT)

    async def rotate_secret(self, merchant_id: int) -> tuple[str, datetime]:
        """A new secret; the old one keeps signing too until the returned time."""
        await self.secret(merchant_id)
        now = self.clock()
        until = now + timedelta(hours=self.settings.rotation_overlap_hours)
        secret = signing.new_secret()
        async with self.db.transaction() as tx:
            await store.rotate_secret(tx, merchant_id, self._seal(secret), until, now)
        return secret, until

    async def set_dialect(self, merchant_id: int, dialect: str) -> Endpoint:
        chosen = parse_dialect(dialect)
        await self.endpoint(merchant_id)
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE merchants SET webhook_dialect = $2 WHERE id = $1", merchant_id, chosen.value
            )
        return await self.endpoint(merchant_id)

    async def enable(self, merchant_id: int) -> int:
        """Re-enable a disabled endpoint; its paused deliveries go now. Returns how many."""
        await self.endpoint(merchant_id)
        async with self.db.transaction() as tx:
            resumed = await store.enable(tx, merchant_id, self.clock())
            await store.notify(tx, self.db.dialect)
        self.on_due()
        return resumed

    # -- deliveries ------------------------------------------------------------------------

    async def page(self, filters: Filters, cursor: str | None = None, limit: int = 50) -> Page:
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"The limit must be between 1 and {MAX_PAGE}.", "limit")
        items, nxt = await store.page(self.db, filters, parse_cursor(cursor), limit)
        return Page(items, None if nxt is None else str(nxt))

    async def show(self, event_id: str, merchant_id: int | None) -> tuple[Delivery, list[Attempt]]:
        pk, delivery = await self._find(event_id, merchant_id)
        return delivery, await store.attempts(self.db, pk)

    async def resend(self, event_id: str, merchant_id: int | None) -> Delivery:
        pk, _ = await self._find(event_id, merchant_id)
        async with self.db.transaction() as tx:
            await store.resend(tx, pk, self.clock())
            await store.notify(tx, self.db.dialect)
        self.on_due()
        return (await self._find(event_id, merchant_id))[1]

    async def recover(
        self,
        since: datetime,
        merchant_id: int | None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send again every failed delivery created since `since`; returns how many."""
        total, after = 0, 0
        while ids := await store.failed_since(self.db, merchant_id, since, after, RECOVER_BATCH):
            async with self.db.transaction() as tx:
                total += await store.requeue(tx, ids, self.clock())
                await store.notify(tx, self.db.dialect)
            self.on_due()
            after = ids[-1]
            if progress is not None:
                progress(len(ids))
        return total

    async def count_failed(self, since: datetime, merchant_id: int | None) -> int:
        return await store.count_failed(self.db, since, merchant_id)

    async def _find(self, event_id: str, merchant_id: int | None) -> tuple[int, Delivery]:
        if not event_id or len(event_id) > 64 or "\x00" in event_id:  # PostgreSQL text has no NUL
            raise NotFound()
        found = await store.find(self.db, event_id, merchant_id)
        if found is None:
            raise NotFound()
        return found

    def _seal(self, secret: str) -> str:
        return self.box.seal(secret, context=SECRET_CONTEXT)
