"""The driver API for the operator's own fleet, through a real server on both databases.

The module's server books `gosend` orders with the `fleet` provider (the other services stay
on the simulator, which is how the tests make non-fleet orders). Each test places its orders
around its own longitude so that the open-order board of one test never crowds another's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from lacak.drivers.service import Drivers
from lacak.metrics import Metrics
from lacak.positions.store import TRAIL_LIMIT
from lacak.pricing.geo import haversine_km
from lacak.pricing.quote import quote
from lacak.pricing.tariff import load_tariff
from lacak.storage.db import connect
from lacak.storage.store import Store
from lacak.timeutil import utcnow
from tests.support import Api, Backend, Server, create_merchant, create_order, lacak, package

PICKUP = (-7.8032616, 110.350244)
DROPOFF = (-7.7349434, 110.405355)
V1 = "/api/driver/v1"
NOT_FOUND = {"status": False, "text": "data not found", "code": 2, "method": None, "result": None}
UNAUTHENTICATED = {"status": False, "text": "Unauthenticated.", "code": 401, "method": None, "result": None}
ORDER_KEYS = {
    "id",
    "order_id",
    "state",
    "service",
    "vehicle",
    "tracking_code",
    "pickup",
    "dropoff",
    "item",
    "shipping_cost",
    "poly_line",
    "created_at",
    "allocated_at",
    "finished_at",
}


class DriverApp:
    """One driver's phone: its token and the calls its app makes."""

    def __init__(self, base_url: str, driver_id: int, token: str) -> None:
        self.id = driver_id
        self.token = token
        self.http = httpx.Client(
            base_url=base_url + V1, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )

    def available(self, **params: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get("/orders/available", params=params).json()
        return body

    def accept(self, pk: int | str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.post(f"/orders/{pk}/accept").json()
        return body

    def status(self, pk: int | str, status: str, note: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = self.http.post(
            f"/orders/{pk}/status", json={"status": status, "note": note}
        ).json()
        return body

    def locate(self, points: Any) -> httpx.Response:
        return self.http.post("/location", json={"points": points})


@pytest.fixture(scope="module")
def fleet(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("fleet") / f"server-{backend.name}.log"
    srv = Server(backend.env(LACAK_PROVIDER_GOSEND="fleet"), log).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def crew(backend: Backend, fleet: Server) -> dict[str, DriverApp]:
    """Drivers made by the same use-case `lacak driver create` runs, in this process: each CLI
    run costs a Python start, and the CLI itself has its own test below."""
    names = {"a": "Agus", "b": "Bambang", "c": "Cahyo", "d": "Dewi"}

    async def make() -> dict[str, DriverApp]:
        db = connect(backend.database_url, pool_size=1)
        await db.open()
        try:
            drivers = Drivers(db, Store(db), Metrics(), utcnow)
            out = {}
            for key, name in names.items():
                d, token = await drivers.create(f"{name} {backend.name}", "081234567890", f"AB {ord(key)} XY")
                out[key] = DriverApp(fleet.base_url, d.id, token)
            return out
        finally:
            await db.close()

    return asyncio.run(make())


@pytest.fixture()
def merchant(fleet: Server) -> Api:
    return create_merchant(fleet.base_url)


def fleet_order(api: Api, shift: float, **over: Any) -> dict[str, Any]:
    """A gosend (fleet) order, its trip moved east by `shift` degrees (same length, same price)."""
    pkg = package(origin_long=PICKUP[1] + shift, destination_long=DROPOFF[1] + shift, **over)
    return create_order(api, packages=[pkg])


def pk_of(backend: Backend, api: Api, order_id: str) -> int:
    rows = backend.query(
        "SELECT id FROM orders WHERE merchant_id = $1 AND order_id = $2", api.merchant_id, order_id
    )
    return int(rows[0]["id"])


def count(backend: Backend, table: str, order_pk: int) -> int:
    return int(backend.query(f"SELECT count(*) AS n FROM {table} WHERE order_pk = $1", order_pk)[0]["n"])


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def point(lat: float, long: float, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"lat": lat, "long": long, "at": at.isoformat(), **extra}


def wait_for(check: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- accounts and tokens --------------------------------------------------------------------


def test_cli_token_is_shown_once_stored_hashed_and_revoked_at_once(
    backend: Backend, fleet: Server, crew: dict[str, DriverApp]
) -> None:
    create = [
        "driver",
        "create",
        f"Eko {backend.name}",
        "--phone",
        "0812-3456-7890",
        "--plate",
        "AB 101 XY",
        "--json",
    ]
    with ThreadPoolExecutor(2) as pool:  # two Python starts at once: the slow part of a CLI run
        made, unknown = pool.map(
            lambda args: lacak(backend.env(), *args, check=False), [create, ["driver", "revoke", "999999"]]
        )
    assert unknown.returncode == 1 and "no driver 999999" in unknown.stderr
    created = json.loads(made.stdout)
    assert set(created) == {"driver_id", "token"}
    e = DriverApp(fleet.base_url, created["driver_id"], created["token"])
    assert e.token.startswith("drv_") and len(e.token) == 68
    stored = backend.query("SELECT token_hash, phone, plate FROM drivers WHERE id = $1", e.id)
    assert stored == [
        {
            "token_hash": hashlib.sha256(e.token.encode()).hexdigest(),
            "phone": "081234567890",
            "plate": "AB 101 XY",
        }
    ]
    assert e.http.get("/orders").json() == {
        "status": True,
        "text": "success",
        "code": 0,
        "method": None,
        "result": {"orders": []},
    }
    assert "revoked" in lacak(backend.env(), "driver", "revoke", str(e.id)).stdout
    # No grace period: the very next request is refused.
    r = e.http.get("/orders")
    assert (r.status_code, r.json()) == (401, UNAUTHENTICATED)
    listed = json.loads(lacak(backend.env(), "driver", "list", "--json").stdout)
    mine = next(d for d in listed if d["driver_id"] == e.id)
    assert mine["active"] is False and mine["name"] == f"Eko {backend.name}"
    assert all(d.token not in json.dumps(listed) for d in [e, *crew.values()])


def test_driver_tokens_and_merchant_keys_never_cross(crew: dict[str, DriverApp], merchant: Api) -> None:
    a = crew["a"]
    for header in (
        f"Bearer {merchant.key}",
        "",
        "Bearer",
        "Bearer nope",
        f"Basic {a.token}",
        "Bearer " + "x" * 300,
    ):
        r = httpx.get(
            f"{merchant.base_url}{V1}/orders/available?lat=0&long=0", headers={"Authorization": header}
        )
        assert (r.status_code, r.json()) == (401, UNAUTHENTICATED), header
        assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(
        f"{merchant.base_url}/api/mitra/v4/instant/pickup/request",
        headers={"Authorization": f"Bearer {a.token}"},
        json={},
    )
    assert (r.status_code, r.json()["code"]) == (401, 401)
    r = httpx.get(
        f"{merchant.base_url}/api/mitra/v4/instant/tracking/X-1",
        headers={"Authorization": f"Bearer {a.token}"},
    )
    assert r.status_code == 401


# -- the open-order board -------------------------------------------------------------------


def test_available_lists_open_fleet_orders_nearest_first(
    backend: Backend, crew: dict[str, DriverApp], merchant: Api
) -> None:
    shift = -20.0
    offsets = [0.20, 0.01, 0.05]  # created far, near, middle
    made = [fleet_order(merchant, shift + off) for off in offsets]
    here = (PICKUP[0], PICKUP[1] + shift)
    c = crew["c"]
    board = c.available(lat=here[0], long=here[1], limit=3)
    assert board["status"] is True and board["code"] == 0
    got = board["result"]["orders"]
    assert [o["order_id"] for o in got] == [made[1]["order_id"], made[2]["order_id"], made[0]["order_id"]]
    for o, off in zip(got, [0.01, 0.05, 0.20], strict=True):
        assert o["distance_km"] == pytest.approx(haversine_km(*here, here[0], here[1] + off), abs=0.001)
        assert set(o) == ORDER_KEYS | {"distance_km"}
        assert "phone" not in o["pickup"] and "phone" not in o["dropoff"]  # only once the order is theirs
        assert o["state"] == "finding_driver" and o["shipping_cost"] == 34000
        assert o["pickup"]["long"] == pytest.approx(here[1] + off) and o["item"]["name"] == "Barang 1"
    assert "merchant" not in json.dumps(board) and merchant.key not in json.dumps(board)
    assert [o["id"] for o in c.available(lat=here[0], long=here[1], limit=2)["result"]["orders"]] == [
        got[0]["id"],
        got[1]["id"],
    ]
    # Without a point, the board is measured from the driver's last known position.
    assert c.locate([point(*here, datetime.now(UTC))]).json()["status"] is True
    assert c.available(limit=3)["result"]["orders"] == got


def test_non_fleet_orders_are_invisible_to_drivers(
    backend: Backend, crew: dict[str, DriverApp], merchant: Api
) -> None:
    shift = -21.0
    origin, destination = (PICKUP[0], PICKUP[1] + shift), (DROPOFF[0], DROPOFF[1] + shift)
    q = quote(load_tariff(None), "grab_express", "instant", "motor", origin, destination)
    assert q is not None
    pkg = package(origin_long=origin[1], destination_long=destination[1], shipping_price=q.shipping_cost)
    simulated = create_order(merchant, service="grab_express", packages=[pkg])
    pk = pk_of(backend, merchant, simulated["order_id"])
    assert backend.query("SELECT provider FROM bookings WHERE order_pk = $1", pk) == [
        {"provider": "simulator"}
    ]
    a = crew["a"]
    board = a.available(lat=origin[0], long=origin[1], limit=100)["result"]["orders"]
    assert pk not in [o["id"] for o in board]
    assert a.accept(pk) == NOT_FOUND
    assert a.status(pk, "at_pickup") == NOT_FOUND
    assert count(backend, "assignments", pk) == 0
    assert merchant.track(simulated["order_id"]).json()["result"]["driver"]["name"] is None


# -- accepting ------------------------------------------------------------------------------


def test_concurrent_accepts_have_exactly_one_winner(
    backend: Backend, crew: dict[str, DriverApp], merchant: Api
) -> None:
    a, b = crew["a"], crew["b"]
    for round_ in range(3):
        made = fleet_order(merchant, -22.0 + round_ * 0.01)
        pk = pk_of(backend, merchant, made["order_id"])
        gate = threading.Barrier(2)

        def race(driver: DriverApp, pk: int = pk, gate: threading.Barrier = gate) -> dict[str, Any]:
            gate.wait()
            return driver.accept(pk)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(race, [a, b]))
        won = [i for i, body in enumerate(answers) if body["status"] is True]
        assert len(won) == 1, answers
        winner, loser = (a, b) if won == [0] else (b, a)
        assert answers[1 - won[0]] == {
            "status": False,
            "text": "order already taken",
            "code": 2,
            "method": None,
            "result": None,
        }
        view = answers[won[0]]["result"]
        assert view["id"] == pk and view["state"] == "driver_assigned"
        assert view["pickup"]["phone"] == "081280045616"  # the order is theirs now
        assert backend.query("SELECT driver_id FROM assignments WHERE order_pk = $1", pk) == [
            {"driver_id": winner.id}
        ]
        history = backend.query("SELECT state, source FROM order_events WHERE order_pk = $1 ORDER BY id", pk)
        assert history[-1] == {"state": "driver_assigned", "source": "driver"}
        assert [h["state"] for h in history].count("driver_assigned") == 1
        # A retried accept by the winner is answered with its order; the loser stays refused.
        assert winner.accept(pk)["result"]["id"] == pk
        assert loser.accept(pk)["text"] == "order already taken"
        assert count(backend, "order_events", pk) == len(history)


def test_status_flow_to_delivered_shows_in_merchant_tracking(
    backend: Backend, crew: dict[str, DriverApp], merchant: Api
) -> None:
    a, b = crew["a"], crew["b"]
    made = fleet_order(merchant, -23.0)
    pk = pk_of(backend, merchant, made["order_id"])
    accepted = a.accept(pk)["result"]
    assert accepted["tracking_code"] == f"FLT-{pk}-{a.id}"
    tracked = merchant.track(made["order_id"]).json()["result"]
    assert tracked["driver"] == {"name": f"Agus {backend.name}", "phone": "081234567890", "photo": None}
    assert tracked["tracking_code"] == f"FLT-{pk}-{a.id}" and tracked["date"]["allocated_at"] is not None
    assert backend.query("SELECT driver_plate FROM orders WHERE id = $1", pk) == [
        {"driver_plate": "AB 97 XY"}
    ]

    for state in ("at_pickup", "picked_up", "in_transit"):
        body = a.status(pk, state)
        assert body["status"] is True and body["result"]["state"] == state, body

    before = count(backend, "order_events", pk)
    refused = a.status(pk, "at_pickup")
    assert refused == {
        "status": False,
        "text": f"order {pk} is in_transit: it cannot move to at_pickup",
        "code": 2,
        "method": None,
        "result": None,
    }
    # Another driver learns exactly what an unknown order would tell it.
    assert b.status(pk, "delivered") == NOT_FOUND == b.status(999_999_999, "delivered")
    assert count(backend, "order_events", pk) == before  # nothing applied, nothing recorded

    done = a.status(pk, "delivered", note="diterima satpam")
    assert done["status"] is True and done["result"]["finished_at"] is not None
    tracked = merchant.track(made["order_id"]).json()["result"]
    assert tracked["date"]["finished_at"] == done["result"]["finished_at"]
    assert tracked["driver"]["name"] == f"Agus {backend.name}"
    history = backend.query(
        "SELECT state, source, note FROM order_events WHERE order_pk = $1 ORDER BY id", pk
    )
    assert history[-1] == {"state": "delivered", "source": "driver", "note": "diterima satpam"}
    # A retried post is harmless; a move out of a finished order is refused by name.
    assert a.status(pk, "delivered")["result"]["state"] == "delivered"
    assert a.status(pk, "returning")["text"] == f"order {pk} is delivered: it cannot move to returning"
    assert count(backend, "order_events", pk) == len(history)
    assert pk not in [o["id"] for o in a.http.get("/orders").json()["result"]["orders"]]


def test_find_new_driver_reopens_the_order_to_every_driver(
    backend: Backend, crew: dict[str, DriverApp], merchant: Api
) -> None:
    a, b = crew["a"], crew["b"]
    shift = -24.0
    made = fleet_order(merchant, shift)
    pk = pk_of(backend, merchant, made["order_id"])
    assert a.accept(pk)["status"] is True
    assert a.status(pk, "at_pickup")["status"] is True
    assert pk in [o["id"] for o in a.http.get("/orders").json()["result"]["orders"]]
    r = merchant.post("/api/mitra/v4/instant/pickup/find-new-driver", {"order_id": made["order_id"]})
    assert r.json()["status"] is True, r.json()
    # The fleet provider's redrive task drops the old assignment.
    wait_for(lambda: count(backend, "assignments", pk) == 0)
    board = b.available(lat=PICKUP[0], long=PICKUP[1] + shift, limit=5)["result"]["orders"]
    assert board[0]["id"] == pk and board[0]["state"] == "finding_driver"
    assert a.status(pk, "picked_up") == NOT_FOUND
    assert b.accept(pk)["result"]["tracking_code"] == f"FLT-{pk}-{b.id}"
    assert merchant.track(made["order_id"]).json()["result"]["driver"]["name"] == f"Bambang {backend.name}"
    assert a.status(pk, "picked_up") == NOT_FOUND
    assert b.status(pk, "picked_up")["result"]["state"] == "picked_up"


# -- positions ------------------------------------------------------------------------------


def _metric(base_url: str) -> float:
    for line in httpx.get(f"{base_url}/metrics").text.splitlines():
        if line.startswith('lacak_driver_positions_total{source="driver"}'):
            return float(line.split()[-1])
    return 0.0


def test_location_batches_move_the_driver_and_keep_a_bounded_trail(
    backend: Backend, crew: dict[str, DriverApp], merchant: Api, fleet: Server
) -> None:
    c = crew["c"]
    made = fleet_order(merchant, -25.0)
    pk = pk_of(backend, merchant, made["order_id"])
    assert c.accept(pk)["status"] is True
    events, deliveries = count(backend, "order_events", pk), count(backend, "deliveries", pk)
    metric = _metric(fleet.base_url)

    # Ahead of every point posted earlier in this module (within the accepted clock slack).
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    newest = now - timedelta(seconds=1)
    # Out of order on purpose, and one time as epoch milliseconds: the newest wins, not the last.
    batch = [
        point(-7.80, 85.40, now - timedelta(seconds=20), accuracy=5),
        {"lat": -7.79, "long": 85.41, "at": ms(newest)},
        point(-7.81, 85.39, now - timedelta(seconds=40)),
    ]
    r = c.locate(batch)
    assert r.status_code == 200
    result = r.json()["result"]
    assert result["points"] == 3 and pk in result["orders"]
    assert result["position"] == {
        "lat": -7.79,
        "long": 85.41,
        "at": newest.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    }
    row = backend.query("SELECT lat, long FROM drivers WHERE id = $1", c.id)[0]
    assert (row["lat"], row["long"]) == (-7.79, 85.41)
    trail = backend.query("SELECT lat, accuracy FROM positions WHERE order_pk = $1 ORDER BY id", pk)
    assert trail == [
        {"lat": -7.81, "accuracy": None},
        {"lat": -7.80, "accuracy": 5.0},
        {"lat": -7.79, "accuracy": None},
    ]
    live = backend.query("SELECT lat, long FROM live_positions WHERE order_pk = $1", pk)
    assert live == [{"lat": -7.79, "long": 85.41}]

    # More than the bound, in two batches: the oldest points go.
    start = now - timedelta(hours=1)
    stream = [point(-7.0 - i / 10000, 85.0, start + timedelta(seconds=i)) for i in range(2 * 300)]
    for part in (stream[:300], stream[300:]):
        assert c.locate(part).json()["status"] is True
    assert count(backend, "positions", pk) == TRAIL_LIMIT
    kept = backend.query("SELECT lat FROM positions WHERE order_pk = $1 ORDER BY id LIMIT 1", pk)
    assert kept[0]["lat"] == pytest.approx(stream[-TRAIL_LIMIT]["lat"])  # the last 500 stored
    # Those were older than the live position: the driver has not moved back in time.
    row = backend.query("SELECT lat, long FROM drivers WHERE id = $1", c.id)[0]
    assert (row["lat"], row["long"]) == (-7.79, 85.41)

    # Positions are not state changes: no history rows, no webhooks.
    assert (count(backend, "order_events", pk), count(backend, "deliveries", pk)) == (events, deliveries)
    assert _metric(fleet.base_url) == metric + 603


@pytest.mark.parametrize(
    ("points", "text"),
    [
        ([], "The points field is required."),
        ("nope", "The points field must be an array."),
        ([{"lat": -7.8, "long": 110.3}], "The points.0.at field is required."),
        (
            [{"lat": -7.8, "long": 110.3, "at": "2026-01-01T10:00:00"}],
            "The points.0.at field must include a timezone offset.",
        ),
        (
            [{"lat": -7.8, "long": 110.3, "at": 1_700_000_000}],
            "The points.0.at field must be epoch milliseconds or an ISO 8601 time.",
        ),
        ([{"lat": -7.8, "long": 110.3, "at": "yesterday"}], "The points.0.at field is invalid."),
        (
            [
                {"lat": -7.8, "long": 110.3, "at": "2026-01-01T10:00:00Z"},
                {"lat": 91, "long": 110.3, "at": "2026-01-01T10:00:00Z"},
            ],
            "The points.1.lat field must be between -90 and 90.",
        ),
        (
            [{"lat": -7.8, "long": 181, "at": "2026-01-01T10:00:00Z"}],
            "The points.0.long field must be between -180 and 180.",
        ),
        (
            [{"lat": -7.8, "long": 110.3, "at": "2026-01-01T10:00:00Z", "accuracy": -1}],
            "The points.0.accuracy field must be at least 0.",
        ),
        (
            [{"lat": "x", "long": 110.3, "at": "2026-01-01T10:00:00Z"}],
            "The points.0.lat field must be a number.",
        ),
    ],
)
def test_bad_location_batches_are_422_and_write_nothing(
    backend: Backend, crew: dict[str, DriverApp], points: Any, text: str
) -> None:
    d = crew["d"]
    before = backend.query("SELECT count(*) AS n FROM positions")
    r = d.locate(points)
    assert (r.status_code, r.json()) == (
        200,
        {"status": False, "text": text, "code": 422, "method": None, "result": None},
    )
    assert backend.query("SELECT count(*) AS n FROM positions") == before
    assert backend.query("SELECT position_at FROM drivers WHERE id = $1", d.id) == [{"position_at": None}]


def test_other_bad_input(backend: Backend, crew: dict[str, DriverApp], merchant: Api) -> None:
    d = crew["d"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert d.locate([point(-7.8, 110.3, future)]).json()["text"] == (
        "The points.0.at field must be a date before or equal to now."
    )
    too_many = [point(-7.8, 110.3, datetime.now(UTC))] * 501
    assert d.locate(too_many).json()["text"] == "The points field must not have more than 500 items."
    r = d.http.post("/location", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, 400)
    board = {
        (): "The lat field is required.",  # no point given and no position known yet
        (("lat", "-7.8"),): "The long field is required when lat is present.",
        (("long", "110"),): "The lat field is required when long is present.",
        (("lat", "abc"), ("long", "110")): "The lat field must be a number.",
        (("lat", "nan"), ("long", "110")): "The lat field must be a number.",
        (("lat", "95"), ("long", "110")): "The lat field must be between -90 and 90.",
        (("lat", "-7.8"), ("long", "110"), ("limit", "101")): "The limit field must be between 1 and 100.",
        (("lat", "-7.8"), ("long", "110"), ("limit", "0")): "The limit field must be between 1 and 100.",
        (("lat", "-7.8"), ("long", "110"), ("limit", "2.5")): "The limit field must be an integer.",
    }
    for params, text in board.items():
        assert d.available(**dict(params)) == {
            "status": False,
            "text": text,
            "code": 422,
            "method": None,
            "result": None,
        }, params
    made = fleet_order(merchant, -26.0)
    pk = pk_of(backend, merchant, made["order_id"])
    for ref in ("abc", "-1", "1e3", "99999999999999999999", "999999999"):
        assert d.accept(ref) == NOT_FOUND, ref
    assert d.accept(pk)["status"] is True
    events = count(backend, "order_events", pk)
    for body, text in [
        ({"status": "cancelled"}, "The selected status is invalid."),
        ({"status": "on_hold"}, "The selected status is invalid."),
        ({}, "The status field is required."),
        ({"status": "picked_up", "note": "x" * 256}, "The note may not be greater than 255 characters."),
    ]:
        r = d.http.post(f"/orders/{pk}/status", json=body)
        assert r.json()["text"] == text and r.json()["code"] == 422
    assert count(backend, "order_events", pk) == events
