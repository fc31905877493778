"""The built-in courier simulator: trips that run by themselves, every branch, reproducibly.

Each server test gets a database of its own: task claims are shared through the database, so
another server on the same database (the session `server`, at the default speed and rates)
would otherwise run some of this test's steps with its own settings.
"""

from __future__ import annotations

import itertools
import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polyline
import pytest
from kiriminaja import (  # type: ignore[import-untyped]  # the SDK ships no type information
    InstantPickupItem,
    InstantPickupPackage,
    InstantPickupPayload,
    InstantService,
    InstantVehicle,
    KiriminAja,
)

from lacak.couriers.simulator import people, trip
from lacak.orders.models import Order, Place, State
from lacak.pricing.geo import city_route, city_route_points, haversine_km
from lacak.settings import SimSettings
from lacak.storage import migrate
from tests.support import (
    Api,
    Backend,
    Server,
    admin_client,
    create_merchant,
    create_order,
    package,
    postgres_database,
)

FAST = {"speed": "4000", "find_delay": "20", "position_every": "10"}  # a whole trip in ~2 s
HAPPY = ["created", "finding_driver", "driver_assigned", "at_pickup", "picked_up", "in_transit", "delivered"]
PHONE = re.compile(r"^08\d{9,10}$")
PLATE = re.compile(r"^[A-Z]{1,2} \d{1,4} [A-Z]{1,3}$")
SVG_NS = "{http://www.w3.org/2000/svg}"
YOGYA = (-7.8032616, 110.350244)
SLEMAN = (-7.7349434, 110.405355)


# -- plumbing shared with test_sim_resilience -------------------------------------------------


@contextmanager
def fresh_database(kind: Backend, where: Path) -> Iterator[Backend]:
    """An empty, migrated database of the same kind as `kind`."""
    if kind.name == "sqlite":
        url = f"sqlite:///{where / 'sim.db'}"
        migrate.upgrade(url)
        yield Backend("sqlite", url, where)
        return
    with postgres_database() as url:
        migrate.upgrade(url)
        yield Backend("postgres", url, where)


@pytest.fixture()
def own(backend: Backend, tmp_path: Path) -> Iterator[Backend]:
    with fresh_database(backend, tmp_path) as db:
        yield db


TASK_LEASE = 5.0  # short, so a step held by a killed process is taken over quickly


def sim_env(db: Backend, **sim: str) -> dict[str, str]:
    return db.env(
        LACAK_TASK_LEASE=str(TASK_LEASE), **{f"LACAK_SIM_{k.upper()}": v for k, v in {**FAST, **sim}.items()}
    )


def start(env: dict[str, str], log: Path, workers: int = 1) -> Server:
    srv = Server(env, log, workers=workers)
    # Driver photo URLs are built from the public URL: make it this server's real address.
    srv.env = {**env, "LACAK_PUBLIC_URL": srv.base_url}
    return srv.start()


@contextmanager
def sim_server(db: Backend, log: Path, **sim: str) -> Iterator[Server]:
    srv = start(sim_env(db, **sim), log)
    try:
        yield srv
    finally:
        srv.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def finished(api: Api, order_id: str, timeout: float = 40.0) -> dict[str, Any]:
    """The tracking result once the order is terminal."""

    def done() -> dict[str, Any] | None:
        result: dict[str, Any] = api.track(order_id).json()["result"]
        return result if result["status_name"] in ("delivered", "returned", "cancelled", "failed") else None

    out: dict[str, Any] = wait_for(f"{order_id} to finish", done, timeout)
    return out


def history(base_url: str, order_id: str) -> list[dict[str, Any]]:
    with admin_client(base_url) as admin:
        body = admin.get(f"/api/admin/orders/{order_id}").json()
    events: list[dict[str, Any]] = body["result"]["history"]
    return events


def applied(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["outcome"] == "applied"]


def check_history(db: Backend, order_pk: int, events: list[dict[str, Any]]) -> None:
    """Every applied change once: seq 1..n with no gap, no dedupe key twice, no state applied twice
    in a row, and exactly one outbox row per change (none for positions)."""
    done = applied(events)
    assert [e["seq"] for e in done] == list(range(1, len(done) + 1)), done
    keys = [e["dedupe_key"] for e in done if e["dedupe_key"]]
    assert len(keys) == len(set(keys)), keys
    assert all(a["state"] != b["state"] for a, b in itertools.pairwise(done)), done
    assert [e for e in events if e["outcome"] != "applied"] == [], "the simulator never fights the lifecycle"
    rows = db.query("SELECT seq, state FROM deliveries WHERE order_pk = $1 ORDER BY seq", order_pk)
    # The created event is the order itself (no webhook); every later applied change has one row.
    assert [(r["seq"], r["state"]) for r in rows] == [(e["seq"], e["state"]) for e in done[1:]]


def order_pk(db: Backend, order_id: str) -> int:
    return int(db.query("SELECT id FROM orders WHERE order_id = $1", order_id)[0]["id"])


# -- end to end: the official SDK ---------------------------------------------------------------


def sdk_create(client: KiriminAja) -> dict[str, Any]:
    sent = package()
    fields = {k: v for k, v in sent.items() if k != "item"}
    body = client.order.instant.create(
        InstantPickupPayload(
            service=InstantService.GOSEND,
            service_type="instant",
            vehicle=InstantVehicle.BIKE,
            order_prefix="SIM",
            packages=[InstantPickupPackage(**fields, item=InstantPickupItem(**sent["item"]))],
        )
    )
    assert body["status"] is True, body
    pkg: dict[str, Any] = body["result"]["packages"][0]
    return pkg


def off_route_m(route: list[tuple[float, float]], lat: float, long: float) -> float:
    """Distance from a point to the nearest segment of `route`, flat-earth (fine at city scale)."""
    k = math.cos(math.radians(lat))

    def xy(p: tuple[float, float]) -> tuple[float, float]:
        return p[1] * k * 111_320, p[0] * 111_320

    px, py = xy((lat, long))
    best = math.inf
    for a, b in itertools.pairwise(route):
        (ax, ay), (bx, by) = xy(a), xy(b)
        dx, dy = bx - ax, by - ay
        t = (
            0.0
            if dx == dy == 0
            else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
        )
        best = min(best, math.hypot(px - (ax + t * dx), py - (ay + t * dy)))
    return best


def test_sdk_order_is_delivered_by_the_simulator(own: Backend, tmp_path: Path) -> None:
    with sim_server(own, tmp_path / "server.log") as srv:
        api = create_merchant(srv.base_url)
        with KiriminAja(base_url=srv.base_url, api_key=api.key) as client:
            pkg = sdk_create(client)
            order_id = pkg["order_id"]

            def track() -> dict[str, Any] | None:
                result: dict[str, Any] = client.order.instant.track(order_id)["result"]
                return result if result["date"]["finished_at"] else None

            tracked = wait_for("finished_at", track)
        events = history(srv.base_url, order_id)
        photo = httpx.get(tracked["driver"]["photo"], timeout=10)

    assert tracked["status_name"] == "delivered" and tracked["status"] == 200
    assert tracked["date"]["allocated_at"] and tracked["date"]["canceled_at"] is None
    assert tracked["cancel_description"] is None
    assert re.fullmatch(r"GK-11-\d{7}", tracked["tracking_code"]), tracked["tracking_code"]
    driver = tracked["driver"]
    first, last = driver["name"].split(" ")
    assert first in people.FIRST_NAMES and last in people.FAMILY_NAMES
    assert PHONE.match(driver["phone"]), driver
    assert re.fullmatch(rf"{re.escape(srv.base_url)}/avatars/[0-9a-f]{{16}}\.svg", driver["photo"])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/svg+xml"

    done = applied(events)
    assert [e["state"] for e in done] == HAPPY
    assert {e["source"] for e in done[2:]} == {"simulator"}
    assert all(e["dedupe_key"].startswith("sim:1:") for e in done[2:])
    pk = order_pk(own, order_id)
    check_history(own, pk, events)
    (plate,) = own.query("SELECT driver_plate FROM orders WHERE id = $1", pk)
    assert PLATE.match(plate["driver_plate"]) and plate["driver_plate"].startswith("AB "), plate  # Yogyakarta

    # The pickup response's poly_line is the street route, and it is the one the driver drove.
    route = polyline.decode(pkg["poly_line"], 5)
    assert (
        len(route) > 2
        and route[0] == pytest.approx(YOGYA, abs=1e-5)
        and route[-1] == pytest.approx(SLEMAN, abs=1e-5)
    )
    in_transit = datetime.fromisoformat(next(e["occurred_at"] for e in done if e["state"] == "in_transit"))
    trail = own.query("SELECT lat, long, at, source FROM positions WHERE order_pk = $1 ORDER BY id", pk)
    assert {p["source"] for p in trail} == {"simulator"}
    driven = [p for p in trail if _when(p["at"]) > in_transit]
    assert len(driven) >= 10, "positions are posted along the way"
    assert max(off_route_m(route, p["lat"], p["long"]) for p in driven) < 5
    assert haversine_km(driven[-1]["lat"], driven[-1]["long"], *SLEMAN) < 0.01
    (live,) = own.query("SELECT lat, long FROM live_positions WHERE order_pk = $1", pk)
    assert (live["lat"], live["long"]) == (driven[-1]["lat"], driven[-1]["long"])


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value).replace(tzinfo=UTC)


# -- every failure branch ------------------------------------------------------------------------


def _redrive_after_no_driver(api: Api, order_id: str) -> None:
    def no_driver() -> dict[str, Any] | None:
        result: dict[str, Any] = api.track(order_id).json()["result"]
        return result if result["status_name"] == "no_driver" else None

    assert wait_for("no_driver", no_driver)["cancel_description"] == trip.NO_DRIVER_REASON
    body = api.post("/api/mitra/v4/instant/pickup/find-new-driver", {"order_id": order_id}).json()
    assert body["status"] is True, body


BRANCHES: dict[str, tuple[dict[str, str], Callable[[Api, str], None] | None, list[str], str | None]] = {
    # rates, what the merchant does meanwhile, the applied states, the final cancel_description.
    # Branches that can follow each other share one trip (a server start costs more than a trip).
    "no_driver_redrive_hold_and_refusal": (
        {"no_driver_rate": "1", "hold_rate": "1", "return_rate": "1"},
        _redrive_after_no_driver,
        [
            "created",
            "finding_driver",
            "no_driver",
            "finding_driver",
            "driver_assigned",
            "at_pickup",
            "picked_up",
            "in_transit",
            "on_hold",
            "in_transit",
            "returning",
            "returned",
        ],
        None,
    ),
    "courier_cancel": (
        {"cancel_rate": "1"},
        None,
        ["created", "finding_driver", "driver_assigned", "at_pickup", "cancelled"],
        trip.CANCEL_REASON,
    ),
}


@pytest.mark.parametrize("branch", list(BRANCHES))
def test_failure_branches(branch: str, own: Backend, tmp_path: Path) -> None:
    rates, meanwhile, states, reason = BRANCHES[branch]
    with sim_server(own, tmp_path / "server.log", **rates) as srv:
        api = create_merchant(srv.base_url)
        order_id = create_order(api)["order_id"]
        if meanwhile is not None:
            meanwhile(api, order_id)
        tracked = finished(api, order_id)
        events = history(srv.base_url, order_id)
    done = applied(events)
    assert [e["state"] for e in done] == states
    assert tracked["cancel_description"] == reason
    by = {e["state"]: e for e in done}
    assert all(e["source"] == "simulator" for e in done if e["state"] not in ("created", "finding_driver"))
    pk = order_pk(own, order_id)
    if "cancelled" in by:
        assert tracked["date"]["canceled_at"] and tracked["status"] == 300 and tracked["driver"]["name"]
        asked = own.query("SELECT id FROM tasks WHERE order_pk = $1 AND kind = 'courier.cancel'", pk)
        assert asked == [], "the courier's own cancel asks nothing back of the courier"
    if "returning" in by:
        assert by["returning"]["note"] == trip.REFUSED_REASON
        assert tracked["date"]["finished_at"] and tracked["status"] == 400
        (live,) = own.query("SELECT lat, long FROM live_positions WHERE order_pk = $1", pk)
        assert haversine_km(live["lat"], live["long"], *YOGYA) < 0.01, "driven back to the sender"
    if "on_hold" in by:
        hold = by["on_hold"]
        assert hold["note"] == trip.HOLD_NOTE
        assert hold["lat"] is not None and haversine_km(hold["lat"], hold["long"], *YOGYA) > 1, "on the way"
    if "no_driver" in by:
        # The reopened search is generation 2: the first generation's keys never reappear.
        assert done[2]["dedupe_key"] == "sim:1:1"
        assert all(e["dedupe_key"].startswith("sim:2:") for e in done[4:])
        assert tracked["date"]["allocated_at"] and tracked["driver"]["name"]
    check_history(own, order_pk(own, order_id), events)


# -- pure parts: reproducible, plausible --------------------------------------------------------


def an_order(pk: int = 7, service: str = "gosend") -> Order:
    now = datetime(2024, 1, 19, 4, 1, 37, tzinfo=UTC)
    origin = Place("A", "0812", "Wirobrajan", "", *YOGYA)
    destination = Place("B", "0813", "Minomartani", "", *SLEMAN)
    return Order(
        pk=pk,
        merchant_id=1,
        order_id="T-1",
        payment_pk=1,
        service=service,
        service_type="instant",
        vehicle="motor",
        state=State.FINDING_DRIVER,
        seq=2,
        origin=origin,
        destination=destination,
        item_name="x",
        item_description="",
        item_price=1,
        item_weight=1,
        shipping_cost=1,
        admin_fee=0,
        total_price=1,
        poly_line=city_route(*YOGYA, *SLEMAN),
        created_at=now,
        updated_at=now,
    )


def run_step(
    payload: dict[str, Any], sim: SimSettings | None = None, order: Order | None = None
) -> trip.Plan:
    o = order or an_order()
    c = trip.Ctx(
        sim=sim or SimSettings(),
        order=o,
        generation=payload["generation"],
        n=payload["n"],
        now=datetime(2024, 1, 19, 5, 0, tzinfo=UTC),
        avatar_base="http://x/avatars",
    )
    return trip.step(c, payload)


def search_payload(generation: int = 1) -> dict[str, Any]:
    payload, _ = trip.first_step(SimSettings(), 7, generation)
    return {**payload, "generation": generation}


def test_same_seed_and_order_make_the_same_driver_code_and_route() -> None:
    plans = [run_step(search_payload()) for _ in range(2)]
    assert plans[0] == plans[1]
    update = plans[0].update
    assert update is not None and update.state == State.DRIVER_ASSIGNED and update.driver is not None
    assert (
        plans[0].plate
        and PLATE.match(plans[0].plate)
        and update.driver.phone
        and PHONE.match(update.driver.phone)
    )
    assert update.dedupe_key == "sim:1:1"
    # Another seed, or another generation (a new driver), is another driver.
    other_seed = run_step(search_payload(), SimSettings(seed=1)).update
    second_generation = run_step(search_payload(2)).update
    assert other_seed is not None and second_generation is not None
    assert update.driver != other_seed.driver and update.driver != second_generation.driver
    assert second_generation.tracking_code == update.tracking_code, (
        "the AWB belongs to the booking, not the driver"
    )
    assert people.tracking_code(0, 7, "gosend") != people.tracking_code(1, 7, "gosend")
    assert city_route(*YOGYA, *SLEMAN) == city_route(*YOGYA, *SLEMAN)
    assert city_route(*YOGYA, *SLEMAN) != city_route(*SLEMAN, *YOGYA)


@pytest.mark.parametrize(
    ("service", "shape"),
    [
        ("gosend", r"GK-11-\d{7}"),
        ("grab_express", r"IN-2-[0-9A-Z]{16}"),
        ("borzo", r"[1-9]\d{8}"),
    ],
)
def test_tracking_code_is_in_the_couriers_own_format(service: str, shape: str) -> None:
    codes = {people.tracking_code(0, pk, service) for pk in range(1, 51)}
    assert len(codes) == 50 and all(re.fullmatch(shape, c) for c in codes), codes
    update = run_step(search_payload(), order=an_order(service=service)).update
    assert update is not None and update.tracking_code and re.fullmatch(shape, update.tracking_code)


def test_city_route_is_a_plausible_street_route() -> None:
    points = city_route_points(*YOGYA, *SLEMAN)
    assert points[0] == YOGYA and points[-1] == SLEMAN and len(points) >= 6
    straight = haversine_km(*YOGYA, *SLEMAN)
    driven = sum(haversine_km(*a, *b) for a, b in itertools.pairwise(points))
    assert 1.1 * straight < driven < 1.8 * straight
    assert polyline.decode(city_route(*YOGYA, *SLEMAN), 5) == [(round(a, 5), round(b, 5)) for a, b in points]
    assert len(city_route_points(*YOGYA, YOGYA[0] + 0.0001, YOGYA[1])) == 2  # same block: no detour


def test_first_search_alone_may_find_no_driver() -> None:
    sim = SimSettings(no_driver_rate=1.0)
    first = run_step(search_payload(1), sim)
    assert first.update is not None and first.update.state == State.NO_DRIVER and first.next is None
    again = run_step(search_payload(2), sim)
    assert again.update is not None and again.update.state == State.DRIVER_ASSIGNED and again.next is not None


@pytest.mark.parametrize("speed", [1.0, 60.0, 100_000.0])
def test_steps_never_come_faster_than_the_floor(speed: float) -> None:
    """At any speed a trip keeps MIN_REAL_STEP between steps, writing more points per step instead."""
    sim = SimSettings(speed=speed, hold_rate=1.0)
    plan = run_step(search_payload(), sim)
    drive_points, states = [], []
    while plan.next is not None:
        assert plan.delay >= trip.MIN_REAL_STEP
        if plan.update is not None:
            states.append(plan.update.state.value)
        if plan.next["step"] == "drive":
            drive_points.append(len(plan.points))
        plan = run_step(plan.next, sim)
    assert plan.update is not None
    states.append(plan.update.state.value)
    assert states == [*HAPPY[2:6], "on_hold", "in_transit", "delivered"]
    per_step = trip.intervals_per_step(sim)
    assert per_step == max(1, math.ceil(trip.MIN_REAL_STEP * speed / sim.position_every))
    assert max(drive_points) <= per_step
    if speed < 1000:  # slow enough that a leg takes several steps: each covers `per_step` intervals
        assert max(drive_points) == per_step
    if speed == 1.0:
        assert per_step == 1  # real time: one position every `position_every` seconds


# -- avatars -----------------------------------------------------------------------------------------


def test_avatar_is_a_self_contained_svg_stable_per_seed(server: Server) -> None:
    first = httpx.get(f"{server.base_url}/avatars/f611f3ed3d5f6936.svg", timeout=10)
    again = httpx.get(f"{server.base_url}/avatars/f611f3ed3d5f6936.svg", timeout=10)
    other = httpx.get(f"{server.base_url}/avatars/0123456789abcdef.svg", timeout=10)
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/svg+xml"
    assert first.headers["cache-control"] == "public, max-age=86400"
    root = ET.fromstring(first.content)  # noqa: S314  (our own server's output)
    assert root.tag == f"{SVG_NS}svg" and root.get("viewBox") == "0 0 128 128"
    assert len(list(root.iter())) > 5
    assert first.content == again.content and first.content != other.content
    assert b"href" not in first.content and b"<image" not in first.content, "no external resources"
    bad = httpx.get(f"{server.base_url}/avatars/{'x' * 65}.svg", timeout=10)
    assert bad.status_code == 404 and bad.json()["status"] is False
