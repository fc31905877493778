"""The grab_express provider: outbound client (client.py) and inbound callbacks (inbound.py)."""

from __future__ import annotations

from lacak.couriers.base import Provider
from lacak.couriers.deps import CourierDeps
from lacak.couriers.grab_express.client import GrabExpressClient


def build(deps: CourierDeps) -> Provider:
    return GrabExpressClient(deps.settings.couriers)
