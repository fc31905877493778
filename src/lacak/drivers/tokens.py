"""Driver tokens: `drv_` + 64 hex characters, stored only as their SHA-256.

The prefix keeps them recognisable (in a leaked log, a secret scanner, a support ticket) and
distinct from merchant keys, which live in another table and never authenticate here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "drv_"
MAX_LENGTH = 256


def new_token() -> str:
    return PREFIX + secrets.token_hex(32)


def token_hash(token: str) -> str:
    # 256 random bits: a fast hash is safe, nobody can search the preimage space.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
