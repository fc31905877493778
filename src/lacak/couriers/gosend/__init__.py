"""The gosend provider: outbound client (client.py) and inbound callbacks (inbound.py)."""

from __future__ import annotations

from lacak.couriers.base import Provider
from lacak.couriers.deps import CourierDeps
from lacak.couriers.gosend.client import GoSendClient


def build(deps: CourierDeps) -> Provider:
    return GoSendClient(deps.settings.couriers)
