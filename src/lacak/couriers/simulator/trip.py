"""The simulated trip as a pure state machine: one step in, a plan out (no I/O here).

A trip is a chain of steps. Each step reads only the order (as locked by the caller) and the
step's payload, and returns a `Plan`: at most one state change, the positions driven since the
previous step, and the payload of the next step with its delay. The whole trip state travels in
the payload (step name and number, generation, the leg being driven and how far along it, the
driver, whether a hold is planned, the state the trip left the order in), so a restarted
server resumes every trip from the database alone.

Steps, in simulated seconds scaled by `sim.speed`:

    search   after the find delay: no_driver (first search only), or driver_assigned, the
             driver starting 1 to 3 km from the origin
    drive    leg "pickup" (to the origin), "deliver" (the order's route) or "return" (the route
             backwards): a position every `position_every` at `city_kmh`; on arrival at_pickup,
             delivered / returning (recipient refused), or returned; half-way along "deliver",
             on_hold when one was planned
    collect  at the origin: cancelled by the courier, or picked_up
    depart   in_transit (and whether a hold will happen on the way)
    resume   back to in_transit after a hold

No step ever comes sooner than `MIN_REAL_STEP` real seconds after the previous one: at very
high speeds a drive step covers several position intervals and writes several points at once,
so the trip still takes (simulated time / speed) while the database sees at most ~5 steps per
second per trip.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import msgspec
import polyline

from lacak.couriers.simulator.people import SimDriver, make_driver, tracking_code
from lacak.orders.models import Driver, Order, Source, State, Update
from lacak.positions.store import Point
from lacak.pricing.geo import city_route_points, haversine_km
from lacak.settings import SimSettings

MIN_REAL_STEP = 0.2  # real seconds between two steps of one trip, whatever the speed
KM_PER_DEGREE = 111.32
NO_DRIVER_REASON = "driver not found (simulated)"
CANCEL_REASON = "driver cancelled the booking (simulated)"
REFUSED_REASON = "recipient refused the parcel (simulated)"
HOLD_NOTE = "delayed on the way (simulated)"
# Simulated seconds spent in the non-driving steps: (shortest, longest).
COLLECT_WAIT = (60.0, 240.0)  # at the origin, before the parcel is handed over
DEPART_WAIT = (30.0, 90.0)  # strapping the parcel on
HOLD_WAIT = (120.0, 480.0)  # on hold (traffic, rain, a closed road)

LatLong = tuple[float, float]


@dataclass(slots=True)
class Ctx:
    """What a step may look at."""

    sim: SimSettings
    order: Order
    generation: int
    n: int  # this step's number in the trip (part of its dedupe key)
    now: datetime
    avatar_base: str  # photo URLs are f"{avatar_base}/{seed}.svg"
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        # One generator per step: a replayed trip (same seed, order pk) makes the same choices.
        self.rng = random.Random(f"{self.sim.seed}:{self.order.pk}:{self.generation}:{self.n}")


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    update: Update | None = None
    plate: str | None = None  # the driver's plate, with the driver_assigned update
    points: list[Point] = []
    next: dict[str, Any] | None = None  # the next step's payload; None ends the trip
    delay: float = 0.0  # real seconds until the next step


def first_step(sim: SimSettings, order_pk: int, generation: int) -> tuple[dict[str, Any], float]:
    """The search that follows a booking: (payload without generation, real delay)."""
    rng = random.Random(f"{sim.seed}:{order_pk}:{generation}:0")
    delay = real_delay(sim, sim.find_delay * rng.uniform(0.5, 1.5))
    return {"step": "search", "n": 1, "expect": State.FINDING_DRIVER.value}, delay


def real_delay(sim: SimSettings, sim_seconds: float) -> float:
    return max(MIN_REAL_STEP, sim_seconds / sim.speed)


def intervals_per_step(sim: SimSettings) -> int:
    """Position intervals one drive step covers, so drive steps stay MIN_REAL_STEP apart."""
    return max(1, math.ceil(MIN_REAL_STEP * sim.speed / sim.position_every - 1e-9))


def step(c: Ctx, payload: dict[str, Any]) -> Plan:
    return STEPS[payload["step"]](c, payload)


# -- helpers ---------------------------------------------------------------------------------


def _update(c: Ctx, state: State, where: LatLong | None = None, **fields: Any) -> Update:
    lat, long = where if where is not None else (None, None)
    return Update(
        state=state,
        source=Source.SIMULATOR,
        occurred_at=c.now,
        lat=lat,
        long=long,
        dedupe_key=f"sim:{c.generation}:{c.n}",
        **fields,
    )


def _then(c: Ctx, p: dict[str, Any], step_name: str, update: Update | None, **changes: Any) -> dict[str, Any]:
    """The next step's payload: this one's, moved on. `expect` is the state this step leaves."""
    expect = update.state.value if update is not None else p["expect"]
    return {**p, **changes, "step": step_name, "n": c.n + 1, "expect": expect, "generation": c.generation}


def _plan(
    c: Ctx,
    p: dict[str, Any],
    update: Update | None,
    step_name: str | None = None,
    wait: tuple[float, float] | float = 0.0,
    points: list[Point] | None = None,
    **changes: Any,
) -> Plan:
    """A plan that moves the order (maybe) and schedules `step_name` after `wait` sim seconds."""
    if step_name is None:
        return Plan(update=update, points=points or [])
    sim_seconds = c.rng.uniform(*wait) if isinstance(wait, tuple) else wait
    nxt = _then(c, p, step_name, update, **changes)
    return Plan(update=update, points=points or [], next=nxt, delay=real_delay(c.sim, sim_seconds))


def _drive_wait(c: Ctx) -> float:
    """Simulated seconds between drive steps: the intervals one step covers."""
    return c.sim.position_every * intervals_per_step(c.sim)


def start_near(rng: random.Random, lat: float, long: float) -> LatLong:
    """Where an assigned driver starts: 1 to 3 km from the origin, any direction."""
    km, bearing = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * math.pi)
    dlat = km * math.cos(bearing) / KM_PER_DEGREE
    dlong = km * math.sin(bearing) / (KM_PER_DEGREE * math.cos(math.radians(lat)))
    return round(lat + dlat, 6), round(long + dlong, 6)


def leg_route(order: Order, p: dict[str, Any]) -> list[LatLong]:
    """The points of the leg being driven; all recomputed from the order, never stored."""
    if p["leg"] == "pickup":
        return city_route_points(p["start"][0], p["start"][1], order.origin.lat, order.origin.long)
    route: list[LatLong] = [(a, b) for a, b in polyline.decode(order.poly_line, 5)] if order.poly_line else []
    if len(route) < 2:
        route = [(order.origin.lat, order.origin.long), (order.destination.lat, order.destination.long)]
    return route if p["leg"] == "deliver" else route[::-1]


def route_length_m(route: list[LatLong]) -> float:
    return sum(haversine_km(*a, *b) for a, b in pairwise(route)) * 1000


def point_along(route: list[LatLong], meters: float) -> LatLong:
    """The point `meters` along `route` (its end when past it)."""
    for a, b in pairwise(route):
        seg = haversine_km(*a, *b) * 1000
        if meters <= seg and seg > 0:
            t = meters / seg
            return round(a[0] + t * (b[0] - a[0]), 6), round(a[1] + t * (b[1] - a[1]), 6)
        meters -= seg
    return route[-1]


def drive_points(c: Ctx, route: list[LatLong], done: float, stop: float) -> tuple[list[Point], float]:
    """The positions of one drive step from `done` meters on, not past `stop`: (points, new done).

    They are stamped as if posted every `position_every` simulated seconds, the newest now.
    """
    per = c.sim.city_kmh / 3.6 * c.sim.position_every
    marks: list[float] = []
    for i in range(1, intervals_per_step(c.sim) + 1):
        marks.append(min(stop, done + i * per))
        if marks[-1] >= stop:
            break
    every = timedelta(seconds=c.sim.position_every / c.sim.speed)
    points = []
    for i, m in enumerate(marks):
        lat, long = point_along(route, m)
        points.append(Point(lat, long, c.now - every * (len(marks) - 1 - i), accuracy=10.0))
    return points, marks[-1]


# -- steps -----------------------------------------------------------------------------------


def search(c: Ctx, p: dict[str, Any]) -> Plan:
    rng = c.rng
    # Only the first search may fail: a merchant who asks for a new driver gets one, so every
    # branch after no_driver can be exercised too.
    if c.generation == 1 and rng.random() < c.sim.no_driver_rate:
        return _plan(c, p, _update(c, State.NO_DRIVER, reason=NO_DRIVER_REASON))
    o = c.order
    d = make_driver(rng, o.origin.lat, o.origin.long)
    at = start_near(rng, o.origin.lat, o.origin.long)
    update = _update(
        c,
        State.DRIVER_ASSIGNED,
        at,
        driver=driver_of(c, d),
        note=f"plate {d.plate}",
        tracking_code=tracking_code(c.sim.seed, o.pk, o.service),
    )
    plan = _plan(
        c,
        p,
        update,
        "drive",
        _drive_wait(c),
        [Point(at[0], at[1], c.now, accuracy=10.0)],
        leg="pickup",
        done=0.0,
        start=list(at),
        driver=msgspec.to_builtins(d),
    )
    return msgspec.structs.replace(plan, plate=d.plate)


def driver_of(c: Ctx, d: SimDriver) -> Driver:
    return Driver(name=d.name, phone=d.phone, photo=f"{c.avatar_base}/{d.avatar}.svg")


def drive(c: Ctx, p: dict[str, Any]) -> Plan:
    route = leg_route(c.order, p)
    total = route_length_m(route)
    hold_here = p["leg"] == "deliver" and p.get("hold", False)
    stop = total / 2 if hold_here else total
    points, done = drive_points(c, route, p["done"], stop)
    here = (points[-1].lat, points[-1].long)
    if done < stop:
        return _plan(c, p, None, "drive", _drive_wait(c), points, done=done)
    if hold_here:
        return _plan(
            c,
            p,
            _update(c, State.ON_HOLD, here, note=HOLD_NOTE),
            "resume",
            HOLD_WAIT,
            points,
            done=done,
            hold=False,
        )
    return ARRIVALS[p["leg"]](c, p, here, points)


def _at_pickup(c: Ctx, p: dict[str, Any], here: LatLong, points: list[Point]) -> Plan:
    return _plan(c, p, _update(c, State.AT_PICKUP, here), "collect", COLLECT_WAIT, points)


def _at_destination(c: Ctx, p: dict[str, Any], here: LatLong, points: list[Point]) -> Plan:
    if c.rng.random() < c.sim.return_rate:
        update = _update(c, State.RETURNING, here, reason=REFUSED_REASON)
        return _plan(c, p, update, "drive", _drive_wait(c), points, leg="return", done=0.0)
    return _plan(c, p, _update(c, State.DELIVERED, here), points=points)


def _back_at_origin(c: Ctx, p: dict[str, Any], here: LatLong, points: list[Point]) -> Plan:
    return _plan(c, p, _update(c, State.RETURNED, here), points=points)


ARRIVALS: dict[str, Callable[[Ctx, dict[str, Any], LatLong, list[Point]], Plan]] = {
    "pickup": _at_pickup,
    "deliver": _at_destination,
    "return": _back_at_origin,
}


def _origin(c: Ctx) -> LatLong:
    return c.order.origin.lat, c.order.origin.long


def collect(c: Ctx, p: dict[str, Any]) -> Plan:
    if c.rng.random() < c.sim.cancel_rate:
        return _plan(c, p, _update(c, State.CANCELLED, reason=CANCEL_REASON))
    return _plan(c, p, _update(c, State.PICKED_UP, _origin(c)), "depart", DEPART_WAIT)


def depart(c: Ctx, p: dict[str, Any]) -> Plan:
    hold = c.rng.random() < c.sim.hold_rate
    return _plan(
        c,
        p,
        _update(c, State.IN_TRANSIT, _origin(c)),
        "drive",
        _drive_wait(c),
        leg="deliver",
        done=0.0,
        hold=hold,
    )


def resume(c: Ctx, p: dict[str, Any]) -> Plan:
    here = point_along(leg_route(c.order, p), p["done"])
    return _plan(c, p, _update(c, State.IN_TRANSIT, here), "drive", _drive_wait(c))


STEPS: dict[str, Callable[[Ctx, dict[str, Any]], Plan]] = {
    "search": search,
    "drive": drive,
    "collect": collect,
    "depart": depart,
    "resume": resume,
}
