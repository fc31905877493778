"""Merchant use-cases: accounts, keys, and who a bearer key belongs to."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from lacak.crypto import SecretBox
from lacak.errors import AuthError, DomainError, NotFound, UniqueViolation
from lacak.merchants import keys
from lacak.merchants.models import Merchant, PaymentMode
from lacak.storage.store import Store

MAX_KEY_LENGTH = 256
_CACHE_LIMIT = 50_000


class KeyCache:
    """API key hash → merchant, for `ttl` seconds.

    Another process's revocation takes effect here within `ttl` (5 s by default); this
    process's own revocations clear the entry at once.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[Merchant | None, float]] = {}

    def get(self, digest: str) -> tuple[bool, Merchant | None]:
        hit = self._entries.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return False, None
        return True, hit[0]

    def put(self, digest: str, merchant: Merchant | None) -> None:
        if len(self._entries) >= _CACHE_LIMIT:
            self._entries.clear()  # crude but bounded: unknown keys cannot grow memory
        self._entries[digest] = (merchant, time.monotonic() + self.ttl)

    def clear(self) -> None:
        self._entries.clear()


class Merchants:
    def __init__(self, store: Store, box: SecretBox, clock: Callable[[], datetime], cache_ttl: float) -> None:
        self.store = store
        self.box = box
        self.clock = clock
        self.cache = KeyCache(cache_ttl)

    async def authenticate(self, authorization: str | None) -> Merchant:
        if not authorization:
            raise AuthError("Unauthenticated.")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH:
            raise AuthError("Unauthenticated.")
        digest = keys.key_hash(key)
        cached, merchant = self.cache.get(digest)
        if not cached:
            found = await self.store.merchant_for_key(digest)
            merchant = None
            if found is not None and keys.same_hash(found[1], digest):
                merchant = found[0]
            self.cache.put(digest, merchant)
        if merchant is None:
            raise AuthError("Unauthenticated.")
        return merchant

    def _sealed(self, key: str) -> tuple[str, str]:
        return keys.key_hash(key), self.box.seal(key, context=b"api-key")

    async def create(self, name: str, *, prepaid: bool = False) -> tuple[Merchant, str]:
        name = name.strip()
        if not name or len(name) > 100:
            raise DomainError("merchant name must be 1 to 100 characters")
        key = keys.new_key()
        mode = PaymentMode.PREPAID if prepaid else PaymentMode.ON_CREATE
        try:
            merchant = await self.store.create_merchant(name, mode, *self._sealed(key), self.clock())
        except UniqueViolation:
            raise DomainError(f"a merchant named {name!r} already exists") from None
        return merchant, key

    async def get(self, ref: str) -> Merchant:
        merchant = await self.store.find_merchant(ref)
        if merchant is None:
            raise NotFound(f"no merchant {ref!r}")
        return merchant

    async def rotate_key(self, ref: str) -> tuple[Merchant, str]:
        merchant = await self.get(ref)
        key = keys.new_key()
        await self.store.rotate_key(merchant.id, *self._sealed(key), self.clock())
        self.cache.clear()
        return merchant, key

    async def revoke_keys(self, ref: str) -> tuple[Merchant, int]:
        merchant = await self.get(ref)
        count = await self.store.revoke_keys(merchant.id, self.clock())
        self.cache.clear()
        return merchant, count

    async def set_prepaid(self, ref: str, prepaid: bool) -> Merchant:
        merchant = await self.get(ref)
        mode = PaymentMode.PREPAID if prepaid else PaymentMode.ON_CREATE
        await self.store.set_payment_mode(merchant.id, mode)
        self.cache.clear()
        return await self.get(ref)

    async def api_key(self, merchant: Merchant) -> str | None:
        sealed = await self.store.active_key_enc(merchant.id)
        return None if sealed is None else self.box.open(sealed, context=b"api-key")
