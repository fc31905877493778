"""The KiriminAja Mitra v4 instant API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lacak.errors import NotFound
from lacak.http import body, render
from lacak.http.envelope import JSON, ok
from lacak.http.envelope import body as envelope_body
from lacak.http.routes import merchant_endpoint
from lacak.merchants.models import Merchant
from lacak.orders.requests import CallbackRequest, OrderRef, PaymentRef, PickupRequest, PricingRequest
from lacak.wiring import Services

PREFIX = "/api/mitra/v4/instant"
# The success envelope around a stored tracking view (same bytes as `ok(result)` would make).
_TRACKING_PREFIX = envelope_body(True, "success", 0, None, None).removesuffix(b"null}")


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


async def tracking(request: Request, merchant: Merchant, s: Services) -> Response:
    """Track one instant order (the seed endpoint)."""
    order_id = request.path_params["order_id"]
    try:
        view = await s.orders.tracking_view(merchant, order_id)
    except NotFound:
        s.metrics.lookups_missing.inc()
        raise
    s.metrics.lookups_found.inc()
    # seq moves with every state change; updated_at also with courier links set between them.
    etag = f'"{view.pk}-{view.seq}-{int(view.updated_at.timestamp() * 1000)}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if view.json is None:  # not rendered since its last change: build it from the columns
        result = render.tracking(await s.orders.track(merchant, order_id))
        return ok(result, headers=headers)
    return Response(_TRACKING_PREFIX + view.json.encode() + b"}", 200, headers, JSON)


async def pricing(request: Request, merchant: Merchant, s: Services) -> Response:
    """Quote every requested service for one trip."""
    req = await body.decode(request, PricingRequest)
    return ok(render.pricing(s.orders.price(req)), code=None, method="mitra_pricing")


async def pickup_request(request: Request, merchant: Merchant, s: Services) -> Response:
    """Create orders (1 to 100 packages, all or nothing)."""
    req = await body.decode(request, PickupRequest)
    payment, orders = await s.orders.create(merchant, req)
    return ok(render.pickup(payment, orders))


async def find_new_driver(request: Request, merchant: Merchant, s: Services) -> Response:
    """Ask the courier for another driver."""
    req = await body.decode(request, OrderRef)
    order = await s.orders.find_new_driver(merchant, req.order_id)
    return ok(render.find_new_driver(order))


async def void(request: Request, merchant: Merchant, s: Services) -> Response:
    """Cancel an order that has not been picked up."""
    payment, order = await s.orders.void(merchant, request.path_params["order_id"])
    return ok(render.void(payment, order))


async def get_payment(request: Request, merchant: Merchant, s: Services) -> Response:
    """A payment and its packages."""
    req = await body.decode(request, PaymentRef)
    payment, orders = await s.orders.payment(merchant, req.payment_id)
    return ok(render.payment(payment, orders), text="get_payment")


async def set_callback(request: Request, merchant: Merchant, s: Services) -> Response:
    """Set the merchant's webhook URL; the first call also returns the signing secret, once."""
    req = await body.decode(request, CallbackRequest)
    url = req.url.strip()
    secret = await s.hooks.service.set_callback(merchant.id, url)
    s.merchants.cache.clear()  # cached merchants carry the old callback URL
    result = None if secret is None else {"webhook_secret": secret}
    return ok(result, text=f"Callback di set ke {url}", method="set_callback")


def routes() -> list[Route]:
    m = merchant_endpoint
    return [
        # `:path` so that any garbage after the prefix is "data not found", never a 404 route.
        Route(f"{PREFIX}/tracking/{{order_id:path}}", m(tracking), methods=["GET"]),
        Route(f"{PREFIX}/pricing", m(pricing), methods=["POST"]),
        Route(f"{PREFIX}/pickup/request", m(pickup_request), methods=["POST"]),
        Route(f"{PREFIX}/pickup/find-new-driver", m(find_new_driver), methods=["POST"]),
        Route(f"{PREFIX}/pickup/void/{{order_id:path}}", m(void), methods=["DELETE"]),
        Route("/api/mitra/v2/get_payment", m(get_payment), methods=["POST"]),
        Route("/api/mitra/set_callback", m(set_callback), methods=["POST"]),
    ]
