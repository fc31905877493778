"""The order as KiriminAja's tracking endpoint shows it.

Rendered on every state change and stored with the order (`orders.tracking_json`), so a
lookup reads one column and sends it without building anything.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lacak.orders.lifecycle import KA_STATUS
from lacak.orders.models import Order, Place
from lacak.timeutil import wire

_encode = msgspec.json.Encoder().encode


def tracking(o: Order) -> dict[str, Any]:
    return {
        "driver": {"name": o.driver.name, "phone": o.driver.phone, "photo": o.driver.photo},
        "origin": _latlong(o.origin),
        "destination": _latlong(o.destination),
        "date": {
            "created_at": wire(o.created_at),
            "finished_at": wire(o.finished_at),
            "allocated_at": wire(o.allocated_at),
            "canceled_at": wire(o.canceled_at),
        },
        "cost": {
            "shipping_cost": o.shipping_cost,
            "insurance": o.insurance,
            "admin_fee": o.admin_fee,
            "total_price": o.total_price,
        },
        "item": {"price": o.item_price, "description": o.item_name},
        "order_id": o.order_id,
        "service": o.service,
        "service_type": o.service_type,
        "tracking_code": o.tracking_code,
        "cancel_description": o.cancel_description,
        "live_tracking_url": o.live_tracking_url,
        "status": KA_STATUS[o.state],
        "status_name": o.state.value,
    }


def _latlong(p: Place) -> dict[str, Any]:
    return {
        "name": p.name,
        "address": p.address,
        "address_note": p.address_note,
        "phone": p.phone,
        "lat": p.lat,
        "long": p.long,
    }


def tracking_json(o: Order) -> str:
    return _encode(tracking(o)).decode()
