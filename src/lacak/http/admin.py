"""The operator API under /api/admin/, behind `LACAK_ADMIN_TOKEN`."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lacak.errors import AuthError, ValidationError
from lacak.http import body, render
from lacak.http.envelope import error_response, ok
from lacak.http.routes import services_of
from lacak.orders.models import Driver, State
from lacak.wiring import Services

AdminHandler = Callable[[Request, Services], Awaitable[Response]]


class NewMerchant(msgspec.Struct, frozen=True):
    name: str
    prepaid: bool = False


class Advance(msgspec.Struct, frozen=True):
    state: str
    merchant: str | None = None
    driver_name: str | None = None
    driver_phone: str | None = None
    driver_photo: str | None = None
    tracking_code: str | None = None
    reason: str | None = None
    note: str | None = None


class MerchantRef(msgspec.Struct, frozen=True):
    merchant: str


def _check_token(request: Request, expected: str | None) -> None:
    if not expected:
        raise AuthError("admin API disabled: set LACAK_ADMIN_TOKEN")
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthError("Unauthenticated.")


def admin_endpoint(handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        s = services_of(request)
        try:
            _check_token(request, s.settings.admin_token)
            return await handler(request, s)
        except Exception as exc:  # the HTTP edge: every failure leaves as an envelope
            return error_response(exc)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def merchant_json(m: Any, active_keys: int | None = None) -> dict[str, Any]:
    out = {
        "merchant_id": m.id,
        "name": m.name,
        "payment_mode": m.payment_mode.value,
        "callback_url": m.callback_url,
        "webhook_dialect": m.webhook_dialect,
    }
    if active_keys is not None:
        out["active_keys"] = active_keys
    return out


async def list_merchants(request: Request, s: Services) -> Response:
    """All merchants."""
    rows = await s.store.list_merchants()
    return ok([merchant_json(m, n) for m, n in rows])


async def create_merchant(request: Request, s: Services) -> Response:
    """Create a merchant; the API key is shown once."""
    req = await body.decode(request, NewMerchant)
    merchant, key = await s.merchants.create(req.name, prepaid=req.prepaid)
    return ok({**merchant_json(merchant), "api_key": key})


async def rotate_key(request: Request, s: Services) -> Response:
    """Replace the merchant's key; the old one stops working."""
    merchant, key = await s.merchants.rotate_key(request.path_params["merchant"])
    return ok({"merchant_id": merchant.id, "api_key": key})


async def revoke_keys(request: Request, s: Services) -> Response:
    """Revoke every key of the merchant."""
    merchant, count = await s.merchants.revoke_keys(request.path_params["merchant"])
    return ok({"merchant_id": merchant.id, "revoked": count})


async def _merchant_id(s: Services, ref: str | None) -> int | None:
    return None if ref is None else (await s.merchants.get(ref)).id


async def get_order(request: Request, s: Services) -> Response:
    """One order with its full history."""
    merchant_id = await _merchant_id(s, request.query_params.get("merchant"))
    order = await s.orders.locate(request.path_params["order_id"], merchant_id)
    history = await s.store.history(order.pk)
    return ok(
        {
            "merchant_id": order.merchant_id,
            "seq": order.seq,
            "tracking": render.tracking(order),
            "history": msgspec.to_builtins(history),
        }
    )


async def advance_order(request: Request, s: Services) -> Response:
    """Move an order through the lifecycle by hand (operator source)."""
    req = await body.decode(request, Advance)
    try:
        state = State(req.state)
    except ValueError:
        raise ValidationError("The selected state is invalid.", "state") from None
    merchant_id = await _merchant_id(s, req.merchant)
    order = await s.orders.locate(request.path_params["order_id"], merchant_id)
    driver = None
    if req.driver_name or req.driver_phone or req.driver_photo:
        driver = Driver(req.driver_name, req.driver_phone, req.driver_photo)
    decision = await s.orders.advance(
        order.merchant_id,
        order.order_id,
        state,
        driver=driver,
        tracking_code=req.tracking_code,
        reason=req.reason,
        note=req.note,
    )
    return ok(
        {
            "outcome": decision.outcome.value,
            "seq": decision.order.seq,
            "tracking": render.tracking(decision.order),
        }
    )


async def mark_paid(request: Request, s: Services) -> Response:
    """Mark a prepaid payment as paid; its orders go on to finding_driver."""
    req = await body.decode(request, MerchantRef)
    merchant = await s.merchants.get(req.merchant)
    payment = await s.orders.mark_paid(merchant.id, request.path_params["payment_id"])
    return ok({"payment_id": payment.payment_id, "status_code": payment.status_code})


def routes() -> list[Route]:
    a = admin_endpoint
    return [
        Route("/api/admin/merchants", a(list_merchants), methods=["GET"]),
        Route("/api/admin/merchants", a(create_merchant), methods=["POST"]),
        Route("/api/admin/merchants/{merchant}/keys/rotate", a(rotate_key), methods=["POST"]),
        Route("/api/admin/merchants/{merchant}/keys/revoke", a(revoke_keys), methods=["POST"]),
        Route("/api/admin/orders/{order_id}", a(get_order), methods=["GET"]),
        Route("/api/admin/orders/{order_id}/advance", a(advance_order), methods=["POST"]),
        Route("/api/admin/payments/{payment_id}/paid", a(mark_paid), methods=["POST"]),
    ]
