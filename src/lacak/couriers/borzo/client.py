"""Borzo Business API 1.6: book (`create-order`) and cancel (`cancel-order`).

Every call carries `X-DV-Auth-Token`. Answers are `{"is_successful": true, "order": {...}}`;
failures `{"is_successful": false, "errors": [...], "parameter_errors": {...}}`, usually with
HTTP 400, and a 2xx that is not successful is refused just the same. Borzo has no
find-new-driver call, so it is cancel + create (`HttpProvider.find_new_driver`).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from lacak.couriers.base import Booked
from lacak.couriers.http import HttpProvider, credentials, expect, msisdn, pick
from lacak.orders.models import Order, Place

CREATE = "/create-order"
CANCEL = "/cancel-order"
ORDER_TYPE = {"instant": "standard", "sameday": "same_day"}
VEHICLE_TYPE_ID = {"motor": 8, "mobil": 7}  # Borzo's ids in its MY/PH/ID integrations
MAX_ADDRESS = 350  # Borzo rejects longer point addresses


class _Point(msgspec.Struct):
    tracking_url: str | None = None


class _Order(msgspec.Struct):
    order_id: int
    points: list[_Point] = []


class _Created(msgspec.Struct):
    order: _Order


class BorzoClient(HttpProvider):
    name = "borzo"

    async def _call(self, path: str, body: dict[str, Any]) -> Any:
        (token,) = credentials(self.name, LACAK_BORZO_AUTH_TOKEN=self.settings.borzo_auth_token)
        url = self.settings.borzo_base_url.rstrip("/") + path
        return await self.http.call(
            "POST", url, headers={"X-DV-Auth-Token": token}, body=body, accept=_successful
        )

    async def book(self, order: Order, generation: int) -> Booked:
        created = expect(await self._call(CREATE, create_order(order)), _Created, self.name).order
        # The drop-off point's tracking page is the one meant for the recipient.
        tracking = created.points[-1].tracking_url if created.points else None
        return Booked(external_id=str(created.order_id), live_tracking_url=tracking or None)

    async def cancel_booking(self, order: Order, external_id: str | None, reason: str) -> None:
        if not external_id:
            return  # Borzo never issued an order_id, so it holds no order to cancel
        await self._call(CANCEL, {"order_id": int(external_id) if external_id.isdigit() else external_id})


def _successful(reply: Any) -> bool:
    return isinstance(reply, dict) and reply.get("is_successful") is True


def create_order(order: Order) -> dict[str, Any]:
    """The documented create-order body: one pickup point, one drop-off point."""
    return {
        "type": pick("borzo", ORDER_TYPE, order.service_type, "order type"),
        "matter": order.item_name,
        "vehicle_type_id": pick("borzo", VEHICLE_TYPE_ID, order.vehicle, "vehicle type"),
        "total_weight_kg": max(1, math.ceil(order.item_weight / 1000)),
        "insurance_amount": f"{order.item_price if order.insurance else 0}.00",
        "is_client_notification_enabled": False,
        "is_contact_person_notification_enabled": True,  # Borzo texts the contacts its tracking link
        "is_motobox_required": False,
        "payment_method": "non_cash",
        "points": [_point(order, order.origin), _point(order, order.destination)],
    }


def _point(order: Order, place: Place) -> dict[str, Any]:
    return {
        "address": place.address[:MAX_ADDRESS],
        "latitude": place.lat,
        "longitude": place.long,
        "contact_person": {"phone": msisdn(place.phone), "name": place.name},
        "client_order_id": order.order_id,
        "note": place.address_note,
    }
