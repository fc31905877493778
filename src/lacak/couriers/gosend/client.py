"""GoSend (Gojek) "gokilat" B2B API v10: book and cancel.

Every call carries `Client-ID` and `Pass-Key`. A booking is `POST /gokilat/v10/booking`
answered with the AWB `orderNo` (`GK-…`); cancelling is `PUT /gokilat/v10/booking/cancel`.
GoSend has no find-new-driver call: integrators book again under the same `storeOrderId` and get
a new orderNo, which is what `HttpProvider.find_new_driver` does (after cancelling the old one).
"""

from __future__ import annotations

from typing import Any

import msgspec

from lacak.couriers.base import Booked
from lacak.couriers.http import HttpProvider, credentials, expect, msisdn, pick
from lacak.orders.models import Order

BOOKING = "/gokilat/v10/booking"
CANCEL = "/gokilat/v10/booking/cancel"
PAYMENT_CORPORATE = 3  # invoiced to the partner: the B2B API has no cash on delivery

# (service_type, vehicle) → shipment_method. GoSend lists InstantCar beside Instant and
# SameDay; a merchant who paid for a car must not get a motorbike. Same-day has no car variant.
SHIPMENT_METHOD = {
    "instant/motor": "Instant",
    "instant/mobil": "InstantCar",
    "sameday/motor": "SameDay",
    "sameday/mobil": "SameDay",
}


class _Created(msgspec.Struct):
    orderNo: str
    liveTrackingUrl: str | None = None  # not in the documented booking answer; used if present


class GoSendClient(HttpProvider):
    name = "gosend"

    def _headers(self) -> dict[str, str]:
        s = self.settings
        client_id, pass_key = credentials(
            self.name, LACAK_GOSEND_CLIENT_ID=s.gosend_client_id, LACAK_GOSEND_PASS_KEY=s.gosend_pass_key
        )
        return {"Client-ID": client_id, "Pass-Key": pass_key}

    def _url(self, path: str) -> str:
        return self.settings.gosend_base_url.rstrip("/") + path

    async def book(self, order: Order, generation: int) -> Booked:
        reply = await self.http.call("POST", self._url(BOOKING), headers=self._headers(), body=booking(order))
        created = expect(reply, _Created, self.name)
        return Booked(external_id=created.orderNo, live_tracking_url=created.liveTrackingUrl or None)

    async def cancel_booking(self, order: Order, external_id: str | None, reason: str) -> None:
        if not external_id:
            return  # GoSend never issued an orderNo, so it holds no booking to cancel
        await self.http.call(
            "PUT",
            self._url(CANCEL),
            headers=self._headers(),
            body={"orderNo": external_id, "cancelDescription": reason},
            accept=_status_ok,
        )


def _status_ok(reply: Any) -> bool:
    # Integrators check the body's statusCode as well as the HTTP status.
    code = reply.get("statusCode") if isinstance(reply, dict) else None
    return not isinstance(code, int) or code < 300


def booking(order: Order) -> dict[str, Any]:
    """The documented booking body for one order (one route: origin → destination)."""
    route: dict[str, Any] = {}
    for side, place in (("origin", order.origin), ("destination", order.destination)):
        route |= {
            f"{side}Name": place.name,
            f"{side}Note": place.address_note,
            f"{side}ContactName": place.name,
            f"{side}ContactPhone": msisdn(place.phone),
            f"{side}LatLong": f"{place.lat},{place.long}",
            f"{side}Address": place.address,
        }
    route |= {
        "item": order.item_name,
        "storeOrderId": order.order_id,
        "insuranceDetails": {  # GoSend wants every insurance value as a string
            "applied": "true" if order.insurance else "false",
            "fee": str(order.insurance or 0),
            "product_description": order.item_description or order.item_name,
            "product_price": str(order.item_price),
        },
    }
    method = pick("gosend", SHIPMENT_METHOD, f"{order.service_type}/{order.vehicle}", "shipment method")
    return {
        "paymentType": PAYMENT_CORPORATE,
        "deviceToken": "",
        "collection_location": "pickup",
        "shipment_method": method,
        "routes": [route],
    }
