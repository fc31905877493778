"""The outbound courier clients (GoSend, GrabExpress, Borzo) against fake couriers on loopback.

First in-process: each booking request matches the documented format field by field, with the
documented auth; cancels; Grab's token cache; how every kind of failure is classified. Then end
to end through a real `lacak serve` on both databases: a paid order is booked after the
merchant's request returned, retried through outages, given up as `no_driver` with the reason,
cancelled on void, and booked again on find-new-driver.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import pytest

from lacak.couriers.base import Booked, CourierError
from lacak.couriers.borzo.client import BorzoClient
from lacak.couriers.gosend.client import GoSendClient
from lacak.couriers.grab_express.client import GrabExpressClient
from lacak.couriers.http import CourierHttp, HttpProvider, retry_after
from lacak.orders.models import Order, Place, State
from lacak.pricing.quote import quote
from lacak.pricing.tariff import load_tariff
from lacak.settings import CourierSettings, Settings
from lacak.storage import migrate
from tests.fakes.couriers import (
    BORZO_AUTH_TOKEN,
    GOSEND_CLIENT_ID,
    GOSEND_PASS_KEY,
    GRAB_CLIENT_ID,
    GRAB_CLIENT_SECRET,
    Background,
    Drop,
    FakeBorzo,
    FakeCourier,
    FakeGoSend,
    FakeGrabExpress,
    Hang,
    Misbehaviour,
    Reply,
    serving,
)
from tests.support import (
    Api,
    Backend,
    Server,
    advance,
    create_merchant,
    create_order,
    package,
    postgres_database,
)

T = TypeVar("T")
SECRETS = (GOSEND_PASS_KEY, GRAB_CLIENT_SECRET, BORZO_AUTH_TOKEN)
COURIERS = ("gosend", "grab_express", "borzo")


def an_order(**over: Any) -> Order:
    """The order of the research's examples (Jakarta, shoes, Rp 500,000)."""
    now = datetime(2024, 1, 10, 8, 15, tzinfo=UTC)
    fields: dict[str, Any] = dict(
        pk=7,
        merchant_id=1,
        order_id="NBL2-1704870212382",
        payment_pk=1,
        service="gosend",
        service_type="instant",
        vehicle="motor",
        state=State.FINDING_DRIVER,
        seq=2,
        origin=Place(
            "Toko Jaya Agung",
            "085201311802",
            "Jalan Pancoran Buntu I, Pancoran, 12780",
            "Tunggu di lobby",
            -6.1263348,
            106.7890888,
        ),
        destination=Place(
            "Nando",
            "+6281254564161",
            "Jalan Jatianom, Pasar Minggu, 12540",
            "Pagar hitam",
            -6.284508,
            106.8295789,
        ),
        item_name="Sepatu",
        item_description="Sepatu lari 1 pasang",
        item_price=500000,
        item_weight=2000,
        shipping_cost=21000,
        admin_fee=1000,
        total_price=22000,
        created_at=now,
        updated_at=now,
    )
    fields.update(over)
    return Order(**fields)


# -- in-process rig: the three fakes on the test's loop, and a client for each ---------------------


@dataclass
class Fakes:
    gosend: FakeGoSend = field(default_factory=FakeGoSend)
    grab: FakeGrabExpress = field(default_factory=FakeGrabExpress)
    borzo: FakeBorzo = field(default_factory=FakeBorzo)
    background: Background | None = None  # when they run on a thread of their own

    def of(self, service: str) -> FakeCourier:
        return {"gosend": self.gosend, "grab_express": self.grab, "borzo": self.borzo}[service]

    def env(self, **over: str) -> dict[str, str]:
        """The environment that points lacak at the fakes."""
        return {
            "LACAK_GOSEND_BASE_URL": self.gosend.url,
            "LACAK_GOSEND_CLIENT_ID": GOSEND_CLIENT_ID,
            "LACAK_GOSEND_PASS_KEY": GOSEND_PASS_KEY,
            "LACAK_GRAB_BASE_URL": self.grab.base_url,
            "LACAK_GRAB_TOKEN_URL": self.grab.token_url,
            "LACAK_GRAB_CLIENT_ID": GRAB_CLIENT_ID,
            "LACAK_GRAB_CLIENT_SECRET": GRAB_CLIENT_SECRET,
            "LACAK_BORZO_BASE_URL": self.borzo.base_url,
            "LACAK_BORZO_AUTH_TOKEN": BORZO_AUTH_TOKEN,
            **over,
        }


@dataclass
class Rig(Fakes):
    settings: CourierSettings = field(default_factory=CourierSettings)
    clients: dict[str, HttpProvider] = field(default_factory=dict)
    now: float = 1000.0  # Grab's token clock

    def client(self, name: str, **settings: Any) -> HttpProvider:
        """A client of courier `name`, with its settings changed when given (closed by the rig)."""
        if not settings:
            return self.clients[name]
        client = self.build(name, replace(self.settings, **settings))
        self.clients[f"{name}-{len(self.clients)}"] = client
        return client

    def build(self, name: str, settings: CourierSettings) -> HttpProvider:
        if name == "grab_express":
            return GrabExpressClient(settings, clock=lambda: self.now)
        return {"gosend": GoSendClient, "borzo": BorzoClient}[name](settings)


@pytest.fixture
async def rig(anyio_backend: str) -> AsyncIterator[Rig]:
    r = Rig()
    async with serving(r.gosend, r.grab, r.borzo):
        r.settings = Settings.from_env(r.env(LACAK_COURIER_TIMEOUT="0.5")).couriers
        r.clients = {name: r.build(name, r.settings) for name in COURIERS}
        try:
            yield r
        finally:
            for client in r.clients.values():
                await client.close()


def only(fake: FakeCourier, op: str) -> Any:
    """The body of the one `op` request the fake received."""
    seen = fake.requests(op)
    assert len(seen) == 1, seen
    return seen[0].body


# -- the documented requests ---------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("service_type", "vehicle", "method"),
    [("instant", "motor", "Instant"), ("sameday", "motor", "SameDay"), ("instant", "mobil", "InstantCar")],
)
async def test_gosend_booking_is_the_documented_request(
    rig: Rig, service_type: str, vehicle: str, method: str
) -> None:
    booked = await rig.clients["gosend"].book(an_order(service_type=service_type, vehicle=vehicle), 1)

    assert booked == Booked(external_id="GK-11-170563", live_tracking_url=None)
    [seen] = rig.gosend.requests("book")
    assert (seen.method, seen.path, seen.status) == ("POST", "/gokilat/v10/booking", 201)
    assert seen.headers["Client-ID"] == GOSEND_CLIENT_ID and seen.headers["Pass-Key"] == GOSEND_PASS_KEY
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.body == {
        "paymentType": 3,
        "deviceToken": "",
        "collection_location": "pickup",
        "shipment_method": method,
        "routes": [
            {
                "originName": "Toko Jaya Agung",
                "originNote": "Tunggu di lobby",
                "originContactName": "Toko Jaya Agung",
                "originContactPhone": "6285201311802",
                "originLatLong": "-6.1263348,106.7890888",
                "originAddress": "Jalan Pancoran Buntu I, Pancoran, 12780",
                "destinationName": "Nando",
                "destinationNote": "Pagar hitam",
                "destinationContactName": "Nando",
                "destinationContactPhone": "6281254564161",
                "destinationLatLong": "-6.284508,106.8295789",
                "destinationAddress": "Jalan Jatianom, Pasar Minggu, 12540",
                "item": "Sepatu",
                "storeOrderId": "NBL2-1704870212382",
                "insuranceDetails": {
                    "applied": "false",
                    "fee": "0",
                    "product_description": "Sepatu lari 1 pasang",
                    "product_price": "500000",
                },
            }
        ],
    }


@pytest.mark.anyio
async def test_gosend_insurance_is_sent_as_strings(rig: Rig) -> None:
    await rig.clients["gosend"].book(an_order(insurance=2500), 1)
    assert only(rig.gosend, "book")["routes"][0]["insuranceDetails"] == {
        "applied": "true",
        "fee": "2500",
        "product_description": "Sepatu lari 1 pasang",
        "product_price": "500000",
    }


@pytest.mark.anyio
async def test_gosend_cancel_sends_the_order_number(rig: Rig) -> None:
    client = rig.clients["gosend"]
    booked = await client.book(an_order(), 1)
    await client.cancel(an_order(cancel_description="Cancelled by merchant"), booked.external_id)

    [seen] = rig.gosend.requests("cancel")
    assert (seen.method, seen.path, seen.status) == ("PUT", "/gokilat/v10/booking/cancel", 200)
    assert seen.headers["Client-ID"] == GOSEND_CLIENT_ID and seen.headers["Pass-Key"] == GOSEND_PASS_KEY
    assert seen.body == {"orderNo": "GK-11-170563", "cancelDescription": "Cancelled by merchant"}
    assert rig.gosend.bookings["GK-11-170563"].status == "cancelled"
    # nothing booked, nothing to cancel: no call at all
    await client.cancel(an_order(), None)
    assert len(rig.gosend.requests("cancel")) == 1


@pytest.mark.anyio
async def test_grab_booking_is_the_documented_request(rig: Rig) -> None:
    booked = await rig.clients["grab_express"].book(an_order(vehicle="mobil"), 1)

    token = only(rig.grab, "token")
    assert token == {
        "client_id": GRAB_CLIENT_ID,
        "client_secret": GRAB_CLIENT_SECRET,
        "grant_type": "client_credentials",
        "scope": "grab_express.partner_deliveries",
    }
    [seen] = rig.grab.requests("book")
    assert (seen.method, seen.path, seen.status) == ("POST", "/grab-express-sandbox/v1/deliveries", 200)
    assert seen.headers["Authorization"].removeprefix("Bearer ") in rig.grab.tokens
    assert seen.body == {
        "merchantOrderID": "NBL2-1704870212382",
        "serviceType": "INSTANT",
        "vehicleType": "CAR",
        "codType": "REGULAR",
        "paymentMethod": "CASHLESS",
        "payer": "SENDER",
        "packages": [
            {
                "name": "Sepatu",
                "description": "Sepatu lari 1 pasang",
                "quantity": 1,
                "price": 500000,
                "dimensions": {"height": 0, "width": 0, "depth": 0, "weight": 2000},
            }
        ],
        "origin": {
            "address": "Jalan Pancoran Buntu I, Pancoran, 12780",
            "keywords": "Toko Jaya Agung",
            "coordinates": {"latitude": -6.1263348, "longitude": 106.7890888},
        },
        "destination": {
            "address": "Jalan Jatianom, Pasar Minggu, 12540",
            "keywords": "Nando",
            "coordinates": {"latitude": -6.284508, "longitude": 106.8295789},
        },
        "sender": {
            "firstName": "Toko Jaya Agung",
            "phone": "6285201311802",
            "smsEnabled": False,
            "instruction": "Tunggu di lobby",
        },
        "recipient": {
            "firstName": "Nando",
            "phone": "6281254564161",
            "smsEnabled": True,
            "instruction": "Pagar hitam",
        },
    }
    assert booked.external_id is not None and booked.external_id.startswith("IN-2-")
    assert rig.grab.bookings[booked.external_id].order_id == "NBL2-1704870212382"
    assert booked.live_tracking_url == f"https://express.grab.com/track/{booked.external_id}"


@pytest.mark.anyio
async def test_grab_token_is_reused_until_shortly_before_it_expires(rig: Rig) -> None:
    rig.grab.expires_in = 600
    client = rig.clients["grab_express"]
    await client.book(an_order(), 1)
    rig.now += 539  # one minute before expiry: still good
    await client.book(an_order(), 1)
    assert len(rig.grab.requests("token")) == 1
    rig.now += 2  # inside the last minute: fetched anew before it can die in flight
    await client.book(an_order(), 1)
    assert len(rig.grab.requests("token")) == 2
    assert [s.status for s in rig.grab.requests("book")] == [200, 200, 200]


@pytest.mark.anyio
async def test_grab_fetches_a_new_token_once_on_401(rig: Rig) -> None:
    client = rig.clients["grab_express"]
    await client.book(an_order(), 1)
    rig.grab.revoke_tokens()  # Grab rotated them before expires_in

    booked = await client.book(an_order(), 1)

    assert booked.external_id in rig.grab.bookings
    assert [s.status for s in rig.grab.requests("book")] == [200, 401, 200]
    assert len(rig.grab.requests("token")) == 2


@pytest.mark.anyio
async def test_grab_401_with_a_fresh_token_is_permanent(rig: Rig) -> None:
    rig.grab.fail("book", rig.grab.error(401, "Unauthorized"), times=None)
    with pytest.raises(CourierError) as caught:
        await rig.clients["grab_express"].book(an_order(), 1)
    assert caught.value.permanent
    assert len(rig.grab.requests("book")) == 2 and len(rig.grab.requests("token")) == 2  # one refresh only


@pytest.mark.anyio
async def test_grab_cancel_deletes_the_delivery(rig: Rig) -> None:
    client = rig.clients["grab_express"]
    booked = await client.book(an_order(), 1)
    await client.cancel(an_order(), booked.external_id)

    [seen] = rig.grab.requests("cancel")
    assert (seen.method, seen.path, seen.status) == (
        "DELETE",
        f"/grab-express-sandbox/v1/deliveries/{booked.external_id}",
        204,
    )
    assert seen.headers["Authorization"].startswith("Bearer ")
    assert booked.external_id is not None and rig.grab.bookings[booked.external_id].status == "canceled"


@pytest.mark.anyio
async def test_grab_cancel_without_delivery_id_cancels_the_merchant_order(rig: Rig) -> None:
    """A void that raced the booking: the deliveryID is not known yet, the merchant order is."""
    client = rig.clients["grab_express"]
    booked = await client.book(an_order(), 1)
    await client.cancel(an_order(), None)
    assert booked.external_id is not None and rig.grab.bookings[booked.external_id].status == "canceled"
    [seen] = rig.grab.requests("cancel_order")
    assert seen.path == "/grab-express-sandbox/v1/merchant/deliveries/NBL2-1704870212382"
    await client.cancel(an_order(), None)  # nothing left: Grab's 404 is not an error
    assert [s.status for s in rig.grab.requests("cancel_order")] == [204, 404]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("service_type", "vehicle", "kind", "vehicle_id"),
    [("instant", "motor", "standard", 8), ("sameday", "mobil", "same_day", 7)],
)
async def test_borzo_booking_is_the_documented_request(
    rig: Rig, service_type: str, vehicle: str, kind: str, vehicle_id: int
) -> None:
    order = an_order(service_type=service_type, vehicle=vehicle, item_weight=2300)
    booked = await rig.clients["borzo"].book(order, 1)

    assert booked == Booked(
        external_id="4212345", live_tracking_url="https://borzodelivery.com/id/tracking/4212345-2"
    )
    [seen] = rig.borzo.requests("book")
    assert (seen.method, seen.path, seen.status) == ("POST", "/api/business/1.6/create-order", 200)
    assert seen.headers["X-DV-Auth-Token"] == BORZO_AUTH_TOKEN
    point = {"client_order_id": "NBL2-1704870212382"}
    assert seen.body == {
        "type": kind,
        "matter": "Sepatu",
        "vehicle_type_id": vehicle_id,
        "total_weight_kg": 3,
        "insurance_amount": "0.00",
        "is_client_notification_enabled": False,
        "is_contact_person_notification_enabled": True,
        "is_motobox_required": False,
        "payment_method": "non_cash",
        "points": [
            {
                "address": "Jalan Pancoran Buntu I, Pancoran, 12780",
                "latitude": -6.1263348,
                "longitude": 106.7890888,
                "contact_person": {"phone": "6285201311802", "name": "Toko Jaya Agung"},
                **point,
                "note": "Tunggu di lobby",
            },
            {
                "address": "Jalan Jatianom, Pasar Minggu, 12540",
                "latitude": -6.284508,
                "longitude": 106.8295789,
                "contact_person": {"phone": "6281254564161", "name": "Nando"},
                **point,
                "note": "Pagar hitam",
            },
        ],
    }


@pytest.mark.anyio
async def test_borzo_cancel_sends_the_numeric_order_id(rig: Rig) -> None:
    client = rig.clients["borzo"]
    booked = await client.book(an_order(), 1)
    await client.cancel(an_order(), booked.external_id)
    [seen] = rig.borzo.requests("cancel")
    assert (seen.path, seen.status, seen.body) == (
        "/api/business/1.6/cancel-order",
        200,
        {"order_id": 4212345},
    )
    assert seen.headers["X-DV-Auth-Token"] == BORZO_AUTH_TOKEN
    assert rig.borzo.bookings["4212345"].status == "canceled"


@pytest.mark.anyio
async def test_the_fakes_refuse_what_the_documentation_does_not_allow(rig: Rig) -> None:
    """The fakes are strict, so a client that passes them sends the documented shapes."""
    http = CourierHttp("probe", 2)
    try:
        bad_phone = {
            "matter": "x",
            "points": [
                {"address": "a", "latitude": 1, "longitude": 2, "contact_person": {"phone": "081234567"}},
                {"address": "b", "latitude": 1, "longitude": 2, "contact_person": {"phone": "6281234567"}},
            ],
        }
        with pytest.raises(CourierError, match=r"invalid_parameters; points\[0\]\.contact_person\.phone"):
            await http.call(
                "POST",
                f"{rig.borzo.base_url}/create-order",
                body=bad_phone,
                headers={"X-DV-Auth-Token": BORZO_AUTH_TOKEN},
            )
        misspelt = {"storeOrderID": "x"}
        with pytest.raises(CourierError, match="unknown field `storeOrderID`"):
            await http.call(
                "PUT",
                f"{rig.gosend.url}/gokilat/v10/booking/cancel",
                body=misspelt,
                headers={"Client-ID": GOSEND_CLIENT_ID, "Pass-Key": GOSEND_PASS_KEY},
            )
    finally:
        await http.close()


# -- failures: retryable or permanent, with the courier's words, never a secret -------------------

# courier, misbehaviour (given the fake), permanent?, retry_after, words expected in the error
FAILURES: list[tuple[str, Callable[[Any], Misbehaviour], bool, float | None, str]] = [
    (
        "borzo",
        lambda f: f.refusal(),
        True,
        None,
        "borzo HTTP 400: invalid_parameters; points[0].contact_person.phone: invalid_phone; "
        "points[1].address: address_not_found",
    ),
    (
        "borzo",
        lambda f: Reply(200, {"is_successful": False, "errors": ["insufficient_balance"]}),
        True,
        None,
        "borzo HTTP 200: insufficient_balance",
    ),
    (
        "borzo",
        lambda f: f.error(429, "slow down", retry_after=7),
        False,
        7.0,
        "borzo HTTP 429: requests_limit_exceeded",
    ),
    (
        "gosend",
        lambda f: f.error(422, "Destination is out of service area"),
        True,
        None,
        "gosend HTTP 422: Destination is out of service area",
    ),
    ("gosend", lambda f: f.error(500, "internal error"), False, None, "gosend HTTP 500: internal error"),
    ("gosend", lambda f: Hang(5), False, None, "gosend: no answer within 0.5 s (POST /gokilat/v10/booking)"),
    (
        "grab_express",
        lambda f: f.error(409, "Distance SLA Exceeded"),
        True,
        None,
        "grab_express HTTP 409: Distance SLA Exceeded",
    ),
    (
        "grab_express",
        lambda f: f.error(503, "maintenance", retry_after=30),
        False,
        30.0,
        "grab_express HTTP 503: maintenance",
    ),
    ("grab_express", lambda f: Drop(), False, None, "grab_express: ServerDisconnectedError"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("courier", "misbehaviour", "permanent", "after", "words"),
    FAILURES,
    ids=[f"{c}-{i}" for i, (c, *_) in enumerate(FAILURES)],
)
async def test_failures_are_classified_with_the_couriers_words(
    rig: Rig,
    courier: str,
    misbehaviour: Callable[[Any], Misbehaviour],
    permanent: bool,
    after: float | None,
    words: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = rig.of(courier)
    fake.fail("book", misbehaviour(fake), times=None)
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(CourierError) as caught:
        await rig.clients[courier].book(an_order(), 1)
    assert time.monotonic() - started < 2  # a hanging courier is cut off by the timeout
    error = caught.value
    assert (error.permanent, error.retry_after) == (permanent, after)
    assert words in str(error)
    assert len(fake.requests("book")) == 1  # the client never retries by itself: the task runner does
    assert not any(secret in str(error) or secret in caplog.text for secret in SECRETS)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("courier", "wrong", "words"),
    [
        ("gosend", {"gosend_pass_key": "f" * 64}, "gosend HTTP 401: Unauthorized"),
        (
            "grab_express",
            {"grab_client_secret": "wrong-secret"},
            "grab_express HTTP 401: client authentication failed",
        ),
        ("borzo", {"borzo_auth_token": "F" * 40}, "borzo HTTP 401: invalid_auth_token"),
    ],
)
async def test_bad_credentials_are_permanent_and_never_shown(
    rig: Rig, courier: str, wrong: dict[str, str], words: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CourierError) as caught:
        await rig.client(courier, **wrong).book(an_order(), 1)
    assert caught.value.permanent and words in str(caught.value)
    for secret in (*SECRETS, *wrong.values()):
        assert secret not in str(caught.value) and secret not in caplog.text
    assert rig.of(courier).bookings == {}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("courier", "unset", "words"),
    [
        ("gosend", {"gosend_pass_key": None}, "set LACAK_GOSEND_PASS_KEY"),
        (
            "grab_express",
            {"grab_client_id": None, "grab_client_secret": None},
            "set LACAK_GRAB_CLIENT_ID, LACAK_GRAB_CLIENT_SECRET",
        ),
        ("borzo", {"borzo_auth_token": None}, "set LACAK_BORZO_AUTH_TOKEN"),
    ],
)
async def test_missing_credentials_are_permanent_and_call_nobody(
    rig: Rig, courier: str, unset: dict[str, None], words: str
) -> None:
    with pytest.raises(CourierError, match=words) as caught:
        await rig.client(courier, **unset).book(an_order(), 1)
    assert caught.value.permanent
    assert rig.of(courier).requests() == []


@pytest.mark.anyio
async def test_an_unreachable_courier_is_retryable(rig: Rig) -> None:
    await rig.borzo.stop()  # nothing listens on its port any more
    with pytest.raises(CourierError, match="borzo: ClientConnectorError") as caught:
        await rig.clients["borzo"].book(an_order(), 1)
    assert not caught.value.permanent


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("-3") == 0.0
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    after = retry_after(in_a_minute)
    assert after is not None and 55 <= after <= 60
    assert retry_after(None) is None and retry_after("soon") is None


# -- find a new driver: cancel, then book again ------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("courier", COURIERS)
async def test_find_new_driver_cancels_then_books_anew(rig: Rig, courier: str) -> None:
    client, fake = rig.clients[courier], rig.of(courier)
    first = await client.book(an_order(), 1)

    second = await client.find_new_driver(an_order(), first.external_id, 2)

    assert second.external_id not in (None, first.external_id)
    assert [s.op for s in fake.requests()] == [
        *(["token"] if courier == "grab_express" else []),
        "book",
        "cancel",
        "book",
    ]
    assert all(s.status < 300 for s in fake.requests())
    assert first.external_id is not None and fake.bookings[first.external_id].status.startswith("cancel")
    assert fake.bookings[str(second.external_id)].status == "active"


@pytest.mark.anyio
async def test_find_new_driver_books_when_the_old_booking_is_already_over(rig: Rig) -> None:
    client = rig.clients["gosend"]
    first = await client.book(an_order(), 1)
    rig.gosend.bookings[str(first.external_id)].status = "no_driver"  # GoSend gave up on it

    second = await client.find_new_driver(an_order(), first.external_id, 2)

    assert [s.status for s in rig.gosend.requests("cancel")] == [422]
    assert second.external_id == "GK-11-170564"


@pytest.mark.anyio
async def test_find_new_driver_does_not_book_twice_while_the_cancel_may_still_pass(rig: Rig) -> None:
    client = rig.clients["borzo"]
    first = await client.book(an_order(), 1)
    rig.borzo.fail("cancel", rig.borzo.error(500, "unexpected_error"))

    with pytest.raises(CourierError) as caught:
        await client.find_new_driver(an_order(), first.external_id, 2)

    assert not caught.value.permanent
    assert len(rig.borzo.requests("book")) == 1  # retried as a whole later, not booked beside a live one
    second = await client.find_new_driver(an_order(), first.external_id, 2)
    assert second.external_id == "4212346" and rig.borzo.bookings["4212345"].status == "canceled"


# -- end to end: a real lacak server, fakes in a background thread, both databases ----------------

TARIFF = load_tariff(None)
ATTEMPTS = 3


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    f = Fakes()
    with Background(f.gosend, f.grab, f.borzo) as f.background:
        yield f


@pytest.fixture(scope="module")
def own_backend(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A database of its own, of the same kind as `backend`.

    The session's shared server runs a task runner on the shared database with the default
    (simulator) configuration; it would take these tests' booking tasks.
    """
    data_dir = tmp_path_factory.mktemp(f"couriers-{backend.name}")
    with ExitStack() as stack:
        url = f"sqlite:///{data_dir / 'lacak.db'}"
        if backend.name == "postgres":
            url = stack.enter_context(postgres_database())
        migrate.upgrade(url)
        yield Backend(backend.name, url, data_dir)


@pytest.fixture(scope="module")
def courier_server(
    own_backend: Backend, fakes: Fakes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = own_backend.env(
        LACAK_PROVIDER_GOSEND="gosend",
        LACAK_PROVIDER_GRAB_EXPRESS="grab_express",
        LACAK_PROVIDER_BORZO="borzo",
        LACAK_COURIER_BOOK_ATTEMPTS=str(ATTEMPTS),
        LACAK_COURIER_TIMEOUT="1",
        **fakes.env(),
    )
    server = Server(env, tmp_path_factory.mktemp("couriers") / "server.log").start()
    yield server
    server.stop()


@pytest.fixture()
def merchant(courier_server: Server) -> Api:
    return create_merchant(courier_server.base_url)


def new_id() -> str:
    return f"CT-{uuid.uuid4().hex[:12]}"


def place(api: Api, service: str, oid: str) -> float:
    """Create a paid order with id `oid`; how long the merchant waited for the answer."""
    pkg = package(order_id=oid)
    q = quote(
        TARIFF,
        service,
        "instant",
        "motor",
        (pkg["origin_lat"], pkg["origin_long"]),
        (pkg["destination_lat"], pkg["destination_long"]),
    )
    assert q is not None
    pkg["shipping_price"] = q.shipping_cost
    started = time.monotonic()
    create_order(api, service=service, packages=[pkg])
    return time.monotonic() - started


def eventually(check: Callable[[], T | None], what: str, timeout: float = 15.0) -> T:
    """`check()` once it gives something (polling), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (got := check()) is None:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return got


def booking(backend: Backend, oid: str) -> dict[str, Any]:
    [row] = backend.query(
        "SELECT provider, external_id, status FROM bookings"
        " WHERE order_pk = (SELECT id FROM orders WHERE order_id = $1)",
        oid,
    )
    return row


def booked(backend: Backend, oid: str) -> dict[str, Any]:
    return eventually(lambda: row if (row := booking(backend, oid))["status"] == "booked" else None, "booked")


def issued(fake: FakeCourier, oid: str) -> list[str]:
    """The external ids the fake issued for an order, oldest first."""
    return [external_id for external_id, b in fake.bookings.items() if b.order_id == oid]


def tracked(api: Api, oid: str, status_name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        result: dict[str, Any] = api.track(oid).json()["result"]
        return result if result["status_name"] == status_name else None

    return eventually(check, f"{oid} {status_name}")


def void(api: Api, oid: str) -> None:
    body = api.http.delete(f"/api/mitra/v4/instant/pickup/void/{oid}").json()
    assert body["status"] is True, body


def find_new_driver(api: Api, oid: str) -> None:
    body = api.post("/api/mitra/v4/instant/pickup/find-new-driver", {"order_id": oid}).json()
    assert body["status"] is True, body


@pytest.mark.parametrize("service", COURIERS)
def test_a_paid_order_is_booked_and_a_void_cancels_it(
    own_backend: Backend, fakes: Fakes, merchant: Api, service: str
) -> None:
    fake, oid = fakes.of(service), new_id()
    place(merchant, service, oid)

    row = booked(own_backend, oid)

    assert [s.status < 300 for s in fake.requests("book", oid)] == [True]
    assert row == {"provider": service, "external_id": issued(fake, oid)[0], "status": "booked"}
    assert (
        merchant.track(oid).json()["result"]["status_name"] == "finding_driver"
    )  # until the courier reports

    void(merchant, oid)

    [cancel] = eventually(lambda: fake.requests("cancel", oid) or None, f"{service} cancel")
    assert cancel.status < 300
    assert fake.bookings[row["external_id"]].status.startswith("cancel")
    assert booking(own_backend, oid)["status"] == "cancelled"


def test_a_hanging_courier_never_slows_the_merchant(
    fakes: Fakes, merchant: Api, own_backend: Backend
) -> None:
    oid = new_id()
    fakes.borzo.fail("book", Hang(30), times=None, order_id=oid)

    waited = place(merchant, "borzo", oid)

    eventually(
        lambda: fakes.borzo.requests("book", oid) or None, "the booking call"
    )  # made, and left hanging
    assert waited < 0.9  # the courier's timeout is 1 s: the merchant did not wait for it
    assert booking(own_backend, oid)["status"] == "pending"


def test_a_courier_down_for_two_attempts_books_when_back(
    fakes: Fakes, merchant: Api, own_backend: Backend
) -> None:
    oid = new_id()
    assert fakes.background is not None
    fakes.background.run(fakes.borzo.stop())
    try:
        waited = place(merchant, "borzo", oid)
        assert waited < 0.9  # nobody answers on the courier's port; the merchant is not kept waiting

        def second_failure() -> bool | None:
            [task] = own_backend.query(
                "SELECT attempts, lease_until, last_error FROM tasks WHERE kind = 'courier.book'"
                " AND order_pk = (SELECT id FROM orders WHERE order_id = $1)",
                oid,
            )
            failed = task["lease_until"] is None and "ClientConnectorError" in str(task["last_error"])
            return True if task["attempts"] == 2 and failed else None

        eventually(second_failure, "two failed attempts")
    finally:
        fakes.background.run(fakes.borzo.start())

    row = booked(own_backend, oid)
    assert [s.status for s in fakes.borzo.requests("book", oid)] == [200]
    assert row["external_id"] == issued(fakes.borzo, oid)[0]


def test_retry_after_is_honoured(fakes: Fakes, merchant: Api, own_backend: Backend) -> None:
    oid = new_id()
    fakes.borzo.fail("book", fakes.borzo.error(429, "slow down", retry_after=2.5), order_id=oid)
    place(merchant, "borzo", oid)

    booked(own_backend, oid)

    first, second = fakes.borzo.requests("book", oid)
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 2.4  # the runner's own first backoff would be about 1 s


def test_a_refused_booking_is_no_driver_with_the_reason_and_find_new_driver_books_again(
    fakes: Fakes, merchant: Api, own_backend: Backend
) -> None:
    oid = new_id()
    fakes.borzo.fail("book", FakeBorzo.refusal(), order_id=oid)
    place(merchant, "borzo", oid)

    result = tracked(merchant, oid, "no_driver")

    assert result["cancel_description"] == (
        "courier booking failed: borzo HTTP 400: invalid_parameters; points[0].contact_person.phone: "
        "invalid_phone; points[1].address: address_not_found"
    )
    assert len(fakes.borzo.requests("book", oid)) == 1  # permanent: not retried
    assert booking(own_backend, oid)["status"] == "failed"

    find_new_driver(merchant, oid)

    row = booked(own_backend, oid)
    assert [s.status for s in fakes.borzo.requests("book", oid)] == [400, 200]
    assert row["external_id"] == issued(fakes.borzo, oid)[0]
    assert fakes.borzo.requests("cancel", oid) == []  # nothing was booked before, nothing to cancel


def test_attempts_spent_is_no_driver(fakes: Fakes, merchant: Api, own_backend: Backend) -> None:
    oid = new_id()
    fakes.borzo.fail("book", fakes.borzo.error(500, "unexpected_error"), times=None, order_id=oid)
    place(merchant, "borzo", oid)

    result = tracked(merchant, oid, "no_driver")

    assert result["cancel_description"].startswith("courier booking failed: ")
    assert "borzo HTTP 500: unexpected_error" in result["cancel_description"]
    assert [s.status for s in fakes.borzo.requests("book", oid)] == [500] * ATTEMPTS
    assert booking(own_backend, oid)["status"] == "failed"


def test_find_new_driver_after_no_driver_cancels_and_books_anew(
    fakes: Fakes, merchant: Api, own_backend: Backend, courier_server: Server
) -> None:
    oid = new_id()
    place(merchant, "gosend", oid)
    first = booked(own_backend, oid)["external_id"]
    assert advance(courier_server.base_url, oid, "no_driver")["status"] is True  # as GoSend would report

    find_new_driver(merchant, oid)

    def new_order_no() -> str | None:
        got: str | None = booking(own_backend, oid)["external_id"]
        return got if got != first else None

    second = eventually(new_order_no, "a new orderNo")
    assert issued(fakes.gosend, oid) == [first, second]
    [cancel] = fakes.gosend.requests("cancel", oid)
    assert cancel.body == {"orderNo": first, "cancelDescription": "Merchant asked for a new driver"}
    assert [s.op for s in fakes.gosend.requests(order_id=oid)] == ["book", "cancel", "book"]
