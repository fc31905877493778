"""Routes: inbound courier callbacks (couriers.md), `POST /couriers/{provider}/callback`.

Authenticity is checked before anything else and a refused call stores nothing; an
authenticated event is answered 200 once it is durably stored, even for an unknown order or
status, so the courier stops retrying (it is recorded and counted for the operator instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lacak.couriers.borzo import inbound as borzo
from lacak.couriers.gosend import inbound as gosend
from lacak.couriers.grab_express import inbound as grab_express
from lacak.couriers.inbound import InboundEvent, Inbox, MalformedPayload
from lacak.http import body
from lacak.http.envelope import HTTPProblem, error_response, fail, ok
from lacak.http.routes import FastRoutes
from lacak.settings import CourierSettings
from lacak.timeutil import utcnow
from lacak.wiring import Services


class CallbackFormat(Protocol):
    def verify(self, settings: CourierSettings, headers: Mapping[str, str], raw_body: bytes) -> None: ...

    def parse(self, raw_body: bytes) -> list[InboundEvent]: ...


FORMATS: dict[str, CallbackFormat] = {
    gosend.PROVIDER: gosend,
    grab_express.PROVIDER: grab_express,
    borzo.PROVIDER: borzo,
}


class _Callback:
    """One provider's callback endpoint, as a raw ASGI app behind its Starlette route.

    The route still matches it and the app's middleware still wraps it; what it skips is
    Starlette's `Request` and its per-request wrappers, which cost a callback more than
    reading its body. Every failure is answered with the same envelopes as everywhere else.
    """

    def __init__(self, provider: str, fmt: CallbackFormat) -> None:
        self.provider = provider
        self.fmt = fmt
        self.__name__ = f"{provider}_callback"
        self.__doc__ = f"Status callback from {provider}."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            s: Services = scope["app"].state.services
            raw = await _read(scope, receive)
            self.fmt.verify(s.settings.couriers, Headers(scope=scope), raw)
            events = self.fmt.parse(raw)
            outcomes = await Inbox(s.store, s.metrics, utcnow).ingest(self.provider, raw, events)
        except MalformedPayload as exc:
            response = fail(exc.message, 400, status=400)
        except Exception as exc:  # the HTTP edge: every failure leaves as an envelope
            response = error_response(exc)
        else:
            response = ok({"received": len(outcomes), "outcomes": outcomes}, text="ok")
        await response(scope, receive, send)


async def _read(scope: Scope, receive: Receive, limit: int = body.MAX_BODY) -> bytes:
    """The request body, as `body.read` reads it from a `Request` (same limit, same errors)."""
    declared = Headers(scope=scope).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPProblem(413, "request body too large (limit 1 MiB)")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, "request body too large (limit 1 MiB)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _path(provider: str) -> str:
    return f"/couriers/{provider}/callback"


def routes() -> list[Route]:
    return [Route(_path(name), _Callback(name, fmt), methods=["POST"]) for name, fmt in FORMATS.items()]


def add_fast_routes(fast: FastRoutes) -> None:
    """POST callbacks skip Starlette's router too: a scan of every route on each callback cost
    more than its body's parsing and authentication together."""
    for name, fmt in FORMATS.items():
        fast.add_exact(_path(name), _Callback(name, fmt), method="POST")
