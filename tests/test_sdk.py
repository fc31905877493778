"""The official `kiriminaja` SDK, unmodified, driving the whole instant flow against a server.

Every result is checked field by field against what was sent and against api.md: each
endpoint's own key spellings (`shipping_costs`, `lat_long`, `poly_line`, `live_track_url`,
`latitude`/`longitude`, `polyline`, driver `image` vs `photo`), the payment `status_code`
label vs integer, and the id formats.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import polyline
import pytest
from kiriminaja import (  # type: ignore[import-untyped]  # the SDK ships no type information
    AsyncKiriminAja,
    InstantPickupItem,
    InstantPickupPackage,
    InstantPickupPayload,
    InstantService,
    InstantVehicle,
    KiriminAja,
    PricingInstantLocationPayload,
    PricingInstantPayload,
)
from kiriminaja.http import HttpError  # type: ignore[import-untyped]

from tests.support import FIXTURES, Api, Backend, Server, advance, create_order, package

SENT = package()  # gosend instant motor over this trip: Rp 34,000 in the default tariff
QUOTE = 34000
ADMIN_FEE = 1000
PREFIX = "SDK"
ENVELOPE_KEYS = ["status", "text", "code", "method", "result"]
WIRE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ORDER_ID = re.compile(rf"^{PREFIX}-(\d{{13}})$")
LIVE_URL = re.compile(r"http://127\.0\.0\.1:\d+/t/[A-Za-z0-9_-]{24}")  # lacak's live page
PAYMENT_ID = re.compile(r"^PID-(\d{10})$")
PAYMENT_KEYS = {"payment_id", "amount", "status_code", "qr_content", "pay_time"}
PICKUP_PACKAGE_KEYS = {
    "awb",
    "order_id",
    "service",
    "service_type",
    "status",
    "live_track_url",
    "poly_line",
    "origin",
    "destination",
    "driver",
}
VOID_PACKAGE_KEYS = {
    "awb",
    "order_id",
    "service",
    "service_type",
    "status",
    "live_track_url",
    "polyline",
    "origin",
    "destination",
}
# get_payment's packages are the 2025 package shape (api.md: latitude/longitude "payment").
PAYMENT_PACKAGE_KEYS = set(
    json.loads((FIXTURES / "webhook_shipped_packages_2025.json").read_text())["packages"][0]
)
DRIVER = {"driver_name": "Budi Santoso", "driver_phone": "081298765432", "tracking_code": "GK-11-3120092"}
NO_DRIVER = {"name": None, "phone": None, "photo": None}


@pytest.fixture()
def client(server: Server, api: Api) -> Iterator[KiriminAja]:
    with KiriminAja(base_url=server.base_url, api_key=api.key) as sdk:
        yield sdk


# -- checks -----------------------------------------------------------------------------------


def envelope(body: Any, *, code: int | None = 0, method: str | None = None, text: str = "success") -> Any:
    """Assert a success envelope (keys in order) and return its result."""
    assert list(body) == ENVELOPE_KEYS, body
    assert (body["status"], body["text"], body["code"], body["method"]) == (True, text, code, method), body
    return body["result"]


def failure(body: Any, code: int, text: str | None = None) -> None:
    assert list(body) == ENVELOPE_KEYS, body
    assert body["status"] is False and body["code"] == code and body["method"] is None, body
    assert body["result"] is None
    assert isinstance(body["text"], str) and body["text"]
    if text is not None:
        assert body["text"] == text


def wire_time(value: Any) -> datetime:
    assert isinstance(value, str) and WIRE_TIME.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def within(epoch: float, started: float) -> None:
    """`epoch` (seconds) lies between the start of the test and now, give or take a second."""
    assert started - 1 <= epoch <= time.time() + 1, (epoch, started)


def is_int(value: Any) -> bool:
    return type(value) is int


def latlong(side: str) -> tuple[float, float]:
    return SENT[f"{side}_lat"], SENT[f"{side}_long"]


def sent_place(side: str, *fields: str, **extra: Any) -> dict[str, Any]:
    """`side`'s fields as sent (`origin_name` → `name`, …), plus `extra`."""
    return {f: SENT[f"{side}_{f}"] for f in fields} | extra


def tracking_place(side: str) -> dict[str, Any]:
    return sent_place(side, "name", "address", "address_note", "phone", "lat", "long")


def latitude_place(side: str) -> dict[str, Any]:
    """The void / get_payment spelling: `latitude` and `longitude`."""
    lat, long = latlong(side)
    return sent_place(side, "name", "address", "phone", latitude=lat, longitude=long)


def check_pricing(result: Any) -> int:
    """The quote for gosend instant, after checking the whole pricing result."""
    assert isinstance(result, list) and [s["name"] for s in result] == ["gosend"], result
    gosend = result[0]
    assert set(gosend) == {"name", "costs", "insurances"}
    instant = [c for c in gosend["costs"] if c["service_type"] == "instant"]
    assert len(instant) == 1, gosend["costs"]
    for cost in gosend["costs"]:
        assert set(cost) == {"service_type", "estimation", "price"}
        assert cost["estimation"] is None or isinstance(cost["estimation"], str)
        price = cost["price"]
        assert set(price) == {"admin_fee", "shipping_costs", "total_price"}  # plural, here only
        assert all(is_int(v) for v in price.values()), price
        assert price["total_price"] == price["shipping_costs"] + price["admin_fee"]
    assert instant[0]["price"] == {
        "admin_fee": ADMIN_FEE,
        "shipping_costs": QUOTE,
        "total_price": QUOTE + ADMIN_FEE,
    }
    assert gosend["insurances"], "insurance tiers are listed"
    assert gosend["insurances"][0]["type"] == "silver"
    for tier in gosend["insurances"]:
        assert set(tier) == {"value", "type"} and is_int(tier["value"]) and tier["value"] > 0
    return int(instant[0]["price"]["shipping_costs"])


def check_pickup(result: Any, started: float) -> tuple[str, str, str]:
    """(order_id, payment_id, poly_line) after checking the whole pickup result."""
    assert set(result) == {"payment", "packages"}
    payment = result["payment"]
    assert set(payment) == PAYMENT_KEYS
    pid = PAYMENT_ID.match(payment["payment_id"])
    assert pid, payment
    within(int(pid.group(1)), started)
    assert payment["amount"] == QUOTE + ADMIN_FEE and is_int(payment["amount"])
    assert payment["status_code"] == "paid"  # a label here; an integer in void and get_payment
    assert payment["qr_content"] is None
    within(wire_time(payment["pay_time"]).timestamp(), started)

    assert len(result["packages"]) == 1
    pkg = result["packages"][0]
    assert set(pkg) == PICKUP_PACKAGE_KEYS
    oid = ORDER_ID.match(pkg["order_id"])
    assert oid, pkg["order_id"]
    ms = int(oid.group(1))
    within(ms / 1000, started)
    assert int(pid.group(1)) == ms // 1000, "order id and payment id carry the same creation time"
    assert (pkg["awb"], pkg["service"], pkg["service_type"], pkg["status"]) == ("", "gosend", "instant", 105)
    assert LIVE_URL.fullmatch(pkg["live_track_url"]), pkg["live_track_url"]  # lacak's own page
    for side in ("origin", "destination"):
        lat_long = pkg[side].pop("lat_long")
        assert isinstance(lat_long, str) and " " not in lat_long
        assert tuple(float(x) for x in lat_long.split(",")) == latlong(side)
        assert pkg[side] == sent_place(side, "name", "address", "phone")
    assert pkg["driver"] == {"name": None, "phone": None, "image": None}
    route = polyline.decode(pkg["poly_line"], 5)  # the street route the courier will drive
    assert len(route) >= 2
    assert route[0] == pytest.approx(latlong("origin"), abs=1e-5)
    assert route[-1] == pytest.approx(latlong("destination"), abs=1e-5)
    return pkg["order_id"], payment["payment_id"], pkg["poly_line"]


def check_tracking(result: Any, order_id: str, state: str, status: int) -> None:
    """Everything but `driver`, `date` (besides created_at), tracking_code and cancel_description."""
    rest = {
        k: v for k, v in result.items() if k not in ("driver", "date", "tracking_code", "cancel_description")
    }
    assert LIVE_URL.fullmatch(rest.pop("live_tracking_url"))
    assert rest == {
        "origin": tracking_place("origin"),
        "destination": tracking_place("destination"),
        "cost": {
            "shipping_cost": QUOTE,
            "insurance": None,
            "admin_fee": ADMIN_FEE,
            "total_price": QUOTE + ADMIN_FEE,
        },
        "item": {"price": SENT["item"]["price"], "description": SENT["item"]["name"]},
        "order_id": order_id,
        "service": "gosend",
        "service_type": "instant",
        "status": status,
        "status_name": state,
    }
    created = wire_time(result["date"]["created_at"])
    assert abs(created.timestamp() * 1000 - int(order_id.rsplit("-", 1)[1])) <= 1


def check_void(result: Any, order_id: str, payment_id: str, poly_line: str) -> None:
    assert set(result) == {"payment", "packages"}
    payment = result["payment"]
    assert set(payment) == PAYMENT_KEYS
    assert payment["payment_id"] == payment_id and payment["amount"] == QUOTE + ADMIN_FEE
    assert is_int(payment["status_code"]) and payment["status_code"] == 0  # integer here
    [pkg] = result["packages"]
    assert set(pkg) == VOID_PACKAGE_KEYS  # `polyline`, no `poly_line`, no driver
    assert LIVE_URL.fullmatch(pkg.pop("live_track_url"))
    assert pkg == {
        "awb": "",
        "order_id": order_id,
        "service": "gosend",
        "service_type": "instant",
        "status": 300,
        "polyline": poly_line,
        "origin": latitude_place("origin"),
        "destination": latitude_place("destination"),
    }


def check_payment(result: Any, order_id: str, payment_id: str, poly_line: str) -> None:
    assert set(result) == PAYMENT_KEYS | {"packages"}
    assert result["payment_id"] == payment_id and result["amount"] == QUOTE + ADMIN_FEE
    assert is_int(result["status_code"]) and result["status_code"] == 0
    wire_time(result["pay_time"])
    [pkg] = result["packages"]
    assert set(pkg) == PAYMENT_PACKAGE_KEYS
    assert (pkg["order_id"], pkg["status"], pkg["poly_line"]) == (order_id, 300, poly_line)
    assert (pkg["origin"], pkg["destination"]) == (latitude_place("origin"), latitude_place("destination"))
    assert pkg["driver"] == {"name": None, "phone": None, "image": None}


# -- the SDK ----------------------------------------------------------------------------------


def location(side: str) -> PricingInstantLocationPayload:
    lat, long = latlong(side)
    return PricingInstantLocationPayload(lat=lat, long=long, address=SENT[f"{side}_address"])


def quote(client: KiriminAja) -> int:
    body = client.coverage_area.pricing_instant(
        PricingInstantPayload(
            service=[InstantService.GOSEND],
            item_price=SENT["item"]["price"],
            origin=location("origin"),
            destination=location("destination"),
            weight=SENT["item"]["weight"],
            vehicle=InstantVehicle.BIKE,
            timezone="WIB",
        )
    )
    return check_pricing(envelope(body, code=None, method="mitra_pricing"))


def create(client: KiriminAja, shipping_price: int) -> Any:
    """The raw envelope of creating SENT through the SDK at `shipping_price`."""
    fields = {k: v for k, v in SENT.items() if k not in ("item", "shipping_price")}
    return client.order.instant.create(
        InstantPickupPayload(
            service=InstantService.GOSEND,
            service_type="instant",
            vehicle=InstantVehicle.BIKE,
            order_prefix=PREFIX,
            packages=[
                InstantPickupPackage(
                    **fields, shipping_price=shipping_price, item=InstantPickupItem(**SENT["item"])
                )
            ],
        )
    )


def test_instant_flow_through_the_sdk(client: KiriminAja) -> None:
    started = time.time()
    price = quote(client)
    order_id, payment_id, poly_line = check_pickup(envelope(create(client, price)), started)

    tracked = envelope(client.order.instant.track(order_id))
    check_tracking(tracked, order_id, "finding_driver", 105)
    assert tracked["driver"] == NO_DRIVER and tracked["tracking_code"] == ""
    assert tracked["cancel_description"] is None
    assert [tracked["date"][k] for k in ("finished_at", "allocated_at", "canceled_at")] == [None] * 3

    redriven = envelope(client.order.instant.find_new_driver(order_id))
    assert redriven == {"awb": "", "order_id": order_id}

    check_void(envelope(client.order.instant.cancel(order_id)), order_id, payment_id, poly_line)

    cancelled = envelope(client.order.instant.track(order_id))
    check_tracking(cancelled, order_id, "cancelled", 300)
    assert cancelled["driver"] == NO_DRIVER and cancelled["tracking_code"] == ""
    assert isinstance(cancelled["cancel_description"], str) and cancelled["cancel_description"]
    assert wire_time(cancelled["date"]["canceled_at"]) >= wire_time(cancelled["date"]["created_at"])
    assert cancelled["date"]["finished_at"] is None and cancelled["date"]["allocated_at"] is None

    check_payment(
        envelope(client.payment.get_payment(payment_id), text="get_payment"), order_id, payment_id, poly_line
    )

    # A cancelled order takes neither another cancel nor a new driver, and stays as it was.
    failure(client.order.instant.cancel(order_id), 2)
    failure(client.order.instant.find_new_driver(order_id), 2, "order id yang dipilih tidak valid.")
    assert envelope(client.order.instant.track(order_id)) == cancelled


def test_sdk_payload_with_a_stale_price_is_refused(client: KiriminAja, api: Api, backend: Backend) -> None:
    """`shipping_price` is "used for validation": anything but the quote creates nothing."""
    refused = create(client, quote(client) + 500)
    failure(refused, 422)
    assert "packages.0.shipping_price" in refused["text"]
    counts = backend.counts(api.merchant_id)
    assert (counts["orders"], counts["payments"]) == (0, 0)


def test_driver_shows_in_track_and_find_new_driver_clears_it(client: KiriminAja, server: Server) -> None:
    order_id = envelope(create(client, quote(client)))["packages"][0]["order_id"]
    moved = advance(server.base_url, order_id, "driver_assigned", **DRIVER)
    assert moved["status"] is True and moved["result"]["outcome"] == "applied", moved

    assigned = envelope(client.order.instant.track(order_id))
    check_tracking(assigned, order_id, "driver_assigned", 105)
    assert assigned["driver"] == {
        "name": DRIVER["driver_name"],
        "phone": DRIVER["driver_phone"],
        "photo": None,
    }
    assert assigned["tracking_code"] == DRIVER["tracking_code"]
    first_allocation = wire_time(assigned["date"]["allocated_at"])
    assert first_allocation >= wire_time(assigned["date"]["created_at"])

    redriven = envelope(client.order.instant.find_new_driver(order_id))
    assert redriven == {"awb": DRIVER["tracking_code"], "order_id": order_id}

    searching = envelope(client.order.instant.track(order_id))
    check_tracking(searching, order_id, "finding_driver", 105)
    assert searching["driver"] == NO_DRIVER
    assert searching["date"]["allocated_at"] is None

    # The next driver gets a fresh allocation time.
    advance(server.base_url, order_id, "driver_assigned", driver_name="Sari", driver_phone="081311112222")
    again = envelope(client.order.instant.track(order_id))
    assert again["driver"] == {"name": "Sari", "phone": "081311112222", "photo": None}
    assert wire_time(again["date"]["allocated_at"]) > first_allocation


def test_sdk_sees_not_found_as_a_body_and_bad_keys_as_errors(client: KiriminAja, server: Server) -> None:
    failure(client.order.instant.track(f"{PREFIX}-1705636897084"), 2, "data not found")
    with (
        KiriminAja(base_url=server.base_url, api_key="0" * 64) as stranger,
        pytest.raises(HttpError) as raised,
    ):
        stranger.order.instant.track(f"{PREFIX}-1705636897084")
    assert raised.value.status_code == 401
    failure(json.loads(raised.value.body), 401)


@pytest.mark.anyio
@pytest.mark.parametrize("own_client", [True, False], ids=["httpx-client", "sdk-default"])
async def test_async_client_tracks(server: Server, api: Api, own_client: bool) -> None:
    order_id = create_order(api)["order_id"]
    expected = api.track(order_id).json()
    async with httpx.AsyncClient() as http:
        sdk = AsyncKiriminAja(
            base_url=server.base_url, api_key=api.key, async_http_client=http if own_client else None
        )
        async with sdk:
            body = await sdk.order.instant.track(order_id)
            missing = await sdk.order.instant.track("NOPE-1")
    assert body == expected
    check_tracking(envelope(body), order_id, "finding_driver", 105)
    failure(missing, 2, "data not found")
