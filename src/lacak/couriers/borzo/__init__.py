"""The borzo provider: outbound client (client.py) and inbound callbacks (inbound.py)."""

from __future__ import annotations

from lacak.couriers.base import Provider
from lacak.couriers.borzo.client import BorzoClient
from lacak.couriers.deps import CourierDeps


def build(deps: CourierDeps) -> Provider:
    return BorzoClient(deps.settings.couriers)
