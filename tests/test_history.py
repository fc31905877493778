"""`GET /api/mitra/v4/instant/tracking/{order_id}/history`: lacak's extension of the tracking API.

Every recorded event of one order, oldest first, including those that changed nothing (stale,
refused), through a real server on SQLite and PostgreSQL. It answers strangers exactly as the
tracking endpoint does, and it never takes a route from (or gives one to) the tracking fast path.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from lacak.pricing.quote import quote
from lacak.pricing.tariff import load_tariff
from tests.support import (
    Api,
    Backend,
    Server,
    advance,
    create_merchant,
    create_order,
    fresh_backend,
    package,
)

TRACKING = "/api/mitra/v4/instant/tracking"
ENTRY_KEYS = {
    "seq",
    "state",
    "status",
    "from_state",
    "outcome",
    "source",
    "courier_code",
    "courier_text",
    "position",
    "note",
    "occurred_at",
    "recorded_at",
}
WIRE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NOT_FOUND = {"status": False, "text": "data not found", "code": 2, "method": None, "result": None}
UNAUTHENTICATED = {"status": False, "text": "Unauthenticated.", "code": 401, "method": None, "result": None}
DRIVER = {"driver_name": "Budi Santoso", "driver_phone": "081234567616"}


def history(api: Api, order_id: str) -> httpx.Response:
    return api.http.get(f"{TRACKING}/{order_id}/history")


def events(api: Api, order_id: str) -> list[dict[str, Any]]:
    body = history(api, order_id).json()
    assert body["status"] is True, body
    found: list[dict[str, Any]] = body["result"]["history"]
    return found


def move(base_url: str, api: Api, order_id: str, state: str, **extra: Any) -> str:
    body = advance(base_url, order_id, state, merchant=str(api.merchant_id), **extra)
    assert body["status"] is True, body
    outcome: str = body["result"]["outcome"]
    return outcome


def at(wire: str) -> datetime:
    return datetime.strptime(wire, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_history_lists_every_event_oldest_first(server: Server, api: Api) -> None:
    oid = create_order(api)["order_id"]
    assert move(server.base_url, api, oid, "driver_assigned", note="assigned by ops", **DRIVER) == "applied"
    assert move(server.base_url, api, oid, "created") == "stale"  # a step back: recorded, nothing changes
    for state in ("picked_up", "in_transit", "delivered"):
        assert move(server.base_url, api, oid, state) == "applied"
    assert move(server.base_url, api, oid, "picked_up") == "refused"  # after the end
    assert move(server.base_url, api, oid, "delivered") == "duplicate"  # not recorded at all

    r = history(api, oid)
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("status", "text", "code", "method")} == {
        "status": True,
        "text": "success",
        "code": 0,
        "method": None,
    }
    result = body["result"]
    assert set(result) == {"order_id", "status", "status_name", "history"}
    assert (result["order_id"], result["status"], result["status_name"]) == (oid, 200, "delivered")
    got = result["history"]
    assert all(set(e) == ENTRY_KEYS for e in got), got
    assert [(e["state"], e["from_state"], e["outcome"], e["source"], e["status"]) for e in got] == [
        ("created", None, "applied", "api", 100),
        ("finding_driver", "created", "applied", "api", 105),
        ("driver_assigned", "finding_driver", "applied", "operator", 105),
        ("created", "driver_assigned", "stale", "operator", 100),
        ("picked_up", "driver_assigned", "applied", "operator", 106),
        ("in_transit", "picked_up", "applied", "operator", 106),
        ("delivered", "in_transit", "applied", "operator", 200),
        ("picked_up", "delivered", "refused", "operator", 106),
    ]
    # Applied events number the order's states; the others carry the seq they found.
    assert [e["seq"] for e in got if e["outcome"] == "applied"] == [1, 2, 3, 4, 5, 6]
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
    assert got[2]["note"] == "assigned by ops"
    for e in got:
        assert e["courier_code"] is None and e["courier_text"] is None and e["position"] is None
        assert WIRE.match(e["occurred_at"]) and WIRE.match(e["recorded_at"]), e
    recorded = [at(e["recorded_at"]) for e in got]
    assert recorded == sorted(recorded)
    assert abs(recorded[-1] - datetime.now(UTC)).total_seconds() < 300

    # The plain tracking answer is still the plain tracking answer.
    tracked = api.track(oid)
    assert tracked.status_code == 200 and "etag" in tracked.headers
    t = tracked.json()["result"]
    assert "history" not in t and t["status_name"] == "delivered"
    assert t["driver"]["name"] == "Budi Santoso"
    assert (
        api.http.get(f"{TRACKING}/{oid}", headers={"If-None-Match": tracked.headers["etag"]}).status_code
        == 304
    )


def test_history_of_a_moving_order_grows(server: Server, api: Api) -> None:
    oid = create_order(api)["order_id"]
    first = events(api, oid)
    assert [e["state"] for e in first] == ["created", "finding_driver"]
    move(server.base_url, api, oid, "driver_assigned", **DRIVER)
    second = events(api, oid)
    assert second[:2] == first  # what was recorded stays as it was
    assert second[2]["state"] == "driver_assigned" and second[2]["from_state"] == "finding_driver"


def test_history_answers_strangers_like_tracking_does(server: Server, api: Api, other: Api) -> None:
    oid = create_order(api)["order_id"]
    unknown = api.track(f"NOPE-{uuid.uuid4().hex[:8]}")
    assert unknown.status_code == 200 and unknown.json() == NOT_FOUND
    # Another merchant's key: exactly what tracking answers it, and what an unknown id gets.
    theirs = history(other, oid)
    assert (theirs.status_code, theirs.json()) == (unknown.status_code, unknown.json())
    assert (theirs.status_code, theirs.json()) == (other.track(oid).status_code, other.track(oid).json())
    for bad in (f"NOPE-{uuid.uuid4().hex[:8]}", "x" * 300, "%00", "a%20b", "%3Cb%3E", "..."):
        r = history(api, bad)
        assert (r.status_code, r.json()) == (unknown.status_code, unknown.json()), bad
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": api.key}):
        r = httpx.get(f"{server.base_url}{TRACKING}/{oid}/history", headers=headers, timeout=10)
        assert (r.status_code, r.json()) == (401, UNAUTHENTICATED), headers
    # The owner still sees it (the stranger's question changed nothing).
    assert [e["state"] for e in events(api, oid)] == ["created", "finding_driver"]


def test_history_suffix_is_never_part_of_an_order_id(server: Server, api: Api) -> None:
    """An order may even be called `history`: `/tracking/history` tracks it, and
    `/tracking/history/history` is its history."""
    oid = create_order(api)["order_id"]
    named = create_order(api, packages=[package(order_id="history")])["order_id"]
    assert named == "history"
    move(server.base_url, api, named, "driver_assigned", **DRIVER)

    tracked = api.track("history").json()
    assert tracked["status"] is True and tracked["result"]["order_id"] == "history"
    assert "history" not in tracked["result"] and tracked["result"]["status_name"] == "driver_assigned"
    own = events(api, "history")
    assert [e["state"] for e in own] == ["created", "finding_driver", "driver_assigned"]
    assert history(api, "history").json()["result"]["order_id"] == "history"

    # Nothing else is a history, nor another order's tracking.
    for path in (
        f"{oid}/history/",
        f"{oid}/history/history",
        f"{oid}/histories",
        f"{oid}/HISTORY",
        "/history",
    ):
        r = api.http.get(f"{TRACKING}/{path}")
        assert (r.status_code, r.json()) == (200, NOT_FOUND), path
    r = api.track(oid)
    assert r.json()["result"]["order_id"] == oid and "history" not in r.json()["result"]
    assert history(api, oid).json()["result"]["order_id"] == oid


# -- courier events ---------------------------------------------------------------------------

GOSEND_TOKEN = "gosend-history-token"
GRAB_TOKEN = "grab-history-token"
ORIGIN, DESTINATION = (-7.8032616, 110.350244), (-7.7349434, 110.405355)  # tests.support.package()
COURIER_AT = (-7.79, 110.36)


@pytest.fixture()
def couriers(backend: Backend, tmp_path: Path) -> Iterator[tuple[Backend, Server]]:
    """A server on a database of its own whose orders are booked (fleet) and then carried by
    GoSend or Grab, whose callbacks it accepts."""
    with fresh_backend(backend.name, tmp_path) as db:
        env = db.env(
            LACAK_PROVIDER_GOSEND="fleet",
            LACAK_PROVIDER_GRAB_EXPRESS="fleet",
            LACAK_PROVIDER_BORZO="fleet",
            LACAK_GOSEND_CALLBACK_TOKEN=GOSEND_TOKEN,
            LACAK_GRAB_CALLBACK_TOKEN=GRAB_TOKEN,
        )
        srv = Server(env, tmp_path / "server.log").start()
        try:
            yield db, srv
        finally:
            srv.stop()


def carried(db: Backend, api: Api, service: str) -> tuple[str, str]:
    """An order of `service`, booked, then handed to that courier (as a real booking would be):
    its order id and the courier's id for it."""
    q = quote(load_tariff(None), service, "instant", "motor", ORIGIN, DESTINATION)
    assert q is not None
    oid = create_order(api, service=service, packages=[package(shipping_price=q.shipping_cost)])["order_id"]
    external = f"EXT-{uuid.uuid4().hex[:12].upper()}"
    deadline = time.monotonic() + 15
    while True:
        rows = db.query(
            "UPDATE bookings SET external_id = $2, provider = $3 WHERE order_pk ="
            " (SELECT id FROM orders WHERE merchant_id = $4 AND order_id = $1) AND status = 'booked'"
            " RETURNING order_pk",
            oid,
            external,
            service,
            api.merchant_id,
        )
        if rows:
            return oid, external
        assert time.monotonic() < deadline, f"{oid} was never booked"
        time.sleep(0.05)


def gosend(srv: Server, awb: str, status: str, kind: str, event_id: str) -> httpx.Response:
    payload = {
        "booking_id": awb,
        "status": status,
        "type": kind,
        "event_id": event_id,
        "event_date": int(time.time() * 1000),
        "driver_name": "Anton Lucarus",
        "driver_phone": "628111251307",
    }
    return httpx.post(
        f"{srv.base_url}/couriers/gosend/callback",
        content=json.dumps(payload),
        headers={"Content-Type": "application/json", "Authorization": GOSEND_TOKEN},
        timeout=10,
    )


def test_courier_events_are_recorded_with_their_codes(couriers: tuple[Backend, Server]) -> None:
    db, srv = couriers
    api = create_merchant(srv.base_url)
    oid, awb = carried(db, api, "gosend")
    found = str(uuid.uuid4())
    assert gosend(srv, awb, "allocated", "DRIVER_FOUND", found).status_code == 200
    assert gosend(srv, awb, "allocated", "DRIVER_FOUND", found).status_code == 200  # delivered twice
    assert gosend(srv, awb, "picked", "ITEM_PICKED", str(uuid.uuid4())).status_code == 200
    assert gosend(srv, awb, "out_for_pickup", "DRIVER_OTW_PICKUP", str(uuid.uuid4())).status_code == 200
    got = [e for e in events(api, oid) if e["source"] == "courier"]
    assert [(e["state"], e["outcome"], e["courier_code"], e["courier_text"]) for e in got] == [
        ("driver_assigned", "applied", "allocated", "DRIVER_FOUND"),
        ("picked_up", "applied", "picked", "ITEM_PICKED"),
        ("at_pickup", "stale", "out_for_pickup", "DRIVER_OTW_PICKUP"),  # late: recorded, not applied
    ]
    assert [e["from_state"] for e in got] == ["finding_driver", "driver_assigned", "picked_up"]

    # A courier that reports where its driver is: the event keeps the position.
    oid, delivery = carried(db, api, "grab_express")
    lat, long = COURIER_AT
    payload = {
        "deliveryID": delivery,
        "merchantOrderID": oid,
        "timestamp": int(time.time()),
        "status": "PENDING_PICKUP",
        "failedReason": "",
        "driver": {
            "name": "Budi Santoso",
            "phone": "6281298765432",
            "licensePlate": "B 3456 KLM",
            "currentLat": lat,
            "currentLng": long,
        },
    }
    r = httpx.post(
        f"{srv.base_url}/couriers/grab_express/callback",
        content=json.dumps(payload),
        headers={"Content-Type": "application/json", "Authorization": GRAB_TOKEN},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    last = events(api, oid)[-1]
    assert (last["state"], last["source"], last["courier_code"]) == (
        "driver_assigned",
        "courier",
        "PENDING_PICKUP",
    )
    assert last["position"] == {"lat": lat, "long": long}
    # The customer's live page shows that driver, masked, with the plate the courier sent.
    url = api.track(oid).json()["result"]["live_tracking_url"]
    assert url.startswith(f"{srv.base_url}/t/"), url
    driver = httpx.get(url + "/state", timeout=10).json()["driver"]
    assert driver == {"name": "Budi Santoso", "phone": "0812****432", "plate": "B 3456 KLM", "photo": None}
