"""Small helpers shared by the route modules."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lacak.http.accesslog import AccessLog
from lacak.http.envelope import error_response
from lacak.http.middleware import Observe
from lacak.merchants.models import Merchant
from lacak.metrics import Metrics
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


# -- the fast path ---------------------------------------------------------------------------------

RawHandler = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    route: Route  # the Starlette route it stands in for: same metrics label, same fallback
    handler: RawHandler


class FastRoutes:
    """Raw-ASGI dispatch of a few hot routes, ahead of Starlette's stack.

    Starlette's router, its exception middlewares, a `Request` and a `Response` object cost
    more than a tracking lookup's own work. A route registered here is answered by a handler
    that reads the ASGI scope and sends its messages itself, still inside the `Observe`
    middleware (request id, metrics by route, access log). Exact paths are registered per
    method (GET tracking's static twin in the benchmark, POST courier callbacks), prefixes for
    GET only. Everything else, including HEAD and other methods on these paths, goes through
    the Starlette stack exactly as before; so does a path that the Starlette route would not
    match the same way (see `_match`). A handler must answer every failure itself: nothing
    behind it turns an exception into an envelope.

    Installed as the app's `middleware_stack` (`install_fast_routes`); the regular stack is
    built on the first request that falls through, so routes added after `create_app` (the
    benchmark's static route) are still seen by the router.
    """

    def __init__(self, app: Starlette, metrics: Metrics, access_log: AccessLog | None) -> None:
        self.app = app
        self._stack: ASGIApp | None = None
        self._exact: dict[tuple[str, str], FastRoute] = {}
        self._prefixes: list[tuple[str, str, FastRoute]] = []
        self._observed = Observe(self._dispatch, metrics, access_log)

    def add_exact(self, path: str, handler: RawHandler, *, method: str = "GET") -> None:
        self._exact[(method, path)] = FastRoute(self._route(path, method), handler)

    def add_prefix(self, route_path: str, prefix: str, handler: RawHandler, *, not_ending: str = "") -> None:
        """`route_path` ends in one `{name:path}` parameter, which is everything after `prefix`.

        Paths ending in `not_ending` are left to Starlette (a more specific route there)."""
        assert route_path.startswith(prefix) and route_path.endswith(":path}"), route_path
        self._prefixes.append((prefix, not_ending, FastRoute(self._route(route_path), handler)))

    def _route(self, path: str, method: str = "GET") -> Route:
        for route in self.app.router.routes:
            if isinstance(route, Route) and route.path == path and method in (route.methods or ()):
                return route
        raise LookupError(f"no {method} route {path} to stand in for")

    def _match(self, scope: Scope) -> FastRoute | None:
        if scope["type"] != "http" or scope.get("root_path"):
            return None
        method: str = scope["method"]
        path: str = scope["path"]
        hit = self._exact.get((method, path))
        if hit is not None or method != "GET":
            return hit
        for prefix, not_ending, fast in self._prefixes:
            # `{x:path}` is `.*`, which stops at a newline: leave such paths to Starlette's regex.
            if not path.startswith(prefix) or "\n" in path:
                continue
            if not (not_ending and path.endswith(not_ending)):
                return fast
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self._match(scope)
        if fast is None:
            if self._stack is None:
                self._stack = self.app.build_middleware_stack()
            if scope["type"] == "lifespan":
                send = _freeze_after_startup(send)
            await self._stack(scope, receive, send)
            return
        scope["route"] = fast.route  # what Observe labels the metrics with, as Starlette sets it
        scope["lacak.fast"] = fast.handler
        await self._observed(scope, receive, send)

    @staticmethod
    async def _dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        handler: RawHandler = scope["lacak.fast"]
        await handler(scope, receive, send)


def _freeze_after_startup(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            freeze_heap()
        await send(message)

    return sending


def freeze_heap() -> None:
    """Move everything alive after startup out of the garbage collector's sight.

    Imports and services leave ~100k long-lived objects, and every full collection walked
    them all: pauses of tens of milliseconds, the server's worst tail latency. Frozen objects
    are never collected (they live as long as the process anyway); new ones are as before.
    """
    gc.collect()
    gc.freeze()


def fast_routes(app: Starlette) -> FastRoutes:
    """The app's fast-path dispatcher (see `install_fast_routes`)."""
    stack = app.middleware_stack
    assert isinstance(stack, FastRoutes), "create_app installs the fast routes"
    return stack


def install_fast_routes(app: Starlette, metrics: Metrics, access_log: AccessLog | None) -> FastRoutes:
    # Starlette builds `middleware_stack` lazily only while it is None; setting it puts the
    # dispatcher in front, right after Starlette.__call__ (which still sets scope["app"]).
    fast = FastRoutes(app, metrics, access_log)
    app.middleware_stack = fast
    return fast


async def send_raw(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """What a Starlette `Response(body, status, …)` sends, without building one."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header_values(scope: Scope, *names: bytes) -> list[str | None]:
    """The first value of each header, decoded as Starlette's `Headers.get` does (latin-1)."""
    found: list[str | None] = [None] * len(names)
    for name, value in scope["headers"]:
        if name in names:
            i = names.index(name)
            if found[i] is None:
                found[i] = value.decode("latin-1")
    return found
