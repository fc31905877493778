"""Time helpers: one UTC clock and the wire format every result timestamp uses."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

WIRE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    return datetime.now(UTC)


def wire(value: datetime | str | None) -> str | None:
    """`2024-01-19T04:01:37.000000Z`; SQLite already stores this text, so pass it through."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is UTC:
        return _wire_utc(value)
    return _wire_utc(value.astimezone(UTC))


@lru_cache(maxsize=1024)
def _wire_utc(value: datetime) -> str:
    # Cached: one state change binds the same few datetimes (its `now`, the event's time) to
    # several statements, and formatting costs 25 times a cache hit. Only UTC values come
    # here: local times equal but for `fold` would share an entry and be an hour apart.
    # isoformat is several times faster than strftime.
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
