"""GrabExpress Delivery API: book and cancel, behind an OAuth2 client-credentials token.

The token (`POST grab_token_url`, JSON body, scope `grab_express.partner_deliveries`) is cached
until shortly before `expires_in` and fetched again once when Grab answers 401 (revoked or
rotated early). Bookings are `POST /v1/deliveries` (answer: `deliveryID`, `trackingURL`),
cancels `DELETE /v1/deliveries/{deliveryID}`.

Find-new-driver is cancel + create (`HttpProvider.find_new_driver`): Grab has no call for it.
While a delivery is alive Grab reallocates by itself; a merchant asking for another driver
wants this one gone, and a delivery that ended `FAILED` (no driver) can only be followed by a
new one. Grab allows several deliveries under one `merchantOrderID`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec

from lacak.couriers.base import Booked
from lacak.couriers.http import HttpError, HttpProvider, credentials, expect, msisdn, pick
from lacak.orders.models import Order, Place
from lacak.settings import CourierSettings

DELIVERIES = "/v1/deliveries"
BY_MERCHANT_ORDER = "/v1/merchant/deliveries/"
SCOPE = "grab_express.partner_deliveries"
SERVICE_TYPE = {"instant": "INSTANT", "sameday": "SAME_DAY"}
VEHICLE_TYPE = {"motor": "BIKE", "mobil": "CAR"}
_EARLY = 60.0  # refresh this long before expiry, so a token never dies in flight


class _Token(msgspec.Struct):
    access_token: str
    expires_in: float = 3600.0


class _Delivery(msgspec.Struct):
    deliveryID: str
    trackingURL: str = ""  # empty until a driver is allocated


class GrabExpressClient(HttpProvider):
    name = "grab_express"

    def __init__(self, settings: CourierSettings, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(settings)
        self.clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()  # concurrent bookings share one token fetch

    async def token(self) -> str:
        async with self._token_lock:
            if self._token is not None and self.clock() < self._token_until:
                return self._token
            s = self.settings
            client_id, secret = credentials(
                self.name,
                LACAK_GRAB_CLIENT_ID=s.grab_client_id,
                LACAK_GRAB_CLIENT_SECRET=s.grab_client_secret,
            )
            grant = {
                "client_id": client_id,
                "client_secret": secret,
                "grant_type": "client_credentials",
                "scope": SCOPE,
            }
            reply = await self.http.call(
                "POST", s.grab_token_url, headers={"Cache-Control": "no-cache"}, body=grant
            )
            token = expect(reply, _Token, self.name)
            early = min(_EARLY, token.expires_in / 10)  # short-lived tokens still get most of their life
            self._token, self._token_until = token.access_token, self.clock() + token.expires_in - early
            return token.access_token

    def _forget(self, token: str) -> None:
        if self._token == token:  # another call may already have fetched a fresh one
            self._token = None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = self.settings.grab_base_url.rstrip("/") + path
        token = await self.token()
        try:
            return await self.http.call(method, url, headers={"Authorization": f"Bearer {token}"}, body=body)
        except HttpError as exc:
            if exc.status != 401:
                raise
        # Once: a second 401 with a brand-new token means the credentials themselves are refused,
        # which stays a permanent error.
        self._forget(token)
        token = await self.token()
        return await self.http.call(method, url, headers={"Authorization": f"Bearer {token}"}, body=body)

    async def book(self, order: Order, generation: int) -> Booked:
        created = expect(await self._call("POST", DELIVERIES, delivery(order)), _Delivery, self.name)
        return Booked(external_id=created.deliveryID, live_tracking_url=created.trackingURL or None)

    async def cancel_booking(self, order: Order, external_id: str | None, reason: str) -> None:
        if external_id:
            await self._call("DELETE", f"{DELIVERIES}/{quote(external_id, safe='')}")
            return
        # No deliveryID yet (the booking may still be in flight): Grab can cancel every delivery
        # of the merchant order; 404 means none was ever made.
        try:
            await self._call("DELETE", BY_MERCHANT_ORDER + quote(order.order_id, safe=""))
        except HttpError as exc:
            if exc.status != 404:
                raise


def delivery(order: Order) -> dict[str, Any]:
    """The documented create-delivery body for one order."""
    return {
        "merchantOrderID": order.order_id,
        "serviceType": pick("grab_express", SERVICE_TYPE, order.service_type, "service type"),
        "vehicleType": pick("grab_express", VEHICLE_TYPE, order.vehicle, "vehicle type"),
        "codType": "REGULAR",
        "paymentMethod": "CASHLESS",
        "payer": "SENDER",
        "packages": [
            {
                "name": order.item_name,
                "description": order.item_description or order.item_name,
                "quantity": 1,
                "price": order.item_price,
                # lacak is told the weight only; Grab sizes the vehicle by weight (grams)
                "dimensions": {"height": 0, "width": 0, "depth": 0, "weight": order.item_weight},
            }
        ],
        "origin": _location(order.origin),
        "destination": _location(order.destination),
        "sender": _person(order.origin, sms=False),
        "recipient": _person(order.destination, sms=True),  # the recipient gets Grab's tracking SMS
    }


def _location(place: Place) -> dict[str, Any]:
    return {
        "address": place.address,
        "keywords": place.name,
        "coordinates": {"latitude": place.lat, "longitude": place.long},
    }


def _person(place: Place, *, sms: bool) -> dict[str, Any]:
    return {
        "firstName": place.name,
        "phone": msisdn(place.phone),
        "smsEnabled": sms,
        "instruction": place.address_note,
    }
