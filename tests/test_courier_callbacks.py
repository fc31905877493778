"""Inbound courier callbacks (couriers.md) on a real server, on both backends.

Every row of lifecycle.md's "Native → unified mapping" for GoSend, GrabExpress and Borzo is
posted with a realistic payload (shapes from the couriers' documented examples) to an order
the courier is carrying; the merchant's tracking answer and the order's history show the
result. Orders are booked with the `fleet` provider so they wait in finding_driver, then the
booking is handed to the courier under test by SQL (its external id), as a real booking would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any, NamedTuple

import httpx
import pytest

from lacak.couriers.borzo import inbound as borzo
from lacak.couriers.gosend import inbound as gosend
from lacak.couriers.grab_express import inbound as grab
from lacak.couriers.inbound import InboundEvent, MalformedPayload, resolve
from lacak.errors import AuthError
from lacak.orders.models import State
from lacak.pricing.quote import quote
from lacak.pricing.tariff import load_tariff
from lacak.settings import CourierSettings
from tests.support import (
    ADMIN_TOKEN,
    FIXTURES,
    Api,
    Backend,
    Server,
    create_merchant,
    create_order,
    package,
)

GOSEND_TOKEN = "gosend-7f3a91c2-callback"
GRAB_TOKEN = "5f0c1d2e3b4a59687f8e9d0c1b2a3948"
BORZO_SECRET = "borzo-cb-secret-91c2d4"
WIB = timezone(timedelta(hours=7))
WIRE = "%Y-%m-%dT%H:%M:%S.%fZ"
ORIGIN, DESTINATION = (-7.8032616, 110.350244), (-7.7349434, 110.405355)  # tests.support.package()


def _price(service: str) -> int:
    q = quote(load_tariff(None), service, "instant", "motor", ORIGIN, DESTINATION)
    assert q is not None
    return q.shipping_cost


PRICE = {s: _price(s) for s in ("gosend", "grab_express", "borzo")}


@pytest.fixture(scope="module")
def couriers(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = backend.env(
        LACAK_PROVIDER_GOSEND="fleet",
        LACAK_PROVIDER_GRAB_EXPRESS="fleet",
        LACAK_PROVIDER_BORZO="fleet",
        LACAK_GOSEND_CALLBACK_TOKEN=GOSEND_TOKEN,
        LACAK_GRAB_CALLBACK_TOKEN=GRAB_TOKEN,
        LACAK_BORZO_CALLBACK_SECRET=BORZO_SECRET,
    )
    srv = Server(env, tmp_path_factory.mktemp("couriers") / "server.log").start()
    yield srv
    client(srv.base_url).close()
    srv.stop()


@pytest.fixture(scope="module")
def merchant(couriers: Server) -> Api:
    # One merchant for the module (creating one costs a key derivation); every test books its
    # own orders.
    return create_merchant(couriers.base_url)


@cache
def client(base_url: str) -> httpx.Client:
    """One kept-alive client per server: a new httpx client per call costs ~0.1 s (TLS setup)."""
    return httpx.Client(base_url=base_url, timeout=30)


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# -- an order carried by a courier ----------------------------------------------------------


class Trip(NamedTuple):
    order_id: str
    pk: int
    provider: str
    external_id: str  # as the courier spells it on the wire, and as tracking_code shows it


def _external_id(provider: str) -> str:
    if provider == "gosend":
        return f"GK-11-{random.randint(1_000_000, 9_999_999)}"
    if provider == "grab_express":
        return "IN-2-" + uuid.uuid4().hex[:20].upper()
    return str(random.randint(4_000_000, 99_999_999))


def book(backend: Backend, api: Api, provider: str, external_id: str | None = None) -> Trip:
    """An order on the fleet provider, then handed to `provider` as if it had booked it."""
    order_id = create_order(api, service=provider, packages=[package(shipping_price=PRICE[provider])])[
        "order_id"
    ]
    external_id = external_id or _external_id(provider)
    deadline = time.monotonic() + 15
    while True:
        # Only once the fleet booking is done: it records its own (empty) external id.
        rows = backend.query(
            "UPDATE bookings SET external_id = $2, provider = $3 WHERE order_pk ="
            " (SELECT id FROM orders WHERE merchant_id = $4 AND order_id = $1) AND status = 'booked'"
            " RETURNING order_pk",
            order_id,
            external_id,
            provider,
            api.merchant_id,
        )
        if rows:
            break
        assert time.monotonic() < deadline, f"{order_id} was never booked"
        time.sleep(0.02)
    pk = rows[0]["order_pk"]
    return Trip(order_id, pk, provider, external_id)


# -- what each courier sends ---------------------------------------------------------------

GOSEND_DRIVER = {
    "name": "Anton Lucarus",
    "phone": "628111251307",
    "photo": "https://gosend.example/d/510001.jpg",
}
GRAB_DRIVER = {"name": "Budi Santoso", "phone": "6281298765432", "photo": "https://grab.example/p/77.jpg"}
BORZO_DRIVER = {
    "name": "Budi Santoso",
    "phone": "6281298765432",
    "photo": "https://borzodelivery.com/img/c/551234.jpg",
}
GRAB_PLATE = "B 3456 KLM"
COURIER_AT = (-6.2011, 106.8123)
GRAB_WIRE_DRIVER = {
    "name": GRAB_DRIVER["name"],
    "phone": GRAB_DRIVER["phone"],
    "licensePlate": GRAB_PLATE,
    "photoURL": GRAB_DRIVER["photo"],
    "currentLat": COURIER_AT[0],
    "currentLng": COURIER_AT[1],
}
# Before allocation Grab sends an empty driver at 0,0.
GRAB_NO_DRIVER = {
    "name": "",
    "phone": "",
    "licensePlate": "",
    "photoURL": "",
    "currentLat": 0,
    "currentLng": 0,
}
GOSEND_LIVE = "http://gjk.io/abcd"
GOSEND_TYPE = {
    "confirmed": "CONFIRMED",
    "allocated": "DRIVER_FOUND",
    "out_for_pickup": "DRIVER_OTW_PICKUP",
    "picked": "ITEM_PICKED",
    "out_for_delivery": "DRIVER_OTW_DROP",
    "on_hold": "ON_HOLD",
    "delivered": "COMPLETED",
    "cancelled": "CANCELLED",
    "no_driver": "DRIVER_NOT_FOUND",
    "rejected": "REJECTED",
}
NO_DRIVER_YET = {"finding_driver", "no_driver"}


class Wire(NamedTuple):
    payload: dict[str, Any]
    driver: dict[str, str] | None  # the driver the payload names
    position: tuple[float, float] | None  # the courier position it carries
    live_url: str | None


def gosend_event(
    trip: Trip, status: str, at: datetime, state: str, reason: str | None = None, **_: Any
) -> Wire:
    d = GOSEND_DRIVER if state not in NO_DRIVER_YET else {"name": "", "phone": "", "photo": ""}
    start = int(at.timestamp())
    payload = {
        "@type": "booking_event",
        "entity_id": trip.external_id,
        "booking_id": trip.external_id,
        "type": GOSEND_TYPE.get(status, status.upper()),
        "event_date": int(at.timestamp() * 1000),
        "event_id": str(uuid.uuid4()),
        "partner_id": "601",
        "destination_type": "market_place",
        "status": status,
        "booking_status": status,
        "booking_type": "instant",
        "driver_name": d["name"],
        "driver_phone": d["phone"],
        "driver_phone2": "",
        "driver_phone3": "",
        "driver_photo_url": d["photo"],
        "total_distance_in_kms": 9.7,
        "price": 34000.0,
        "receiver_name": "Okka" if status == "delivered" else "",
        "live_tracking_url": GOSEND_LIVE,
        "cancelled_by": "customer_service" if reason else None,
        "cancellation_reason": reason,
        "pickup_eta": f"{start + 300}-{start + 900}",
        "delivery_eta": f"{start + 1500}-{start + 2400}",
    }
    return Wire(payload, d if d["name"] else None, None, GOSEND_LIVE)


def grab_event(
    trip: Trip, status: str, at: datetime, state: str, reason: str | None = None, **_: Any
) -> Wire:
    allocated = state not in NO_DRIVER_YET
    track = f"https://express.grab.com/track/{trip.external_id}" if allocated else ""
    driver = GRAB_WIRE_DRIVER if allocated else GRAB_NO_DRIVER
    payload = {
        "deliveryID": trip.external_id,
        "merchantOrderID": trip.order_id,
        "timestamp": int(at.timestamp()),
        "status": status,
        "trackURL": track,
        "pickupPin": "4821",
        "failedReason": reason or "",
        "sender": {"name": "Arfian", "address": "Wirobrajan, Yogyakarta", "relationship": ""},
        "recipient": {"name": "Okka", "address": "Minomartani, Sleman", "relationship": ""},
        "driver": driver,
        "distance": 9700,
        "pickupProofURL": "",
        "dropoffProofURL": "",
        "cancelProofURL": "",
    }
    return Wire(payload, GRAB_DRIVER if allocated else None, COURIER_AT if allocated else None, track or None)


def borzo_event(trip: Trip, status: str, at: datetime, state: str, kind: str = "delivery", **_: Any) -> Wire:
    allocated = state not in NO_DRIVER_YET
    when = at.astimezone(WIB).isoformat()
    order_id = int(trip.external_id)
    # Borzo sends coordinates as numbers in some objects and as strings in others.
    lat, long = COURIER_AT if kind == "delivery" else tuple(str(c) for c in COURIER_AT)
    courier = (
        {
            "courier_id": 551234,
            "surname": "Santoso",
            "name": "Budi",
            "middlename": None,
            "phone": BORZO_DRIVER["phone"],
            "photo_url": BORZO_DRIVER["photo"],
            "latitude": lat,
            "longitude": long,
        }
        if allocated
        else None
    )
    if kind == "order":
        payload = {
            "event_datetime": when,
            "event_type": "order_changed",
            "order": {
                "order_id": order_id,
                "order_name": str(order_id),
                "status": status,
                "status_description": f"Order {status}",
                "payment_amount": "21500.00",
                "courier": courier,
                "points": ["…as in create-order…"],
            },
        }
    else:
        payload = {
            "event_datetime": when,
            "event_type": "delivery_changed",
            "delivery": {
                "delivery_id": order_id + 7,
                "delivery_type": "plain",
                "order_id": order_id,
                "client_id": 90011,
                "client_order_id": trip.order_id,
                "address": "Minomartani, Sleman",
                "latitude": -7.7349434,
                "longitude": 110.405355,
                "status": status,
                "status_datetime": when,
                "created_datetime": when,
                "order_name": str(order_id),
                "order_payment_amount": "21500.00",
                "delivery_price_amount": "21000.00",
                "point_id": 7700102,
                "contact_person": {"name": "Okka", "phone": "6281280045616"},
                "note": "Dekat Pasar",
                "taking_amount": "0.00",
                "buyout_amount": "0.00",
                "courier": courier,
                "packages": [],
            },
        }
    return Wire(payload, BORZO_DRIVER if allocated else None, COURIER_AT if allocated else None, None)


EVENTS: dict[str, Callable[..., Wire]] = {
    "gosend": gosend_event,
    "grab_express": grab_event,
    "borzo": borzo_event,
}


def sign(raw: bytes, secret: str = BORZO_SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def credentials(provider: str, raw: bytes) -> dict[str, str]:
    if provider == "gosend":
        return {"Authorization": GOSEND_TOKEN}
    if provider == "grab_express":
        return {"Authorization": GRAB_TOKEN, "Authorization-Id": "kiriminaja"}
    return {"X-DV-Signature": sign(raw)}


def post(
    srv: Server, provider: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = credentials(provider, raw) if headers is None else headers
    return client(srv.base_url).post(
        f"/couriers/{provider}/callback", content=raw, headers={"Content-Type": "application/json", **sent}
    )


def send(
    srv: Server, trip: Trip, status: str, at: datetime, state: str, **kw: Any
) -> tuple[Wire, httpx.Response]:
    wire = EVENTS[trip.provider](trip, status, at, state, **kw)
    return wire, post(srv, trip.provider, wire.payload)


def soon(seconds: int = 0) -> datetime:
    # Whole seconds: Grab's timestamps have no finer resolution.
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


def tracking(api: Api, trip: Trip) -> dict[str, Any]:
    result: dict[str, Any] = api.track(trip.order_id).json()["result"]
    return result


def history(srv: Server, api: Api, trip: Trip) -> list[dict[str, Any]]:
    body = (
        client(srv.base_url)
        .get(f"/api/admin/orders/{trip.order_id}", params={"merchant": str(api.merchant_id)}, headers=ADMIN)
        .json()
    )
    events: list[dict[str, Any]] = body["result"]["history"]
    return events


def inbox(backend: Backend, provider: str, external_id: str) -> list[dict[str, Any]]:
    return backend.query(
        "SELECT native_status, outcome, order_pk, payload FROM courier_inbox"
        " WHERE provider = $1 AND external_id = $2 ORDER BY id",
        provider,
        external_id,
    )


def metric(srv: Server, provider: str, outcome: str) -> float:
    """lacak_courier_events_total for these labels (in whatever order they are printed)."""
    for name, labels, value in re.findall(
        r"^(\w+)\{([^}]*)\} (\S+)$", client(srv.base_url).get("/metrics").text, re.M
    ):
        if name == "lacak_courier_events_total" and dict(re.findall(r'(\w+)="([^"]*)"', labels)) == {
            "provider": provider,
            "outcome": outcome,
        }:
            return float(value)
    return 0.0


def move(srv: Server, api: Api, trip: Trip, states: tuple[str, ...]) -> None:
    """Operator moves that put the order where the courier's message makes sense."""
    for state in states:
        extra = (
            {"driver_name": "Sari Operator", "driver_phone": "081200000002"}
            if state == "driver_assigned"
            else {}
        )
        body = (
            client(srv.base_url)
            .post(
                f"/api/admin/orders/{trip.order_id}/advance",
                json={"state": state, "merchant": str(api.merchant_id), **extra},
                headers=ADMIN,
            )
            .json()
        )
        assert body["result"]["outcome"] == "applied", body


# -- every mapping row ----------------------------------------------------------------------


class Row(NamedTuple):
    provider: str
    native: str
    state: str
    before: tuple[str, ...] = ()  # where the order is first (operator moves from finding_driver)
    reason: str | None = None  # the courier's failure/cancel reason, as it sends it
    described: str | None = None  # the cancel_description that follows
    kind: str = "delivery"  # Borzo: an order-level or delivery-level callback


G, X, B = "gosend", "grab_express", "borzo"
MAPPING = [
    Row(G, "confirmed", "finding_driver", before=("no_driver",)),
    Row(G, "allocated", "driver_assigned"),
    Row(G, "out_for_pickup", "at_pickup"),
    Row(G, "picked", "picked_up"),
    Row(G, "out_for_delivery", "in_transit"),
    Row(G, "on_hold", "on_hold", before=("picked_up",)),
    Row(G, "delivered", "delivered", before=("in_transit",)),
    Row(G, "cancelled", "cancelled", reason="Dibatalkan oleh CS", described="Dibatalkan oleh CS"),
    Row(G, "no_driver", "no_driver", described="driver not found"),
    Row(
        G,
        "rejected",
        "failed",
        before=("in_transit",),
        reason="Penerima tidak dapat dihubungi",
        described="Penerima tidak dapat dihubungi",
    ),
    Row(X, "QUEUEING", "finding_driver", before=("no_driver",)),
    Row(X, "ALLOCATING", "finding_driver", before=("driver_assigned",)),  # the driver dropped it
    Row(X, "PENDING_PICKUP", "driver_assigned"),
    Row(X, "PICKING_UP", "at_pickup"),
    Row(X, "PENDING_DROP_OFF", "picked_up"),
    Row(X, "IN_DELIVERY", "in_transit"),
    Row(X, "IN_RETURN", "returning", before=("in_transit",)),
    Row(X, "COMPLETED", "delivered"),
    Row(X, "RETURNED", "returned", before=("returning",)),
    Row(X, "CANCELED", "cancelled", described="cancelled"),
    Row(X, "CANCELLED", "cancelled", described="cancelled"),  # the webhook's other spelling
    Row(X, "FAILED", "no_driver", reason="6|Could not find driver", described="Could not find driver"),
    Row(
        X,
        "FAILED",
        "failed",
        before=("picked_up",),
        reason="5|Canceled by Grab Operator",
        described="Canceled by Grab Operator",
    ),
    Row(B, "planned", "finding_driver", before=("no_driver",)),
    Row(B, "available", "finding_driver", before=("no_driver",), kind="order"),
    Row(B, "reactivated", "finding_driver", before=("driver_assigned",), kind="order"),
    Row(B, "courier_assigned", "driver_assigned"),
    Row(B, "courier_departed", "driver_assigned"),
    Row(B, "courier_at_pickup", "at_pickup"),
    Row(B, "parcel_picked_up", "picked_up"),
    Row(B, "courier_arrived", "in_transit"),
    Row(B, "delayed", "on_hold", before=("in_transit",)),
    Row(B, "return_courier_picked_up", "returning", before=("in_transit",)),
    Row(B, "finished", "delivered"),
    Row(B, "return_finished", "returned", before=("returning",)),
    Row(B, "canceled", "cancelled", described="cancelled"),
]
DATE_SET_BY = {
    "driver_assigned": "allocated_at",
    "delivered": "finished_at",
    "returned": "finished_at",
    "cancelled": "canceled_at",
}
EMPTY_DRIVER = {"name": None, "phone": None, "photo": None}


@pytest.mark.parametrize("row", MAPPING, ids=[f"{r.provider}-{r.native}-{r.state}" for r in MAPPING])
def test_every_mapping_row(row: Row, couriers: Server, merchant: Api, backend: Backend) -> None:
    trip = book(backend, merchant, row.provider)
    move(couriers, merchant, trip, row.before)
    at = soon(5)
    wire, r = send(couriers, trip, row.native, at, row.state, reason=row.reason, kind=row.kind)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": True,
        "text": "ok",
        "code": 0,
        "method": None,
        "result": {"received": 1, "outcomes": ["applied"]},
    }

    t = tracking(merchant, trip)
    assert t["status_name"] == row.state
    assert t["tracking_code"] == trip.external_id
    for state, field in DATE_SET_BY.items():
        if state == row.state:
            assert t["date"][field] == at.strftime(WIRE), field
    if row.state == "driver_assigned":
        assert t["driver"] == wire.driver
    elif row.state == "finding_driver":  # a driver change clears the previous driver
        assert t["driver"] == EMPTY_DRIVER and t["date"]["allocated_at"] is None
    if row.described is not None:
        assert t["cancel_description"] == row.described
    if wire.live_url is not None:
        assert t["live_tracking_url"] == wire.live_url

    last = history(couriers, merchant, trip)[-1]
    assert (last["state"], last["outcome"], last["source"], last["native_code"]) == (
        row.state,
        "applied",
        "courier",
        row.native,
    )
    assert last["dedupe_key"].startswith(f"{row.provider}:")
    assert datetime.fromisoformat(last["occurred_at"]) == at

    live = backend.query("SELECT lat, long, at FROM live_positions WHERE order_pk = $1", trip.pk)
    assert [(p["lat"], p["long"]) for p in live] == ([wire.position] if wire.position else [])
    [stored] = inbox(backend, row.provider, trip.external_id)
    assert (stored["native_status"], stored["outcome"], stored["order_pk"]) == (
        row.native,
        "applied",
        trip.pk,
    )
    assert json.loads(stored["payload"]) == wire.payload


def test_grab_driver_plate_is_kept_with_the_driver(couriers: Server, merchant: Api, backend: Backend) -> None:
    trip = book(backend, merchant, "grab_express")
    send(couriers, trip, "PENDING_PICKUP", soon(), "driver_assigned")
    rows = backend.query("SELECT driver_plate FROM orders WHERE id = $1", trip.pk)
    assert rows == [{"driver_plate": GRAB_PLATE}]


def test_the_gosend_fixture_verbatim(couriers: Server, merchant: Api, backend: Backend) -> None:
    raw = (FIXTURES / "courier_gosend_booking_event.json").read_bytes()
    trip = book(backend, merchant, "gosend", external_id="GK-11-117385")
    r = post(couriers, "gosend", raw)
    assert r.status_code == 200 and r.json()["result"] == {"received": 1, "outcomes": ["applied"]}
    t = tracking(merchant, trip)
    assert (t["status_name"], t["status"], t["tracking_code"]) == ("no_driver", 105, "GK-11-117385")
    assert (t["cancel_description"], t["live_tracking_url"]) == ("driver not found", "http://gjk.io/abcd")
    assert t["driver"] == EMPTY_DRIVER  # GoSend's empty strings are "no driver", not a driver named ""
    last = history(couriers, merchant, trip)[-1]
    assert (last["native_code"], last["native_text"], last["dedupe_key"]) == (
        "no_driver",
        "DRIVER_NOT_FOUND",
        "gosend:7444acc4-0000-4000-8000-000000000001",
    )
    assert datetime.fromisoformat(last["occurred_at"]) == datetime(2022, 3, 29, 8, 35, 33, tzinfo=UTC)
    assert inbox(backend, "gosend", "GK-11-117385")[0]["payload"] == raw.decode()


# -- authentication: refused before anything is stored -------------------------------------

Forge = Callable[[bytes], tuple[bytes, dict[str, str]]]
BAD_AUTH: list[tuple[str, str, Forge]] = [
    (G, "wrong token", lambda raw: (raw, {"Authorization": "not-the-token"})),
    (G, "missing header", lambda raw: (raw, {})),
    (G, "bearer prefix", lambda raw: (raw, {"Authorization": f"Bearer {GOSEND_TOKEN}"})),  # sent verbatim
    (X, "wrong token", lambda raw: (raw, {"Authorization": GOSEND_TOKEN})),
    (X, "missing header", lambda raw: (raw, {"Authorization-Id": "kiriminaja"})),
    (B, "wrong signature", lambda raw: (raw, {"X-DV-Signature": sign(raw, "someone-else")})),
    (B, "missing signature", lambda raw: (raw, {})),
    (B, "tampered body", lambda raw: (raw.replace(b"Okka", b"Mallory"), {"X-DV-Signature": sign(raw)})),
    (B, "signature of nothing", lambda raw: (raw, {"X-DV-Signature": sign(b"")})),
]
DELIVERED = {G: "delivered", X: "COMPLETED", B: "finished"}


def _assert_refused(r: httpx.Response, backend: Backend, trip: Trip, words: str) -> None:
    assert r.status_code == 401
    body = r.json()
    assert (body["status"], body["code"], body["result"]) == (False, 401, None)
    assert words in body["text"]
    assert inbox(backend, trip.provider, trip.external_id) == []


@pytest.mark.parametrize(("provider", "what", "forge"), BAD_AUTH, ids=[f"{p}-{w}" for p, w, _ in BAD_AUTH])
def test_bad_credentials_are_refused_and_nothing_is_stored(
    provider: str, what: str, forge: Forge, couriers: Server, merchant: Api, backend: Backend
) -> None:
    trip = book(backend, merchant, provider)
    wire = EVENTS[provider](trip, DELIVERED[provider], soon(), "delivered")
    raw, headers = forge(json.dumps(wire.payload).encode())
    _assert_refused(post(couriers, provider, raw, headers), backend, trip, "invalid")
    assert tracking(merchant, trip)["status_name"] == "finding_driver"


@pytest.mark.parametrize("provider", [G, X, B])
def test_unconfigured_secret_refuses_everything(provider: str, server: Server, backend: Backend) -> None:
    # The shared server has no callback secrets: even the "right" credentials are refused. The
    # id is booked nowhere: had the call got through, an unknown_order row would show it.
    trip = Trip("TST-none", 0, provider, _external_id(provider))
    wire = EVENTS[provider](trip, DELIVERED[provider], soon(), "delivered")
    _assert_refused(post(server, provider, wire.payload), backend, trip, "not configured")


# -- malformed bodies, unknown orders and statuses ---------------------------------------

MALFORMED = [b'{"status": "delivered",', b"[1, 2]", b'"delivered"', b"", b"{}"]


@pytest.mark.parametrize("provider", [G, X, B])
def test_malformed_json_is_400_and_nothing_is_stored(
    provider: str, couriers: Server, backend: Backend
) -> None:
    count = "SELECT count(*) AS n FROM courier_inbox WHERE provider = $1"
    before = backend.query(count, provider)
    for raw in MALFORMED:
        r = post(couriers, provider, raw)
        assert r.status_code == 400, (raw, r.text)
        assert (r.json()["status"], r.json()["code"]) == (False, 400)
    assert backend.query(count, provider) == before


@pytest.mark.parametrize("provider", [G, X, B])
def test_callbacks_keep_request_ids_route_metrics_and_405s(provider: str, couriers: Server) -> None:
    # POST callbacks skip Starlette's router (routes.FastRoutes): they must still be observed
    # like every route, and every other method on the path still gets Starlette's envelope.
    path = f"/couriers/{provider}/callback"
    r = client(couriers.base_url).post(path, content=b"[1]", headers={"X-Request-ID": "cb-fast-1"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "cb-fast-1"
    lines = client(couriers.base_url).get("/metrics").text.splitlines()
    counted = [line for line in lines if line.startswith("lacak_http_requests_total{")]
    assert any(f'route="{path}"' in line and 'method="POST"' in line for line in counted), counted
    for method in ("GET", "PUT", "HEAD"):
        r = client(couriers.base_url).request(method, path)
        assert r.status_code == 405, (method, r.text)
        if method != "HEAD":
            assert (r.json()["status"], r.json()["text"]) == (False, "method not allowed")


@pytest.mark.parametrize("provider", [G, X, B])
def test_unknown_order_is_recorded_counted_and_answered_200(
    provider: str, couriers: Server, backend: Backend
) -> None:
    nobody = Trip("TST-none", 0, provider, _external_id(provider))  # never booked
    counted = metric(couriers, provider, "unknown_order")
    wire, r = send(couriers, nobody, DELIVERED[provider], soon(), "delivered")
    assert r.status_code == 200 and r.json()["result"] == {"received": 1, "outcomes": ["unknown_order"]}
    [row] = inbox(backend, provider, nobody.external_id)
    assert (row["native_status"], row["outcome"], row["order_pk"]) == (
        DELIVERED[provider],
        "unknown_order",
        None,
    )
    assert json.loads(row["payload"]) == wire.payload
    assert metric(couriers, provider, "unknown_order") == counted + 1


# Real or plausible codes the mapping table does not list.
UNKNOWN = {G: "driver_reassigned", X: "PENDING_PAYMENT", B: "return_planned"}


@pytest.mark.parametrize("provider", [G, X, B])
def test_unknown_status_is_recorded_and_changes_nothing(
    provider: str, couriers: Server, merchant: Api, backend: Backend
) -> None:
    trip = book(backend, merchant, provider)
    seen = tracking(merchant, trip)
    counted = metric(couriers, provider, "unknown_status")
    wire, r = send(couriers, trip, UNKNOWN[provider], soon(), "in_transit")
    assert r.status_code == 200 and r.json()["result"] == {"received": 1, "outcomes": ["unknown_status"]}
    [row] = inbox(backend, provider, trip.external_id)
    assert (row["native_status"], row["outcome"], row["order_pk"]) == (
        UNKNOWN[provider],
        "unknown_status",
        trip.pk,
    )
    assert json.loads(row["payload"]) == wire.payload
    assert metric(couriers, provider, "unknown_status") == counted + 1
    assert tracking(merchant, trip) == seen
    assert [e["native_code"] for e in history(couriers, merchant, trip) if e["source"] == "courier"] == []


# -- duplicates and out-of-order deliveries ------------------------------------------------


@pytest.mark.parametrize("provider", [G, X, B])
def test_the_same_event_twice_is_applied_once(
    provider: str, couriers: Server, merchant: Api, backend: Backend
) -> None:
    trip = book(backend, merchant, provider)
    wire = EVENTS[provider](trip, DELIVERED[provider], soon(), "delivered")
    outcomes = [post(couriers, provider, wire.payload).json()["result"]["outcomes"] for _ in range(2)]
    assert outcomes == [["applied"], ["duplicate"]]
    courier_events = [e for e in history(couriers, merchant, trip) if e["source"] == "courier"]
    assert [(e["state"], e["native_code"]) for e in courier_events] == [("delivered", DELIVERED[provider])]
    webhooks = backend.query(
        "SELECT count(*) AS n FROM deliveries WHERE order_pk = $1 AND state = 'delivered'", trip.pk
    )
    assert webhooks == [{"n": 1}]
    assert [r["outcome"] for r in inbox(backend, provider, trip.external_id)] == ["applied", "duplicate"]


# (native status, unified state) per provider: a later step, then an earlier one arriving late.
LATE = {
    G: [("out_for_delivery", "in_transit"), ("delivered", "delivered"), ("picked", "picked_up")],
    X: [("IN_DELIVERY", "in_transit"), ("COMPLETED", "delivered"), ("PENDING_DROP_OFF", "picked_up")],
    B: [("courier_arrived", "in_transit"), ("finished", "delivered"), ("parcel_picked_up", "picked_up")],
}


@pytest.mark.parametrize("provider", [G, X, B])
@pytest.mark.parametrize(("step", "outcome"), [(0, "stale"), (1, "refused")], ids=["in_transit", "delivered"])
def test_late_events_never_move_an_order_backwards(
    provider: str, step: int, outcome: str, couriers: Server, merchant: Api, backend: Backend
) -> None:
    trip = book(backend, merchant, provider)
    (native, reached), (late, late_state) = LATE[provider][step], LATE[provider][2]
    send(couriers, trip, native, soon(5), reached)
    _, r = send(couriers, trip, late, soon(), late_state)  # happened earlier, arrives later
    assert r.json()["result"]["outcomes"] == [outcome]
    assert tracking(merchant, trip)["status_name"] == reached
    last = history(couriers, merchant, trip)[-1]
    assert (last["state"], last["outcome"], last["native_code"]) == (late_state, outcome, late)


# -- the pure parts: no server -------------------------------------------------------------


def _event(after_pickup: State | None) -> InboundEvent:
    return InboundEvent(
        external_id="IN-1",
        native_status="FAILED",
        state=State.NO_DRIVER,
        after_pickup=after_pickup,
        dedupe_key="k",
    )


@pytest.mark.parametrize(
    ("state", "hold_from", "expected"),
    [
        (State.FINDING_DRIVER, None, State.NO_DRIVER),
        (State.DRIVER_ASSIGNED, None, State.NO_DRIVER),
        (State.AT_PICKUP, None, State.NO_DRIVER),
        (State.PICKED_UP, None, State.FAILED),
        (State.IN_TRANSIT, None, State.FAILED),
        (State.RETURNING, None, State.FAILED),
        (State.ON_HOLD, State.AT_PICKUP, State.NO_DRIVER),  # held before the pickup
        (State.ON_HOLD, State.IN_TRANSIT, State.FAILED),
    ],
)
def test_grab_failed_means_no_driver_before_pickup_and_failed_after(
    state: State, hold_from: State | None, expected: State
) -> None:
    assert resolve(_event(State.FAILED), state, hold_from) == expected
    assert resolve(_event(None), state, hold_from) == State.NO_DRIVER  # no marker: no dependence


def test_grab_failed_carries_the_marker() -> None:
    [e] = grab.parse(b'{"deliveryID": "IN-1", "status": "FAILED", "failedReason": "6|Could not find driver"}')
    assert (e.state, e.after_pickup, e.reason, e.native_text) == (
        State.NO_DRIVER,
        State.FAILED,
        "Could not find driver",
        "6|Could not find driver",
    )


@pytest.mark.parametrize(
    "stamp",
    ["1704871230", '"1704871230"', '"2024-01-10T07:20:30Z"', '"2024-01-10T14:20:30+07:00"', "1704871230.0"],
)
def test_grab_timestamps_in_seconds_or_iso(stamp: str) -> None:
    [e] = grab.parse(b'{"deliveryID": "IN-1", "status": "COMPLETED", "timestamp": %b}' % stamp.encode())
    assert e.occurred_at == datetime(2024, 1, 10, 7, 20, 30, tzinfo=UTC)


def test_borzo_signature_is_checked_on_the_raw_bytes() -> None:
    settings = CourierSettings(borzo_callback_secret=BORZO_SECRET)
    raw = b'{"event_datetime": "2024-01-10T15:24:11+07:00", "order": {"order_id": 1, "status": "available"}}'
    borzo.verify(settings, {"x-dv-signature": sign(raw).upper()}, raw)  # hex case does not matter
    reformatted = json.dumps(json.loads(raw), indent=1).encode()  # same JSON, other bytes
    assert reformatted != raw
    with pytest.raises(AuthError, match="invalid borzo callback credentials"):
        borzo.verify(settings, {"x-dv-signature": sign(raw)}, reformatted)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_datetime": "2024-01-10T15:24:11+07:00"}',
        b'{"event_datetime": "yesterday", "order": {"order_id": 1, "status": "available"}}',
        b'{"order": {"order_id": 1, "status": "available"}}',
    ],
)
def test_borzo_bodies_without_what_lacak_needs_are_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedPayload):
        borzo.parse(raw)


def test_gosend_token_header_name_is_configurable() -> None:
    settings = CourierSettings(gosend_callback_header="X-Callback-Token", gosend_callback_token=GOSEND_TOKEN)
    gosend.verify(settings, {"x-callback-token": GOSEND_TOKEN}, b"{}")
    with pytest.raises(AuthError):
        gosend.verify(settings, {"authorization": GOSEND_TOKEN}, b"{}")


def test_borzo_courier_position_may_come_as_strings() -> None:
    raw = (
        b'{"event_datetime": "2024-01-10T15:18:40+07:00", "event_type": "order_changed", "order":'
        b' {"order_id": 4212345, "status": "active", "courier": {"name": "Budi", "surname": "Santoso",'
        b' "latitude": "-6.1702", "longitude": "106.8011"}}}'
    )
    [e] = borzo.parse(raw)
    assert (e.external_id, e.state, e.lat, e.long) == ("4212345", None, -6.1702, 106.8011)
    assert e.driver is not None and e.driver.name == "Budi Santoso"
    assert e.occurred_at == datetime(2024, 1, 10, 8, 18, 40, tzinfo=UTC)
