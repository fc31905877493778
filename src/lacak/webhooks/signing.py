"""Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

Signing is done by the `standardwebhooks` package itself, so what a receiver verifies with it
(or with `svix`) is by construction what was signed. During a secret rotation the old secret
signs too: the header then carries both signatures, space-separated, as the spec allows.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"
_SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


@lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    # Constructing a Webhook decodes the secret; merchants are few, events many.
    return Webhook(secret)


def signature(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret, newest first."""
    when = datetime.fromtimestamp(timestamp, UTC)
    text = body.decode()
    return " ".join(_signer(s).sign(msg_id, when, text) for s in secrets_)


def headers(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets_, msg_id, timestamp, body),
    }
