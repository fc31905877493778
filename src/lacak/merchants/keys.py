"""API keys: 64 lowercase hex characters, looked up by SHA-256 and kept encrypted.

The hash finds the merchant; the AES-GCM copy exists because KiriminAja-style webhooks
send the merchant's own key back as a bearer token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_key() -> str:
    return secrets.token_hex(32)


def key_hash(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash is safe: nobody can brute-force the preimage.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
