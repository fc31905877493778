"""Webhook operations over HTTP: the merchant's own endpoint and deliveries, and the operator's.

Every operation is written once, for one merchant id, and mounted twice: under
`/api/mitra/v4/webhooks` for the merchant holding the API key, and under
`/api/admin/merchants/{merchant}/webhooks` for the operator. Another merchant's event id is
answered exactly like an unknown one ("data not found"): the lookup is scoped, not checked after.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lacak.errors import NotFound, ValidationError
from lacak.http import body
from lacak.http.admin import admin_endpoint
from lacak.http.envelope import ok
from lacak.http.routes import Endpoint, merchant_endpoint
from lacak.merchants.models import Merchant
from lacak.timeutil import wire
from lacak.webhooks.models import Attempt, Delivery
from lacak.webhooks.models import Endpoint as WebhookEndpoint
from lacak.webhooks.service import MAX_PAGE, Page, parse_status
from lacak.webhooks.store import Filters
from lacak.wiring import Services

PREFIX = "/api/mitra/v4/webhooks"
ADMIN_MERCHANT = "/api/admin/merchants/{merchant}/webhooks"
ADMIN = "/api/admin/webhooks"
DEFAULT_LIMIT = 50
_MAX_ID_DIGITS = 18  # beyond this a numeric merchant reference cannot be a (bigint) id

# An operation on one merchant's webhooks, mounted for the merchant and for the operator.
Operation = Callable[[Request, Services, int], Awaitable[Response]]


class RecoverRequest(msgspec.Struct, frozen=True):
    since: str


class AdminRecoverRequest(msgspec.Struct, frozen=True):
    since: str
    merchant: str | None = None


class DialectRequest(msgspec.Struct, frozen=True):
    dialect: str


# -- reading input ---------------------------------------------------------------------------


def parse_time(text: str, field: str) -> datetime:
    """An ISO 8601 time with its offset, in UTC; anything else names `field`."""
    refused = ValidationError(f"The {field} field must be an ISO 8601 time with a timezone.", field)
    try:
        value = datetime.fromisoformat(text.strip())
        if value.utcoffset() is None:
            raise refused  # a naive time means a different instant on every server
        return value.astimezone(UTC)
    except (ValueError, OverflowError):  # garbage, or year 1 / 9999 pushed out of range
        raise refused from None


def _query(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if not value:
        return None
    if "\x00" in value:  # PostgreSQL text cannot hold a NUL
        raise ValidationError(f"The {name} format is invalid.", name)
    return value


def _time_query(request: Request, name: str) -> datetime | None:
    value = _query(request, name)
    return None if value is None else parse_time(value, name)


def _limit(request: Request) -> int:
    raw = _query(request, "limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise ValidationError(f"The limit must be between 1 and {MAX_PAGE}.", "limit")
    return int(raw)  # the service checks the range


def _filters(request: Request, merchant_id: int | None) -> Filters:
    return Filters(
        merchant_id=merchant_id,
        status=parse_status(_query(request, "status")),
        order_id=_query(request, "order_id"),
        since=_time_query(request, "since"),
        until=_time_query(request, "until"),
    )


async def merchant_id_of(s: Services, ref: str) -> int:
    """A merchant id or name, resolved; a reference that cannot name one is simply not found."""
    if "\x00" in ref or (ref.isdigit() and (not ref.isascii() or len(ref) > _MAX_ID_DIGITS)):
        raise NotFound(f"no merchant {ref!r}")
    return (await s.merchants.get(ref)).id


# -- result shapes -------------------------------------------------------------------------


def endpoint_json(e: WebhookEndpoint) -> dict[str, Any]:
    return {
        "merchant_id": e.merchant_id,
        "url": e.url,
        "dialect": e.dialect,
        "has_secret": e.has_secret,
        "rotating_until": wire(e.rotating_until),
        "failing_since": wire(e.failing_since),
        "held_until": wire(e.held_until),
        "disabled_at": wire(e.disabled_at),
        "disabled_reason": e.disabled_reason,
    }


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "event_id": d.event_id,
        "merchant_id": d.merchant_id,
        "order_id": d.order_id,
        "seq": d.seq,
        "state": d.state,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": wire(d.next_attempt_at),
        "created_at": wire(d.created_at),
        "delivered_at": wire(d.delivered_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
    }


def attempt_json(a: Attempt) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "trigger": a.trigger,
        "started_at": wire(a.started_at),
        "duration_ms": a.duration_ms,
        "status_code": a.status_code,
        "error_class": a.error_class,
        "error": a.error,
        "response_body": a.response_body,
        "outcome": a.outcome,
    }


def detail_json(d: Delivery, attempts: list[Attempt]) -> dict[str, Any]:
    # `attempts` is the count in a listing; here it is the log, oldest first.
    return {**delivery_json(d), "attempts": [attempt_json(a) for a in attempts]}


def page_json(page: Page) -> dict[str, Any]:
    return {"deliveries": [delivery_json(d) for d in page.items], "next_cursor": page.next_cursor}


# -- operations on one merchant's webhooks -------------------------------------------------


async def get_endpoint(request: Request, s: Services, merchant_id: int) -> Response:
    """The webhook endpoint: URL, dialect, signing-secret rotation, health."""
    return ok(endpoint_json(await s.hooks.service.endpoint(merchant_id)))


async def list_deliveries(request: Request, s: Services, merchant_id: int) -> Response:
    """Deliveries, newest first, filtered, a page at a time."""
    filters = _filters(request, merchant_id)
    page = await s.hooks.service.page(filters, _query(request, "cursor"), _limit(request))
    return ok(page_json(page))


async def show_delivery(request: Request, s: Services, merchant_id: int) -> Response:
    """One delivery and every attempt made for it."""
    delivery, attempts = await s.hooks.service.show(request.path_params["event_id"], merchant_id)
    return ok(detail_json(delivery, attempts))


async def resend_delivery(request: Request, s: Services, merchant_id: int) -> Response:
    """Send one delivery again now, whatever its status."""
    delivery = await s.hooks.service.resend(request.path_params["event_id"], merchant_id)
    return ok(delivery_json(delivery))


async def recover_deliveries(request: Request, s: Services, merchant_id: int) -> Response:
    """Send again every failed delivery created since a time."""
    req = await body.decode(request, RecoverRequest)
    since = parse_time(req.since, "since")
    return ok({"requeued": await s.hooks.service.recover(since, merchant_id)})


async def enable_endpoint(request: Request, s: Services, merchant_id: int) -> Response:
    """Re-enable a disabled endpoint; its paused deliveries go now."""
    return ok({"resumed": await s.hooks.service.enable(merchant_id)})


async def rotate_secret(request: Request, s: Services, merchant_id: int) -> Response:
    """A new signing secret; the previous one keeps signing until `previous_valid_until`."""
    secret, until = await s.hooks.service.rotate_secret(merchant_id)
    return ok({"webhook_secret": secret, "previous_valid_until": wire(until)})


async def set_dialect(request: Request, s: Services, merchant_id: int) -> Response:
    """Choose the body format of the merchant's webhooks."""
    req = await body.decode(request, DialectRequest)
    endpoint = await s.hooks.service.set_dialect(merchant_id, req.dialect)
    s.merchants.cache.clear()  # cached merchants carry the old dialect
    return ok(endpoint_json(endpoint))


async def get_secret(request: Request, s: Services, merchant_id: int) -> Response:
    """The current signing secret (made now if the merchant has none): operators only."""
    return ok({"webhook_secret": await s.hooks.service.secret(merchant_id)})


# -- operations across merchants (operator) ------------------------------------------------


async def _optional_merchant(s: Services, ref: str | None) -> int | None:
    return None if ref is None else await merchant_id_of(s, ref)


async def list_all_deliveries(request: Request, s: Services) -> Response:
    """Deliveries of every merchant (or of `merchant`), newest first."""
    merchant_id = await _optional_merchant(s, _query(request, "merchant"))
    page = await s.hooks.service.page(
        _filters(request, merchant_id), _query(request, "cursor"), _limit(request)
    )
    return ok(page_json(page))


async def show_any_delivery(request: Request, s: Services) -> Response:
    """Any merchant's delivery and its attempts."""
    delivery, attempts = await s.hooks.service.show(request.path_params["event_id"], None)
    return ok(detail_json(delivery, attempts))


async def resend_any_delivery(request: Request, s: Services) -> Response:
    """Send any merchant's delivery again now."""
    return ok(delivery_json(await s.hooks.service.resend(request.path_params["event_id"], None)))


async def recover_all(request: Request, s: Services) -> Response:
    """Send again every failed delivery since a time, of every merchant or of one."""
    req = await body.decode(request, AdminRecoverRequest)
    since = parse_time(req.since, "since")
    merchant_id = await _optional_merchant(s, req.merchant)
    return ok({"requeued": await s.hooks.service.recover(since, merchant_id)})


# -- mounting --------------------------------------------------------------------------------


def _as_merchant(op: Operation) -> Endpoint:
    async def handler(request: Request, merchant: Merchant, s: Services) -> Response:
        return await op(request, s, merchant.id)

    handler.__name__ = op.__name__
    handler.__doc__ = op.__doc__
    return merchant_endpoint(handler)


def _as_operator(op: Operation) -> Endpoint:
    async def handler(request: Request, s: Services) -> Response:
        return await op(request, s, await merchant_id_of(s, request.path_params["merchant"]))

    handler.__name__ = f"admin_{op.__name__}"
    handler.__doc__ = op.__doc__
    return admin_endpoint(handler)


# (method, path under the merchant's webhooks, operation): mounted for both audiences.
_OPERATIONS: list[tuple[str, str, Operation]] = [
    ("GET", "", get_endpoint),
    ("GET", "/deliveries", list_deliveries),
    ("GET", "/deliveries/{event_id}", show_delivery),
    ("POST", "/deliveries/{event_id}/resend", resend_delivery),
    ("POST", "/recover", recover_deliveries),
    ("POST", "/enable", enable_endpoint),
    ("POST", "/secret/rotate", rotate_secret),
    ("POST", "/dialect", set_dialect),
]


def routes() -> list[Route]:
    a = admin_endpoint
    return [
        *(Route(f"{PREFIX}{path}", _as_merchant(op), methods=[m]) for m, path, op in _OPERATIONS),
        *(Route(f"{ADMIN_MERCHANT}{path}", _as_operator(op), methods=[m]) for m, path, op in _OPERATIONS),
        Route(f"{ADMIN_MERCHANT}/secret", _as_operator(get_secret), methods=["GET"]),
        Route(f"{ADMIN}/deliveries", a(list_all_deliveries), methods=["GET"]),
        Route(f"{ADMIN}/deliveries/{{event_id}}", a(show_any_delivery), methods=["GET"]),
        Route(f"{ADMIN}/deliveries/{{event_id}}/resend", a(resend_any_delivery), methods=["POST"]),
        Route(f"{ADMIN}/recover", a(recover_all), methods=["POST"]),
    ]
