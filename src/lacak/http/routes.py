"""Small helpers shared by the route modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from lacak.http.envelope import error_response
from lacak.merchants.models import Merchant
from lacak.wiring import Services

MerchantHandler = Callable[[Request, Merchant, Services], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def services_of(request: Request) -> Services:
    s: Services = request.app.state.services
    return s


def merchant_endpoint(handler: MerchantHandler) -> Endpoint:
    """Authenticate the bearer key, run the handler, turn any error into an envelope."""

    async def endpoint(request: Request) -> Response:
        s = services_of(request)
        try:
            merchant = await s.merchants.authenticate(request.headers.get("authorization"))
            return await handler(request, merchant, s)
        except Exception as exc:  # the HTTP edge: every failure leaves as an envelope
            return error_response(exc)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint
