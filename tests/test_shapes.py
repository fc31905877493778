"""The seed's success and failure examples as shape fixtures for every lifecycle state.

A tracking result carries exactly the documented keys, in the documented order, at every
level (then `status` and `status_name`), each value of the fixture's JSON type, `null` only
where api.md allows it. The not-found body is the fixture itself. Plus ETag/304 and the two
pickup-request fixtures (docs 2024 with `weight_kg`, SDK with `weight`).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import httpx
import pytest

from tests.support import (
    FIXTURES,
    Api,
    Backend,
    Server,
    advance,
    create_merchant,
    create_order,
    package,
    pickup,
)
from tests.test_sdk import DRIVER, WIRE_TIME

SUCCESS: dict[str, Any] = json.loads((FIXTURES / "tracking_success.json").read_text())
NOT_FOUND_TEXT = (FIXTURES / "tracking_not_found.json").read_text()
NOT_FOUND: dict[str, Any] = json.loads(NOT_FOUND_TEXT)

# The documented shape, then the two extra keys at the end of `result`.
TEMPLATE = copy.deepcopy(SUCCESS)
TEMPLATE["result"].update(status=100, status_name="created")

# api.md's nullable fields, with the type each has when it is not null.
NULLABLE: dict[str, type] = {
    "method": str,  # the envelope's (null on tracking)
    "result.driver.name": str,
    "result.driver.phone": str,
    "result.driver.photo": str,
    "result.date.finished_at": str,
    "result.date.allocated_at": str,
    "result.date.canceled_at": str,
    "result.cost.insurance": int,
    "result.cancel_description": str,
    "result.live_tracking_url": str,
}

# What drives an order (paid on creation, so at finding_driver) to each state.
TO_PICKUP = ["driver_assigned", "at_pickup", "picked_up"]
PATHS: dict[str, list[str]] = {
    "created": [],  # a prepaid merchant's unpaid order
    "finding_driver": [],
    "no_driver": ["no_driver"],
    "driver_assigned": ["driver_assigned"],
    "at_pickup": ["driver_assigned", "at_pickup"],
    "picked_up": TO_PICKUP,
    "in_transit": [*TO_PICKUP, "in_transit"],
    "on_hold": [*TO_PICKUP, "on_hold"],
    "returning": [*TO_PICKUP, "in_transit", "returning"],
    "delivered": [*TO_PICKUP, "in_transit", "delivered"],
    "returned": [*TO_PICKUP, "in_transit", "returning", "returned"],
    "cancelled": ["cancelled"],
    "failed": [*TO_PICKUP, "failed"],
}
# lifecycle.md: the KiriminAja numeric code, and which optional fields each state has set.
STATES: dict[str, tuple[int, set[str]]] = {
    "created": (100, set()),
    "finding_driver": (105, set()),
    "no_driver": (105, {"cancel_description"}),
    "driver_assigned": (105, {"driver", "allocated_at"}),
    "at_pickup": (105, {"driver", "allocated_at"}),
    "picked_up": (106, {"driver", "allocated_at"}),
    "in_transit": (106, {"driver", "allocated_at"}),
    "on_hold": (500, {"driver", "allocated_at"}),
    "returning": (301, {"driver", "allocated_at"}),
    "delivered": (200, {"driver", "allocated_at", "finished_at"}),
    "returned": (400, {"driver", "allocated_at", "finished_at"}),
    "cancelled": (300, {"canceled_at", "cancel_description"}),
    "failed": (500, {"driver", "allocated_at", "cancel_description"}),
}


def compact(text: str) -> bytes:
    """The fixture without insignificant whitespace, key order kept."""
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False).encode()


def assert_shape(actual: Any, template: Any, path: str = "") -> None:
    """Same keys in the same order, same JSON types, nulls only where api.md allows them."""
    where = path.lstrip(".") or "body"
    if isinstance(template, dict):
        assert isinstance(actual, dict), where
        assert list(actual) == list(template), f"{where}: keys {list(actual)} != {list(template)}"
        for key, value in template.items():
            assert_shape(actual[key], value, f"{path}.{key}")
        return
    name = path.lstrip(".")
    if actual is None:
        assert name in NULLABLE, f"{where} may not be null"
        return
    expected = NULLABLE[name] if template is None else type(template)
    assert type(actual) is expected, f"{where}: {type(actual).__name__} != {expected.__name__}"
    if name.startswith("result.date."):
        assert isinstance(actual, str) and WIRE_TIME.match(actual), f"{where}: {actual!r}"


def drive(server: Server, order_id: str, steps: list[str]) -> None:
    for step in steps:
        body = advance(server.base_url, order_id, step, **(DRIVER if step == "driver_assigned" else {}))
        assert body["status"] is True and body["result"]["outcome"] == "applied", (step, body)


def test_fixture_itself_passes_the_shape_check() -> None:
    """The checker is sound: the seed example has the documented shape (minus the extras)."""
    documented = copy.deepcopy(TEMPLATE)
    for extra in ("status", "status_name"):
        del documented["result"][extra]
    assert_shape(SUCCESS, documented)
    with pytest.raises(AssertionError):
        assert_shape(SUCCESS, TEMPLATE)  # the extras are required


@pytest.mark.parametrize("state", list(PATHS))
def test_tracking_shape_in_every_state(server: Server, api: Api, state: str) -> None:
    owner = create_merchant(server.base_url, prepaid=True) if state == "created" else api
    order_id = create_order(owner)["order_id"]
    drive(server, order_id, PATHS[state])

    r = owner.track(order_id)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert_shape(body, TEMPLATE)
    assert [body[k] for k in ("status", "text", "code", "method")] == [True, "success", 0, None]

    result = body["result"]
    status, has = STATES[state]
    assert (result["status"], result["status_name"]) == (status, state)
    dates = result["date"]
    for field in ("allocated_at", "finished_at", "canceled_at"):
        assert (dates[field] is not None) == (field in has), (field, dates)
        if dates[field] is not None:
            assert dates[field] >= dates["created_at"]  # same fixed-width format: text order is time order
    assert (result["cancel_description"] is not None) == ("cancel_description" in has)
    if "driver" in has:
        assert result["driver"] == {
            "name": DRIVER["driver_name"],
            "phone": DRIVER["driver_phone"],
            "photo": None,
        }
        assert result["tracking_code"] == DRIVER["tracking_code"]
    else:
        assert result["driver"] == {"name": None, "phone": None, "photo": None}
        assert result["tracking_code"] == ""


@pytest.mark.parametrize(
    "order_id",
    ["NBL2-1705636897084", "nope", "x" * 65, "bad%20id", "a/b", "%C3%BF", "..%2F..%2Fetc"],
)
def test_not_found_is_the_fixture_exactly(api: Api, order_id: str) -> None:
    r = api.http.get(f"/api/mitra/v4/instant/tracking/{order_id}", headers={"If-None-Match": "*"})
    assert r.status_code == 200  # every SDK throws a non-2xx body away
    assert r.content == compact(NOT_FOUND_TEXT)
    assert list(r.json().items()) == list(NOT_FOUND.items())
    assert "etag" not in r.headers


def test_a_foreign_order_is_not_found_exactly(api: Api, other: Api) -> None:
    order_id = create_order(api)["order_id"]
    r = other.track(order_id)
    assert r.status_code == 200 and r.content == compact(NOT_FOUND_TEXT)


def conditional(api: Api, order_id: str, tag: str) -> httpx.Response:
    return api.http.get(f"/api/mitra/v4/instant/tracking/{order_id}", headers={"If-None-Match": tag})


def test_etag_and_304(server: Server, api: Api) -> None:
    order_id = create_order(api)["order_id"]
    first = api.track(order_id)
    etag = first.headers["etag"]
    assert re.fullmatch(r'(W/)?"[^"]+"', etag), etag

    for tag in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        unchanged = conditional(api, order_id, tag)
        assert unchanged.status_code == 304, tag
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == etag
    assert conditional(api, order_id, '"something-else"').content == first.content

    # Re-sending the current state changes nothing, so the tag still holds.
    assert advance(server.base_url, order_id, "finding_driver")["result"]["outcome"] == "duplicate"
    assert conditional(api, order_id, etag).status_code == 304

    # Each real change (a driver, another driver, a new state) gives a new tag.
    seen = {etag}
    changes: list[dict[str, Any]] = [
        {"state": "driver_assigned", **DRIVER},
        {"state": "driver_assigned", "driver_name": "Sari", "driver_phone": "081311112222"},
        {"state": "at_pickup"},
    ]
    for change in changes:
        old = api.track(order_id).headers["etag"]
        assert advance(server.base_url, order_id, **change)["result"]["outcome"] == "applied"
        stale = conditional(api, order_id, old)
        assert stale.status_code == 200, change
        assert stale.json() == api.track(order_id).json()
        new = stale.headers["etag"]
        assert new not in seen, change
        seen.add(new)
        assert conditional(api, order_id, new).status_code == 304
    assert api.track(order_id).json()["result"]["driver"]["name"] == "Sari"


def gosend_quote(api: Api, pkg: dict[str, Any], vehicle: str) -> int:
    ends = {
        side: {"lat": pkg[f"{side}_lat"], "long": pkg[f"{side}_long"], "address": pkg[f"{side}_address"]}
        for side in ("origin", "destination")
    }
    body = api.post(
        "/api/mitra/v4/instant/pricing",
        {
            "service": ["gosend"],
            "item_price": pkg["item"]["price"],
            "weight": 1000,
            "vehicle": vehicle,
            **ends,
        },
    ).json()
    assert body["status"] is True, body
    [gosend] = body["result"]
    [instant] = [c for c in gosend["costs"] if c["service_type"] == "instant"]
    price: int = instant["price"]["shipping_costs"]
    return price


@pytest.mark.parametrize(
    ("fixture", "grams", "fixture_price_is_current"),
    [("pickup_request_docs_2024.json", 2000, True), ("pickup_request_sdk.json", 1000, False)],
)
def test_pickup_request_fixtures(
    api: Api, backend: Backend, fixture: str, grams: int, fixture_price_is_current: bool
) -> None:
    request = json.loads((FIXTURES / fixture).read_text())
    pkg = request["packages"][0]
    price = gosend_quote(api, pkg, request["vehicle"])
    assert (price == pkg["shipping_price"]) is fixture_price_is_current, price
    path = "/api/mitra/v4/instant/pickup/request"
    if not fixture_price_is_current:
        refused = api.post(path, request).json()
        assert refused["status"] is False and refused["code"] == 422, refused
        assert "packages.0.shipping_price" in refused["text"]
        assert backend.counts(api.merchant_id)["orders"] == 0
        pkg["shipping_price"] = price

    body = api.post(path, request).json()
    assert body["status"] is True, body
    [created] = body["result"]["packages"]
    assert re.fullmatch(rf"{request['order_prefix']}-\d{{13}}", created["order_id"]), created
    assert body["result"]["payment"]["amount"] == price + 1000

    [row] = backend.query(
        "SELECT item_weight FROM orders WHERE merchant_id = $1 AND order_id = $2",
        api.merchant_id,
        created["order_id"],
    )
    assert row["item_weight"] == grams

    r = api.track(created["order_id"])
    tracked = r.json()
    assert_shape(tracked, TEMPLATE)
    result = tracked["result"]
    assert result["cost"] == {
        "shipping_cost": price,
        "insurance": None,
        "admin_fee": 1000,
        "total_price": price + 1000,
    }
    assert result["item"] == {"price": pkg["item"]["price"], "description": pkg["item"]["name"]}
    for side in ("origin", "destination"):
        assert result[side] == {f: pkg[f"{side}_{f}"] for f in TEMPLATE["result"][side]}
    assert (result["order_id"], result["service"], result["service_type"]) == (
        created["order_id"],
        request["service"],
        request["service_type"],
    )
    if fixture_price_is_current:
        # The docs request is the seed's own order: its tracking matches the seed example.
        for key in ("cost", "item", "origin", "service", "service_type"):
            assert result[key] == SUCCESS["result"][key], key
        assert result["destination"] == pytest.approx(SUCCESS["result"]["destination"])


def test_numbers_keep_their_json_types(api: Api) -> None:
    """Coordinates sent as JSON integers come back as floats, money sent as 20000.0 as ints."""
    pkg = package(
        origin_lat=-8,
        origin_long=110,
        destination_lat=-8,
        destination_long=110.25,
        item={"name": "Barang 1", "price": 20000.0, "weight": 1000},
    )
    pkg["shipping_price"] = float(gosend_quote(api, pkg, "motor"))
    body = api.post("/api/mitra/v4/instant/pickup/request", pickup([pkg])).json()
    assert body["status"] is True, body
    assert body["result"]["packages"][0]["origin"]["lat_long"] in ("-8.0,110.0", "-8,110")
    result = api.track(body["result"]["packages"][0]["order_id"]).json()["result"]
    for side, (lat, long) in (("origin", (-8.0, 110.0)), ("destination", (-8.0, 110.25))):
        assert (result[side]["lat"], result[side]["long"]) == (lat, long)
        assert type(result[side]["lat"]) is float and type(result[side]["long"]) is float
    assert type(result["item"]["price"]) is int and result["item"]["price"] == 20000
    assert all(type(v) is int for k, v in result["cost"].items() if k != "insurance"), result["cost"]
