"""`create_app(settings)`: the ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from lacak.http import admin, avatars, couriers, driver, live, mitra, ops, webhooks
from lacak.http.accesslog import AccessLog
from lacak.http.envelope import error_response, fail
from lacak.http.middleware import Observe
from lacak.metrics import Metrics
from lacak.settings import Settings
from lacak.wiring import services


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return fail("route not found", 404, status=404)
    if exc.status_code == 405:
        return fail("method not allowed", 405, status=405, headers=dict(exc.headers or {}))
    return fail(str(exc.detail), exc.status_code, status=exc.status_code)


async def _unhandled(request: Request, exc: Exception) -> Response:
    return error_response(exc)


def create_app(settings: Settings) -> Starlette:
    metrics = Metrics()
    access_log = AccessLog() if settings.access_log else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with services(settings, metrics) as s:
            app.state.services = s
            if settings.run_tasks:
                s.couriers.start()
            if settings.webhooks.run:
                s.hooks.start()
            s.live.start()
            try:
                yield
            finally:
                if access_log is not None:
                    access_log.flush()

    app = Starlette(
        routes=[
            *mitra.routes(),
            *admin.routes(),
            *webhooks.routes(),
            *driver.routes(),
            *couriers.routes(),
            *avatars.routes(),
            *live.routes(settings.live),
            *ops.routes(),
        ],
        lifespan=lifespan,
        middleware=[Middleware(Observe, metrics=metrics, access_log=access_log)],
        exception_handlers={HTTPException: _http_exception, Exception: _unhandled},
    )
    # A trailing slash would otherwise get a bare 307; the contract wants an envelope.
    app.router.redirect_slashes = False
    # Raw-ASGI GET tracking and POST courier callbacks, see routes.FastRoutes.
    fast = mitra.install_fast_path(app, metrics, access_log)
    couriers.add_fast_routes(fast)
    return app
