"""Secrets at rest: the generated key file, sealing, and key hashing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from lacak.crypto import KEY_FILE, SecretBox, load_or_create_key
from lacak.errors import ConfigError
from lacak.merchants import keys


def test_embedded_key_is_generated_once_with_0600(tmp_path: Path) -> None:
    first = load_or_create_key(None, tmp_path)
    mode = stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert load_or_create_key(None, tmp_path) == first
    assert len(first) == 32


def test_configured_key_wins_and_is_checked(tmp_path: Path) -> None:
    assert load_or_create_key("ab" * 32, tmp_path) == bytes.fromhex("ab" * 32)
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(ConfigError):
        load_or_create_key("too-short", tmp_path)


def test_seal_round_trips_and_detects_tampering() -> None:
    box = SecretBox(b"k" * 32)
    sealed = box.seal("secret-api-key", context=b"api-key")
    assert "secret-api-key" not in sealed
    assert box.open(sealed, context=b"api-key") == "secret-api-key"
    assert box.seal("secret-api-key", context=b"api-key") != sealed  # fresh nonce each time
    with pytest.raises(InvalidTag):
        box.open(sealed, context=b"other")
    with pytest.raises(InvalidTag):
        SecretBox(b"x" * 32).open(sealed, context=b"api-key")


def test_new_keys_are_64_lowercase_hex_and_unique() -> None:
    made = {keys.new_key() for _ in range(100)}
    assert len(made) == 100
    assert all(len(k) == 64 and k == k.lower() and int(k, 16) >= 0 for k in made)
    k = next(iter(made))
    assert keys.same_hash(keys.key_hash(k), keys.key_hash(k))
    assert not keys.same_hash(keys.key_hash(k), keys.key_hash(k + "0"))
