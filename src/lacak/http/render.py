"""Result shapes, one function per endpoint, each in that endpoint's own spelling.

The wire is inconsistent on purpose (KiriminAja's own): `live_tracking_url` vs
`live_track_url`, `photo` vs `image`, `poly_line` vs `polyline`, `lat`/`long` vs `lat_long`
vs `latitude`/`longitude`. Each function emits exactly what its endpoint documents.
"""

from __future__ import annotations

from typing import Any

from lacak.orders.lifecycle import KA_STATUS
from lacak.orders.models import HistoryEvent, Order, Payment, Place
from lacak.orders.service import ServiceQuotes
from lacak.orders.views import tracking as tracking
from lacak.timeutil import wire


def pricing(quotes: list[ServiceQuotes]) -> list[dict[str, Any]]:
    return [
        {
            "name": sq.service,
            "costs": [
                {
                    "service_type": q.service_type,
                    "estimation": q.estimation,
                    "price": {
                        "admin_fee": q.admin_fee,
                        "shipping_costs": q.shipping_cost,
                        "total_price": q.total_price,
                    },
                }
                for q in sq.quotes
            ],
            "insurances": [{"value": value, "type": kind} for kind, value in sq.insurances],
        }
        for sq in quotes
    ]


def _payment(p: Payment, *, label: bool) -> dict[str, Any]:
    status: str | int = ("paid" if p.paid else "unpaid") if label else p.status_code
    return {
        "payment_id": p.payment_id,
        "amount": p.amount,
        "status_code": status,
        "qr_content": p.qr_content,
        "pay_time": wire(p.pay_time),
    }


def pickup(payment: Payment, orders: list[Order]) -> dict[str, Any]:
    return {
        "payment": _payment(payment, label=True),
        "packages": [
            {
                "awb": o.tracking_code,
                "order_id": o.order_id,
                "service": o.service,
                "service_type": o.service_type,
                "status": KA_STATUS[o.state],
                "live_track_url": o.live_tracking_url,
                "poly_line": o.poly_line,
                "origin": _lat_long(o.origin),
                "destination": _lat_long(o.destination),
                "driver": {"name": o.driver.name, "phone": o.driver.phone, "image": o.driver.photo},
            }
            for o in orders
        ],
    }


def _lat_long(p: Place) -> dict[str, Any]:
    return {"name": p.name, "address": p.address, "phone": p.phone, "lat_long": f"{p.lat},{p.long}"}


def _latitude(p: Place) -> dict[str, Any]:
    return {"name": p.name, "address": p.address, "phone": p.phone, "latitude": p.lat, "longitude": p.long}


def void(payment: Payment, order: Order) -> dict[str, Any]:
    return {
        "payment": _payment(payment, label=False),
        "packages": [
            {
                "awb": order.tracking_code,
                "order_id": order.order_id,
                "service": order.service,
                "service_type": order.service_type,
                "status": KA_STATUS[order.state],
                "live_track_url": order.live_tracking_url,
                "polyline": order.poly_line,
                "origin": _latitude(order.origin),
                "destination": _latitude(order.destination),
            }
        ],
    }


def package_2025(o: Order) -> dict[str, Any]:
    """The package shape of get_payment and of the 2025 webhooks."""
    return {
        "awb": o.tracking_code,
        "order_id": o.order_id,
        "service": o.service,
        "service_type": o.service_type,
        "status": KA_STATUS[o.state],
        "live_tracking_url": o.live_tracking_url,
        "poly_line": o.poly_line,
        "origin": _latitude(o.origin),
        "destination": _latitude(o.destination),
        "driver": {"name": o.driver.name, "phone": o.driver.phone, "image": o.driver.photo},
    }


def payment(p: Payment, orders: list[Order]) -> dict[str, Any]:
    return {**_payment(p, label=False), "packages": [package_2025(o) for o in orders]}


def find_new_driver(o: Order) -> dict[str, Any]:
    return {"awb": o.tracking_code, "order_id": o.order_id}


def history(o: Order, events: list[HistoryEvent]) -> dict[str, Any]:
    """lacak's history extension: every recorded event, including those that changed nothing."""
    return {
        "order_id": o.order_id,
        "status": KA_STATUS[o.state],
        "status_name": o.state.value,
        "history": [
            {
                "seq": e.seq,
                "state": e.state.value,
                "status": KA_STATUS[e.state],
                "from_state": e.from_state.value if e.from_state else None,
                "outcome": e.outcome.value,
                "source": e.source.value,
                "courier_code": e.native_code,
                "courier_text": e.native_text,
                "position": None if e.lat is None or e.long is None else {"lat": e.lat, "long": e.long},
                "note": e.note,
                "occurred_at": wire(e.occurred_at),
                "recorded_at": wire(e.recorded_at),
            }
            for e in events
        ],
    }
