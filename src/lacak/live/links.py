"""Live-tracking links: unguessable tokens, their URLs, when they expire, whose clock they show.

Pure functions (the token's randomness aside): no I/O, no settings read here.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from lacak.orders.lifecycle import TERMINAL
from lacak.orders.models import Order

TOKEN_BYTES = 18  # 144 random bits (the page asks for at least 128), 24 URL-safe characters
# What a token can look like (new ones are 24 characters); anything else is not looked up.
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")


def new_token() -> str:
    # From the OS's CSPRNG and not derived from the order: knowing one order's link (or its
    # id) says nothing about another's.
    return secrets.token_urlsafe(TOKEN_BYTES)


def valid_token(token: str) -> bool:
    return TOKEN.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class Links:
    """Makes the link of a new order: `{base_url}/t/{token}`."""

    base_url: str

    def new(self) -> tuple[str, str]:
        token = new_token()
        return token, self.url(token)

    def url(self, token: str) -> str:
        return f"{self.base_url.rstrip('/')}/t/{token}"


def ended_at(order: Order) -> datetime | None:
    """When the order reached its terminal state (None while it is still moving)."""
    if order.state not in TERMINAL:
        return None
    return order.finished_at or order.canceled_at or order.updated_at


def expires_at(order: Order, ttl_hours: float) -> datetime | None:
    end = ended_at(order)
    return None if end is None else end + timedelta(hours=ttl_hours)


def expired(order: Order, now: datetime, ttl_hours: float) -> bool:
    end = expires_at(order, ttl_hours)
    return end is not None and now >= end


# Indonesia's three zones by longitude. The borders follow provinces, not meridians, but every
# city lacak's service areas hold falls on the right side of these two lines: Banyuwangi
# (114.37, WIB) / Banjarmasin (114.59, WITA), Manado (124.84, WITA) / Ternate (127.38, WIT).
_ZONES = ((114.5, "Asia/Jakarta", "WIB"), (125.5, "Asia/Makassar", "WITA"))
_EAST = ("Asia/Jayapura", "WIT")


def zone_for(long: float) -> tuple[str, str]:
    """The IANA zone and the Indonesian abbreviation for a pickup at this longitude."""
    for border, name, abbr in _ZONES:
        if long < border:
            return name, abbr
    return _EAST


def mask_phone(phone: str | None) -> str | None:
    """`081234567616` -> `0812****616`: enough to recognise a call, not enough to dial."""
    if not phone:
        return None
    digits = "".join(c for c in phone if c.isdigit())
    if digits.startswith("62"):
        digits = "0" + digits[2:]
    if len(digits) < 8:
        return "****" + digits[-2:]
    return f"{digits[:4]}****{digits[-3:]}"
