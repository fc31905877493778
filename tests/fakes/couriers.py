"""Fake GoSend, GrabExpress and Borzo APIs on loopback, speaking the formats researched in
courier-apis.md (requests, answers and error replies).

Each fake checks the courier's authentication, validates every request body strictly against
the documented fields (a missing, misspelt or mistyped field, a phone or "lat,long" in the wrong
form is refused with the courier's own error shape), records what it received, and can be told
to misbehave for an operation (and optionally one order): answer with an error, hang past the
client's timeout, or drop the connection, N times and then recover, or for good.

Run them inside a test's event loop (`async with serving(fake)`) or, for a lacak server in
another process, on their own loop in a background thread (`with Background(*fakes)`).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from aiohttp import web

T = TypeVar("T")

# -- what tests see and script -----------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it, and what it answered (0: hung or dropped)."""

    op: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    order_id: str | None
    status: int
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """Say nothing for `seconds` (well past any client timeout), then 504 as a gateway would."""

    seconds: float = 30.0


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering, as a courier that goes down mid-call."""


Misbehaviour = Reply | Hang | Drop


@dataclass
class _Rule:
    op: str
    order_id: str | None
    action: Misbehaviour
    times: int | None  # None: for good


@dataclass
class Booking:
    order_id: str
    body: Any
    status: str = "active"


@dataclass(frozen=True)
class Op:
    """One endpoint: how to read its body, whose order it is about, and the normal answer."""

    name: str
    method: str
    path: str
    schema: type[Any] | None
    order_id: Callable[[Any, web.Request], str | None]
    handle: Callable[[Any, web.Request], Reply]
    auth: bool = True


# Credentials the fakes expect unless told otherwise (made-up values in the documented shapes).
GOSEND_CLIENT_ID = "kiriminaja-engine"
GOSEND_PASS_KEY = "9a1a0fd5ab3247c0" * 4
GRAB_CLIENT_ID = "grab-client-7c1d"
GRAB_CLIENT_SECRET = "grab-secret-0f9e5a7b"
BORZO_AUTH_TOKEN = "3304B0D89A2F2A6DC6117902AEF51D5F1A3F861B"

# -- shared field formats ------------------------------------------------------------------------

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Digits = Annotated[str, msgspec.Meta(pattern=r"^[0-9]+$")]
LocalOrIntlPhone = Annotated[str, msgspec.Meta(pattern=r"^(62|0)8[0-9]{7,12}$")]  # GoSend takes both
IntlPhone = Annotated[str, msgspec.Meta(pattern=r"^628[0-9]{7,12}$")]  # E.164 without "+"
LatLong = Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]{1,2}(\.[0-9]+)?,-?[0-9]{1,3}(\.[0-9]+)?$")]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Unknown fields are refused: a misspelt field name in a client must not pass unnoticed."""


def _field_path(exc: msgspec.ValidationError) -> tuple[list[str | int], str]:
    """Where msgspec found the problem (`$.points[0].phone` → ["points", 0, "phone"]) and a code."""
    text = str(exc)
    where = re.search(r"at `\$([^`]*)`", text)
    steps = re.findall(r"\.([A-Za-z_]\w*)|\[(\d+)\]", where.group(1) if where else "")
    path: list[str | int] = [int(i) if i else name for name, i in steps]
    named = re.search(r"field `(\w+)`", text)
    if named:
        path.append(named.group(1))
    code = (
        "required"
        if "missing required" in text
        else "unknown"
        if "unknown field" in text
        else "invalid_value"
    )
    return path, code


class FakeCourier:
    """The plumbing every fake shares; subclasses list their endpoints and error shapes."""

    name = ""

    def __init__(self) -> None:
        self.port = 0
        self.bookings: dict[str, Booking] = {}
        self._seen: list[Seen] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()  # tests script and read from another thread than the server's
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- for tests -------------------------------------------------------------------------------

    def fail(
        self, op: str, action: Misbehaviour, *, times: int | None = 1, order_id: str | None = None
    ) -> None:
        """Misbehave on the next `times` calls of `op` (for good when None), for one order or all."""
        with self._lock:
            self._rules.append(_Rule(op, order_id, action, times))

    def heal(self) -> None:
        with self._lock:
            self._rules.clear()

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._seen.clear()
            self.bookings.clear()

    def requests(self, op: str | None = None, order_id: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self._seen if op in (None, s.op) and order_id in (None, s.order_id)]

    def error(self, status: int, message: str, *, retry_after: float | None = None) -> Reply:
        """The courier's error reply for `status` (its own body shape)."""
        raise NotImplementedError

    # -- for subclasses --------------------------------------------------------------------------

    def ops(self) -> list[Op]:
        raise NotImplementedError

    def authorized(self, request: web.Request) -> bool:
        raise NotImplementedError

    def invalid(self, exc: msgspec.ValidationError) -> Reply:
        return self.error(400, str(exc))

    def book(self, order_id: str, body: Any) -> str:
        external_id = self.new_id(next(self._ids))
        with self._lock:
            self.bookings[external_id] = Booking(order_id, body)
        return external_id

    def new_id(self, n: int) -> str:
        raise NotImplementedError

    def order_of(self, external_id: object) -> str | None:
        booking = self.bookings.get(str(external_id))
        return None if booking is None else booking.order_id

    # -- serving ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on loopback: a fresh port the first time, the same one after a `stop()`."""
        app = web.Application()
        for op in self.ops():
            app.router.add_route(op.method, op.path, partial(self._serve, op))
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._closing is not None:
            self._closing.set()  # hanging handlers give up at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, op: Op, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            loose = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            loose = raw.decode("utf-8", "replace")
        try:
            order_id = op.order_id(loose, request)
        except (KeyError, IndexError, TypeError, AttributeError):
            order_id = None  # too malformed to say; validation answers it
        action = self._answer(op, request, raw, order_id)
        seen = partial(Seen, op.name, request.method, request.path, dict(request.headers), loose, order_id)
        if isinstance(action, Hang):
            self._record(seen(0))
            assert self._closing is not None
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), action.seconds)
            return web.Response(status=504)
        if isinstance(action, Drop):
            self._record(seen(0))
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        self._record(seen(action.status))
        if action.body is None:
            return web.Response(status=action.status, headers=action.headers)
        return web.json_response(action.body, status=action.status, headers=action.headers)

    def _answer(self, op: Op, request: web.Request, raw: bytes, order_id: str | None) -> Misbehaviour:
        """Auth, then the documented body, then a scripted misbehaviour or the normal answer."""
        if op.auth and not self.authorized(request):
            return self.error(401, "Unauthorized")
        parsed = None
        if op.schema is not None:
            if request.content_type != "application/json":
                return self.error(400, f"Content-Type must be application/json, got {request.content_type}")
            try:
                parsed = msgspec.json.decode(raw, type=op.schema)
            except msgspec.ValidationError as exc:
                return self.invalid(exc)
            except msgspec.DecodeError as exc:
                return self.error(400, f"malformed JSON: {exc}")
        with self._lock:
            for rule in self._rules:
                if rule.op == op.name and rule.order_id in (None, order_id) and rule.times != 0:
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.action
        return op.handle(parsed, request)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def _retry_after(headers: dict[str, str], retry_after: float | None) -> dict[str, str]:
    return headers if retry_after is None else {**headers, "Retry-After": f"{retry_after:g}"}


# -- GoSend ---------------------------------------------------------------------------------------


class GoSendInsurance(Strict):
    applied: Literal["true", "false"]
    fee: Digits
    product_description: str
    product_price: Digits


class GoSendRoute(Strict):
    originName: NonEmpty
    originNote: str
    originContactName: NonEmpty
    originContactPhone: LocalOrIntlPhone
    originLatLong: LatLong
    originAddress: NonEmpty
    destinationName: NonEmpty
    destinationNote: str
    destinationContactName: NonEmpty
    destinationContactPhone: LocalOrIntlPhone
    destinationLatLong: LatLong
    destinationAddress: NonEmpty
    item: NonEmpty
    storeOrderId: NonEmpty
    insuranceDetails: GoSendInsurance


class GoSendBooking(Strict):
    paymentType: Literal[3]
    deviceToken: str
    collection_location: Literal["pickup"]
    shipment_method: Literal["Instant", "SameDay", "InstantCar"]
    routes: Annotated[list[GoSendRoute], msgspec.Meta(min_length=1, max_length=1)]


class GoSendCancel(Strict):
    orderNo: NonEmpty
    cancelDescription: str | None = None


class FakeGoSend(FakeCourier):
    """`POST /gokilat/v10/booking`, `PUT /gokilat/v10/booking/cancel`; `Client-ID` + `Pass-Key`."""

    name = "gosend"

    def __init__(self, client_id: str = GOSEND_CLIENT_ID, pass_key: str = GOSEND_PASS_KEY) -> None:
        super().__init__()
        self.client_id = client_id
        self.pass_key = pass_key

    def ops(self) -> list[Op]:
        return [
            Op(
                "book",
                "POST",
                "/gokilat/v10/booking",
                GoSendBooking,
                lambda body, _r: body["routes"][0]["storeOrderId"],
                self._book,
            ),
            Op(
                "cancel",
                "PUT",
                "/gokilat/v10/booking/cancel",
                GoSendCancel,
                lambda body, _r: self.order_of(body["orderNo"]),
                self._cancel,
            ),
        ]

    def authorized(self, request: web.Request) -> bool:
        return _same(request.headers.get("Client-ID"), self.client_id) and _same(
            request.headers.get("Pass-Key"), self.pass_key
        )

    def error(self, status: int, message: str, *, retry_after: float | None = None) -> Reply:
        headers = _retry_after({"Error-Message": message}, retry_after)
        return Reply(status, {"errors": [message], "errorMessage": message}, headers)

    def new_id(self, n: int) -> str:
        return f"GK-11-{170562 + n}"

    def _book(self, req: GoSendBooking, _request: web.Request) -> Reply:
        route = req.routes[0]
        order_no = self.book(route.storeOrderId, req)
        return Reply(
            201,
            {
                "id": int(order_no.rsplit("-", 1)[1]),
                "orderNo": order_no,
                "bookingType": req.shipment_method,
                "storeOrderId": route.storeOrderId,
                "errorMessage": None,
                "prebook": False,
                "prebookMessage": None,
                "errors": [],
            },
        )

    def _cancel(self, req: GoSendCancel, _request: web.Request) -> Reply:
        booking = self.bookings.get(req.orderNo)
        if booking is None:
            return Reply(404, {"statusCode": 404, "message": f"Booking {req.orderNo} not found"})
        if booking.status != "active":
            return Reply(422, {"statusCode": 422, "message": "Booking can only be cancelled before pickup"})
        booking.status = "cancelled"
        return Reply(200, {"statusCode": 200, "message": f"Booking {req.orderNo} cancelled"})


# -- GrabExpress ------------------------------------------------------------------------------------


class GrabTokenRequest(Strict):
    client_id: NonEmpty
    client_secret: NonEmpty
    grant_type: Literal["client_credentials"]
    scope: Literal["grab_express.partner_deliveries"]


class GrabCoordinates(Strict):
    latitude: Latitude
    longitude: Longitude


class GrabLocation(Strict):
    address: NonEmpty
    coordinates: GrabCoordinates
    keywords: str | None = None
    cityCode: str | None = None
    extra: dict[str, Any] | None = None


class GrabDimensions(Strict):
    height: int
    width: int
    depth: int
    weight: Annotated[int, msgspec.Meta(gt=0)]  # grams


class GrabPackage(Strict):
    name: NonEmpty
    description: str
    quantity: Annotated[int, msgspec.Meta(ge=1)]
    price: Annotated[int, msgspec.Meta(ge=0)]
    dimensions: GrabDimensions


class GrabPerson(Strict):
    firstName: NonEmpty
    phone: IntlPhone
    smsEnabled: bool
    lastName: str | None = None
    title: str | None = None
    companyName: str | None = None
    email: str | None = None
    instruction: str | None = None


class GrabDelivery(Strict):
    merchantOrderID: NonEmpty
    serviceType: Literal["INSTANT", "SAME_DAY", "BULK"]
    packages: Annotated[list[GrabPackage], msgspec.Meta(min_length=1)]
    origin: GrabLocation
    destination: GrabLocation
    sender: GrabPerson
    recipient: GrabPerson
    vehicleType: Literal["BIKE", "CAR", "VAN", "TRUCK"] = "BIKE"
    codType: Literal["REGULAR", "ADVANCED"] | None = None
    paymentMethod: Literal["CASHLESS", "CASH"] = "CASHLESS"
    payer: Literal["SENDER", "RECIPIENT"] = "SENDER"
    highValue: bool | None = None
    schedule: dict[str, Any] | None = None
    cashOnDelivery: dict[str, Any] | None = None
    promoCode: str | None = None


class FakeGrabExpress(FakeCourier):
    """OAuth2 token at `/grabid/v1/oauth2/token`; deliveries under `/grab-express-sandbox/v1`."""

    name = "grab_express"
    PREFIX = "/grab-express-sandbox"

    def __init__(self, client_id: str = GRAB_CLIENT_ID, client_secret: str = GRAB_CLIENT_SECRET) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = 604799  # seven days, as Grab issues them
        self.tokens: set[str] = set()

    @property
    def base_url(self) -> str:
        return self.url + self.PREFIX

    @property
    def token_url(self) -> str:
        return self.url + "/grabid/v1/oauth2/token"

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (Grab rotated them early)."""
        with self._lock:
            self.tokens.clear()

    def ops(self) -> list[Op]:
        p = self.PREFIX
        return [
            Op(
                "token",
                "POST",
                "/grabid/v1/oauth2/token",
                GrabTokenRequest,
                lambda _b, _r: None,
                self._token,
                auth=False,
            ),
            Op(
                "book",
                "POST",
                f"{p}/v1/deliveries",
                GrabDelivery,
                lambda body, _r: body["merchantOrderID"],
                self._book,
            ),
            Op(
                "cancel",
                "DELETE",
                f"{p}/v1/deliveries/{{delivery_id}}",
                None,
                lambda _b, r: self.order_of(r.match_info["delivery_id"]),
                self._cancel,
            ),
            Op(
                "cancel_order",
                "DELETE",
                f"{p}/v1/merchant/deliveries/{{order_id}}",
                None,
                lambda _b, r: r.match_info["order_id"],
                self._cancel_order,
            ),
        ]

    def authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        with self._lock:
            return any(_same(given, f"Bearer {token}") for token in self.tokens)

    def error(self, status: int, message: str, *, retry_after: float | None = None) -> Reply:
        reason = {
            400: "invalid_argument",
            401: "unauthorized",
            404: "not_found",
            409: "conflict",
            429: "rate_limited",
        }.get(status, "internal")
        return Reply(
            status, {"target": "", "reason": reason, "message": message}, _retry_after({}, retry_after)
        )

    def new_id(self, n: int) -> str:
        return f"IN-2-{n:04d}{secrets.token_hex(8).upper()}"

    def _token(self, req: GrabTokenRequest, _request: web.Request) -> Reply:
        if not (_same(req.client_id, self.client_id) and _same(req.client_secret, self.client_secret)):
            return Reply(
                401, {"error": "invalid_client", "error_description": "client authentication failed"}
            )
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens.add(token)
        return Reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in})

    def _book(self, req: GrabDelivery, _request: web.Request) -> Reply:
        delivery_id = self.book(req.merchantOrderID, req)
        echo = msgspec.to_builtins(req)
        return Reply(
            200,
            {
                "deliveryID": delivery_id,
                "merchantOrderID": req.merchantOrderID,
                "paymentMethod": req.paymentMethod,
                "payer": req.payer,
                "quote": {
                    "service": {"id": 0, "type": req.serviceType, "name": "GrabExpress Instant"},
                    "currency": {"code": "IDR", "symbol": "Rp", "exponent": 0},
                    "amount": 21000,
                    "distance": 5200,
                    "packages": echo["packages"],
                    "origin": echo["origin"],
                    "destination": echo["destination"],
                },
                "sender": echo["sender"],
                "recipient": echo["recipient"],
                "status": "ALLOCATING",
                "trackingURL": f"https://express.grab.com/track/{delivery_id}",
                "courier": None,
                "timeline": {"create": "2024-01-10T08:15:02Z"},
                "schedule": None,
                "cashOnDelivery": {"enable": False, "amount": 0},
                "invoiceNo": "",
                "pickupPin": "4821",
                "advanceInfo": None,
            },
        )

    def _cancel(self, _req: None, request: web.Request) -> Reply:
        booking = self.bookings.get(request.match_info["delivery_id"])
        if booking is None:
            return self.error(404, "Delivery not found")
        if booking.status != "active":
            return self.error(409, f"Delivery cannot be cancelled in status {booking.status.upper()}")
        booking.status = "canceled"
        return Reply(204)

    def _cancel_order(self, _req: None, request: web.Request) -> Reply:
        live = [
            b
            for b in self.bookings.values()
            if b.order_id == request.match_info["order_id"] and b.status == "active"
        ]
        if not live:
            return self.error(404, "No delivery for this merchant order")
        for booking in live:
            booking.status = "canceled"
        return Reply(204)


# -- Borzo ----------------------------------------------------------------------------------------

Money = Annotated[str, msgspec.Meta(pattern=r"^[0-9]+(\.[0-9]{2})?$")]


class BorzoContact(Strict):
    phone: IntlPhone
    name: str | None = None


class BorzoPoint(Strict):
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=350)]
    latitude: Latitude
    longitude: Longitude
    contact_person: BorzoContact
    client_order_id: str | None = None
    note: str | None = None
    required_start_datetime: str | None = None
    required_finish_datetime: str | None = None
    taking_amount: Money | None = None
    buyout_amount: Money | None = None
    is_order_payment_here: bool | None = None
    is_cod_cash_voucher_required: bool | None = None
    building_number: str | None = None
    entrance_number: str | None = None
    floor_number: str | None = None
    apartment_number: str | None = None
    invisible_mile_navigation_instructions: str | None = None
    packages: list[dict[str, Any]] | None = None


class BorzoCreate(Strict):
    matter: NonEmpty
    points: Annotated[list[BorzoPoint], msgspec.Meta(min_length=2)]
    type: Literal["standard", "same_day"] = "standard"
    vehicle_type_id: Literal[1, 2, 7, 8] | None = None
    total_weight_kg: Annotated[int, msgspec.Meta(ge=0)] = 0
    insurance_amount: Money | None = None
    is_client_notification_enabled: bool | None = None
    is_contact_person_notification_enabled: bool | None = None
    is_motobox_required: bool | None = None
    loaders_count: int | None = None
    payment_method: Literal["cash", "non_cash", "bank_card", "balance"] | None = None
    bank_card_id: int | None = None
    promo_code: str | None = None


class BorzoCancel(Strict):
    order_id: int


class FakeBorzo(FakeCourier):
    """`POST {base}/create-order`, `POST {base}/cancel-order`; `X-DV-Auth-Token`."""

    name = "borzo"
    PREFIX = "/api/business/1.6"

    def __init__(self, auth_token: str = BORZO_AUTH_TOKEN) -> None:
        super().__init__()
        self.auth_token = auth_token

    @property
    def base_url(self) -> str:
        return self.url + self.PREFIX

    def ops(self) -> list[Op]:
        p = self.PREFIX
        return [
            Op(
                "book",
                "POST",
                f"{p}/create-order",
                BorzoCreate,
                lambda body, _r: body["points"][0]["client_order_id"],
                self._book,
            ),
            Op(
                "cancel",
                "POST",
                f"{p}/cancel-order",
                BorzoCancel,
                lambda body, _r: self.order_of(body["order_id"]),
                self._cancel,
            ),
        ]

    def authorized(self, request: web.Request) -> bool:
        return _same(request.headers.get("X-DV-Auth-Token"), self.auth_token)

    def error(self, status: int, message: str, *, retry_after: float | None = None) -> Reply:
        code = {401: "invalid_auth_token", 429: "requests_limit_exceeded"}.get(status, message)
        return Reply(status, {"is_successful": False, "errors": [code]}, _retry_after({}, retry_after))

    def invalid(self, exc: msgspec.ValidationError) -> Reply:
        """Borzo's `parameter_errors` mirror the request tree down to the bad field."""
        path, code = _field_path(exc)
        tree: Any = [code]
        for step in reversed(path):
            tree = [*([None] * step), tree] if isinstance(step, int) else {step: tree}
        return self.refusal(tree)

    @staticmethod
    def refusal(parameter_errors: Any = None) -> Reply:
        """The documented 400: `invalid_parameters` with per-field codes (by default the docs' example)."""
        if parameter_errors is None:
            parameter_errors = {
                "points": [
                    {"contact_person": {"phone": ["invalid_phone"]}},
                    {"address": ["address_not_found"]},
                ]
            }
        return Reply(
            400,
            {"is_successful": False, "errors": ["invalid_parameters"], "parameter_errors": parameter_errors},
        )

    def new_id(self, n: int) -> str:
        return str(4212344 + n)

    def _order(self, order_id: str, req: BorzoCreate, status: str) -> dict[str, Any]:
        points = [
            {
                **msgspec.to_builtins(point),
                "point_id": 7700101 + i,
                "delivery_id": None if i == 0 else 3300986 + i,
                "tracking_url": f"https://borzodelivery.com/id/tracking/{order_id}-{i + 1}",
                "taking_amount": "0.00",
                "buyout_amount": "0.00",
                "packages": [],
                "is_return_point": False,
            }
            for i, point in enumerate(req.points)
        ]
        return {
            "order_id": int(order_id),
            "order_name": order_id,
            "type": req.type,
            "matter": req.matter,
            "vehicle_type_id": req.vehicle_type_id,
            "created_datetime": "2024-01-10T15:15:02+07:00",
            "status": status,
            "total_weight_kg": req.total_weight_kg,
            "payment_amount": "21500.00",
            "delivery_fee_amount": "21000.00",
            "insurance_amount": req.insurance_amount or "0.00",
            "payment_method": req.payment_method,
            "courier": None,
            "points": points,
        }

    def _book(self, req: BorzoCreate, _request: web.Request) -> Reply:
        order_id = self.book(req.points[0].client_order_id or "", req)
        return Reply(200, {"is_successful": True, "order": self._order(order_id, req, "new")})

    def _cancel(self, req: BorzoCancel, _request: web.Request) -> Reply:
        booking = self.bookings.get(str(req.order_id))
        if booking is None:
            return self.refusal({"order_id": ["invalid_value"]})
        if booking.status != "active":
            return Reply(400, {"is_successful": False, "errors": ["order_cannot_be_canceled"]})
        booking.status = "canceled"
        return Reply(
            200, {"is_successful": True, "order": self._order(str(req.order_id), booking.body, "canceled")}
        )


# -- running them -------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(*fakes: FakeCourier) -> AsyncIterator[None]:
    """The fakes on the current event loop, for tests that drive a client in-process."""
    for fake in fakes:
        await fake.start()
    try:
        yield
    finally:
        for fake in fakes:
            await fake.stop()


class Background:
    """The fakes on their own event loop in a daemon thread, for a lacak server in another process."""

    def __init__(self, *fakes: FakeCourier) -> None:
        self.fakes = fakes
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-couriers", daemon=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def __enter__(self) -> Background:
        self.thread.start()
        for fake in self.fakes:
            self.run(fake.start())
        return self

    def __exit__(self, *exc: object) -> None:
        for fake in self.fakes:
            self.run(fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
