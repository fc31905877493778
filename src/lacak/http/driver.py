"""The driver API (`/api/driver/v1`): the operator's own fleet, authenticated by driver tokens.

Driver tokens live in `drivers`, merchant keys in `api_keys`: neither authenticates on the
other's API. Orders are named by their numeric `id` (see `lacak.drivers.service`).

    GET  /orders/available?lat=&long=&limit=   open fleet orders, nearest pickup first
    GET  /orders                               the orders this driver carries now
    POST /orders/{id}/accept                   first driver wins
    POST /orders/{id}/status                   {"status": "picked_up", "note": "..."}
    POST /location                             {"points": [{"lat", "long", "at", "accuracy"?}]}
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lacak.drivers.models import DriverAccount, LocationRequest, StatusRequest
from lacak.drivers.service import Drivers
from lacak.errors import ValidationError
from lacak.http import body
from lacak.http.envelope import error_response, ok
from lacak.http.routes import services_of
from lacak.orders.models import Order, Place
from lacak.timeutil import utcnow, wire

PREFIX = "/api/driver/v1"

DriverHandler = Callable[[Request, DriverAccount, Drivers], Awaitable[Response]]


def drivers_of(request: Request) -> Drivers:
    # Stateless and cheap to build: no token cache, so a revocation holds from the next request.
    s = services_of(request)
    return Drivers(s.db, s.store, s.metrics, utcnow)


def driver_endpoint(handler: DriverHandler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate the driver's bearer token, run the handler, turn any error into an envelope."""

    async def endpoint(request: Request) -> Response:
        try:
            drivers = drivers_of(request)
            driver = await drivers.authenticate(request.headers.get("authorization"))
            return await handler(request, driver, drivers)
        except Exception as exc:  # the HTTP edge: every failure leaves as an envelope
            return error_response(exc)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# -- query parameters -----------------------------------------------------------------------


def _number(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValidationError(f"The {name} field must be a number.", name)
    return value


def _integer(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    if not raw.strip().isdigit() or len(raw.strip()) > 9:
        raise ValidationError(f"The {name} field must be an integer.", name)
    return int(raw)


# -- shapes ---------------------------------------------------------------------------------


def _place(p: Place, contacts: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": p.name,
        "address": p.address,
        "address_note": p.address_note,
        "lat": p.lat,
        "long": p.long,
    }
    if contacts:
        out["phone"] = p.phone
    return out


def order_view(o: Order, *, contacts: bool = True) -> dict[str, Any]:
    """An order as a driver sees it: never the merchant, and phones only once it is theirs."""
    return {
        "id": o.pk,
        "order_id": o.order_id,
        "state": o.state.value,
        "service": o.service,
        "vehicle": o.vehicle,
        "tracking_code": o.tracking_code,
        "pickup": _place(o.origin, contacts),
        "dropoff": _place(o.destination, contacts),
        "item": {"name": o.item_name, "description": o.item_description, "weight": o.item_weight},
        "shipping_cost": o.shipping_cost,
        "poly_line": o.poly_line,
        "created_at": wire(o.created_at),
        "allocated_at": wire(o.allocated_at),
        "finished_at": wire(o.finished_at),
    }


# -- handlers -------------------------------------------------------------------------------


async def available(request: Request, driver: DriverAccount, drivers: Drivers) -> Response:
    """Open fleet orders, nearest pickup first (to lat/long, else the driver's last position)."""
    found = await drivers.available(
        driver, _number(request, "lat"), _number(request, "long"), _integer(request, "limit")
    )
    orders = [{**order_view(o, contacts=False), "distance_km": round(km, 3)} for o, km in found]
    return ok({"orders": orders})


async def carried(request: Request, driver: DriverAccount, drivers: Drivers) -> Response:
    """The orders this driver has accepted and not finished."""
    return ok({"orders": [order_view(o) for o in await drivers.carried(driver)]})


async def accept(request: Request, driver: DriverAccount, drivers: Drivers) -> Response:
    """Take an open order; the first driver wins, every other one hears `order already taken`."""
    return ok(order_view(await drivers.accept(driver, request.path_params["order_id"])))


async def status(request: Request, driver: DriverAccount, drivers: Drivers) -> Response:
    """Move the driver's own order on, by the lifecycle rules."""
    req = await body.decode(request, StatusRequest)
    order = await drivers.report(driver, request.path_params["order_id"], req.status, req.note)
    return ok(order_view(order))


async def location(request: Request, driver: DriverAccount, drivers: Drivers) -> Response:
    """A batch of positions: the newest is the live one, all join the carried orders' trails."""
    req = await body.decode(request, LocationRequest)
    done = await drivers.locate(driver, req)
    return ok(
        {
            "points": done.points,
            "position": {"lat": done.lat, "long": done.long, "at": wire(done.at)},
            "orders": done.orders,
        }
    )


def routes() -> list[Route]:
    d = driver_endpoint
    return [
        Route(f"{PREFIX}/orders/available", d(available), methods=["GET"]),
        Route(f"{PREFIX}/orders", d(carried), methods=["GET"]),
        Route(f"{PREFIX}/orders/{{order_id}}/accept", d(accept), methods=["POST"]),
        Route(f"{PREFIX}/orders/{{order_id}}/status", d(status), methods=["POST"]),
        Route(f"{PREFIX}/location", d(location), methods=["POST"]),
    ]
