"""Encryption at rest for secrets lacak must be able to read back (merchant API keys).

AES-256-GCM under the operator's secret key (`LACAK_SECRET_KEY`, 64 hex characters or
urlsafe base64 of 32 bytes). On the embedded default the key is generated once into the
data directory with 0600 permissions.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lacak.errors import ConfigError

KEY_FILE = "secret.key"
_NONCE = 12


def _decode_key(raw: str) -> bytes:
    raw = raw.strip()
    try:
        key = bytes.fromhex(raw) if len(raw) == 64 else base64.urlsafe_b64decode(raw + "==")
    except (ValueError, binascii.Error):
        raise ConfigError("LACAK_SECRET_KEY must be 64 hex characters or base64 of 32 bytes") from None
    if len(key) != 32:
        raise ConfigError("LACAK_SECRET_KEY must decode to 32 bytes")
    return key


def load_or_create_key(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        return _decode_key(configured)
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return _decode_key(path.read_text())


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, *, context: bytes = b"") -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, plaintext.encode(), context)
        return base64.urlsafe_b64encode(sealed).decode()

    def open(self, token: str, *, context: bytes = b"") -> str:
        raw = base64.urlsafe_b64decode(token)
        return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context).decode()
