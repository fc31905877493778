"""The real lacak app plus one benchmark-only route: the ceiling "from the same server".

    uvicorn --factory bench.static_app:app        (or: python -m bench.static_app --port 8080)

`GET /bench/static` answers a constant body through the same server, event loop, HTTP parser,
dispatch and `Observe` middleware as the tracking endpoint, with the same headers, but with no
authentication, no database read and no rendering. GET tracking is answered by lacak's raw-ASGI
fast path (`lacak.http.routes.FastRoutes`, in front of Starlette's router), so the static route
is registered on that same fast path, with a handler that sends the prebuilt messages itself.
Its throughput is what the tracking lookup could reach if those cost nothing. The route exists
only here, never in lacak itself.

The body is the exact tracking response of a typical seeded order (`LACAK_BENCH_STATIC_BODY`,
a file written by `bench/run.py`, with that order's ETag in `LACAK_BENCH_STATIC_ETAG`), as
lacak itself produced it, so both responses have the same size on the wire. Without them, a
placeholder body of about the same size is used.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lacak import logs
from lacak.http.app import create_app
from lacak.http.envelope import JSON, body
from lacak.http.routes import fast_routes, send_raw
from lacak.settings import Settings

STATIC_PATH = "/bench/static"


# Without a body from bench/run.py: a placeholder envelope of a typical tracking size (~1 KB).
_PLACEHOLDER = body(True, "success", 0, None, {"padding": "x" * 940})


def _static_response() -> tuple[bytes, dict[str, str]]:
    path = os.environ.get("LACAK_BENCH_STATIC_BODY")
    payload = Path(path).read_bytes() if path else _PLACEHOLDER
    etag = os.environ.get("LACAK_BENCH_STATIC_ETAG", '"123456-7-1750000000000"')
    return payload, {"ETag": etag, "Cache-Control": "private, no-cache"}


def with_static_route(app: Starlette) -> Starlette:
    """Add `/bench/static`, served the way GET tracking is (see the module docstring)."""
    payload, headers = _static_response()

    async def static(request: Request) -> Response:
        return Response(payload, 200, headers, JSON)

    # The Starlette route: what HEAD would use, and the route the fast path labels metrics with.
    app.router.routes.insert(0, Route(STATIC_PATH, static, methods=["GET"]))
    raw_headers = Response(payload, 200, headers, JSON).raw_headers  # Starlette's very header list

    async def static_asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await send_raw(send, 200, list(raw_headers), payload)

    # GET goes through the same raw-ASGI fast path as GET tracking: Starlette.__call__, the
    # FastRoutes dispatcher, the Observe middleware, then a handler that sends its own messages.
    fast_routes(app).add_exact(STATIC_PATH, static_asgi)
    return app


def app() -> Starlette:
    """The factory, as `lacak.http.asgi:app` plus the static route."""
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    return with_static_route(create_app(settings))


def main() -> None:
    """Run it exactly as `lacak serve` runs lacak (same uvicorn options), one worker."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    options: dict[str, Any] = {
        "factory": True, "host": args.host, "port": args.port, "workers": 1, "loop": "uvloop",
        "http": "httptools", "log_config": None, "access_log": False, "server_header": False,
        "proxy_headers": False,
    }  # fmt: skip
    uvicorn.run("bench.static_app:app", **options)


if __name__ == "__main__":
    main()
