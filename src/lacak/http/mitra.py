"""The KiriminAja Mitra v4 instant API."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lacak.errors import NotFound
from lacak.http import body, render
from lacak.http.accesslog import AccessLog
from lacak.http.envelope import JSON, error_response, ok
from lacak.http.envelope import body as envelope_body
from lacak.http.routes import FastRoutes, header_values, install_fast_routes, merchant_endpoint, send_raw
from lacak.merchants.models import Merchant
from lacak.metrics import Metrics
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


# A tracking answer as raw ASGI parts: status, header list (in the order Starlette's `Response`
# would make it), body. Built straight from the stored view, without a `Response` object.
RawReply = tuple[int, list[tuple[bytes, bytes]], bytes]
_CACHE_CONTROL = (b"cache-control", b"private, no-cache")
_CONTENT_TYPE = (b"content-type", JSON.encode())


class _Raw(Response):
    """A `RawReply` as a Starlette response, for the (rare) requests not on the fast path."""

    def __init__(self, reply: RawReply) -> None:
        self.status_code, self.raw_headers, self.body = reply
        self.background = None


async def _tracking_reply(
    s: Services, merchant: Merchant, order_id: str, if_none_match: str | None
) -> RawReply | Response:
    try:
        view = await s.orders.tracking_view(merchant, order_id)
    except NotFound:
        s.metrics.lookups_missing.inc()
        raise
    s.metrics.lookups_found.inc()
    # seq moves with every state change; updated_at also with courier links set between them.
    etag = f'"{view.pk}-{view.seq}-{int(view.updated_at.timestamp() * 1000)}"'
    if _etag_matches(if_none_match, etag):
        return 304, [(b"etag", etag.encode()), _CACHE_CONTROL], b""
    if view.json is None:  # not rendered since its last change: build it from the columns
        result = render.tracking(await s.orders.track(merchant, order_id))
        return ok(result, headers={"ETag": etag, "Cache-Control": "private, no-cache"})
    body = _TRACKING_PREFIX + view.json.encode() + b"}"
    length = (b"content-length", str(len(body)).encode())
    return 200, [(b"etag", etag.encode()), _CACHE_CONTROL, length, _CONTENT_TYPE], body


async def tracking(request: Request, merchant: Merchant, s: Services) -> Response:
    """Track one instant order (the seed endpoint)."""
    reply = await _tracking_reply(s, merchant, request.path_params["order_id"],
                                  request.headers.get("if-none-match"))  # fmt: skip
    return reply if isinstance(reply, Response) else _Raw(reply)


_TRACKING_ROUTE = f"{PREFIX}/tracking/{{order_id:path}}"
_TRACKING_AT = f"{PREFIX}/tracking/"
_HISTORY_SUFFIX = "/history"


async def tracking_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """`tracking` on the fast path: the same answer, read from the scope and sent raw."""
    s: Services = scope["app"].state.services
    authorization, if_none_match = header_values(scope, b"authorization", b"if-none-match")
    reply: RawReply | Response
    try:
        merchant = await s.merchants.authenticate(authorization)
        reply = await _tracking_reply(s, merchant, scope["path"][len(_TRACKING_AT) :], if_none_match)
    except Exception as exc:  # the HTTP edge: every failure leaves as an envelope
        reply = error_response(exc)
    if isinstance(reply, Response):
        await reply(scope, receive, send)
    else:
        await send_raw(send, *reply)


def install_fast_path(app: Starlette, metrics: Metrics, access_log: AccessLog | None) -> FastRoutes:
    """Answer GET tracking through the raw-ASGI fast path (see `routes.FastRoutes`)."""
    fast = install_fast_routes(app, metrics, access_log)
    fast.add_prefix(_TRACKING_ROUTE, _TRACKING_AT, tracking_asgi, not_ending=_HISTORY_SUFFIX)
    return fast


async def history(request: Request, merchant: Merchant, s: Services) -> Response:
    """Every recorded event of one order, oldest first (lacak's extension of the API)."""
    order, events = await s.orders.history(merchant, request.path_params["order_id"])
    return ok(render.history(order, events))


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
        # Order ids never hold a "/" (validation), so this suffix is never part of one.
        Route(f"{PREFIX}/tracking/{{order_id}}{_HISTORY_SUFFIX}", m(history), methods=["GET"]),
        Route(_TRACKING_ROUTE, m(tracking), methods=["GET"]),
        Route(f"{PREFIX}/pricing", m(pricing), methods=["POST"]),
        Route(f"{PREFIX}/pickup/request", m(pickup_request), methods=["POST"]),
        Route(f"{PREFIX}/pickup/find-new-driver", m(find_new_driver), methods=["POST"]),
        Route(f"{PREFIX}/pickup/void/{{order_id:path}}", m(void), methods=["DELETE"]),
        Route("/api/mitra/v2/get_payment", m(get_payment), methods=["POST"]),
        Route("/api/mitra/set_callback", m(set_callback), methods=["POST"]),
    ]
