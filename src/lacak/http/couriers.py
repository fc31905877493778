"""Routes: inbound courier callbacks (couriers.md), `POST /couriers/{provider}/callback`.

Authenticity is checked before anything else and a refused call stores nothing; an
authenticated event is answered 200 once it is durably stored, even for an unknown order or
status, so the courier stops retrying (it is recorded and counted for the operator instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lacak.couriers.borzo import inbound as borzo
from lacak.couriers.gosend import inbound as gosend
from lacak.couriers.grab_express import inbound as grab_express
from lacak.couriers.inbound import InboundEvent, Inbox, MalformedPayload
from lacak.http import body
from lacak.http.envelope import error_response, fail, ok
from lacak.http.routes import Endpoint, services_of
from lacak.settings import CourierSettings
from lacak.timeutil import utcnow


class CallbackFormat(Protocol):
    def verify(self, settings: CourierSettings, headers: Mapping[str, str], raw_body: bytes) -> None: ...

    def parse(self, raw_body: bytes) -> list[InboundEvent]: ...


FORMATS: dict[str, CallbackFormat] = {
    gosend.PROVIDER: gosend,
    grab_express.PROVIDER: grab_express,
    borzo.PROVIDER: borzo,
}


def _endpoint(provider: str, fmt: CallbackFormat) -> Endpoint:
    async def callback(request: Request) -> Response:
        s = services_of(request)
        try:
            raw = await body.read(request)
            fmt.verify(s.settings.couriers, request.headers, raw)
            events = fmt.parse(raw)
            outcomes = await Inbox(s.store, s.metrics, utcnow).ingest(provider, raw, events)
        except MalformedPayload as exc:
            return fail(exc.message, 400, status=400)
        except Exception as exc:  # the HTTP edge: every failure leaves as an envelope
            return error_response(exc)
        return ok({"received": len(outcomes), "outcomes": outcomes}, text="ok")

    callback.__name__ = f"{provider}_callback"
    callback.__doc__ = f"Status callback from {provider}."
    return callback


def routes() -> list[Route]:
    return [
        Route(f"/couriers/{name}/callback", _endpoint(name, fmt), methods=["POST"])
        for name, fmt in FORMATS.items()
    ]
