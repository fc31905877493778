"""The real lacak app plus one benchmark-only route: the ceiling "from the same server".

    uvicorn --factory bench.static_app:app        (or: python -m bench.static_app --port 8080)

`GET /bench/static` answers a constant body through the same server, event loop, HTTP parser,
router and `Observe` middleware as the tracking endpoint, with the same headers, but with no
authentication, no database read and no rendering. Its throughput is what the tracking lookup
could reach if those cost nothing. The route exists only here, never in lacak itself.

The body is the exact tracking response of a typical seeded order (`LACAK_BENCH_STATIC_BODY`,
a file written by `bench/run.py`, with that order's ETag in `LACAK_BENCH_STATIC_ETAG`), so
both responses have the same size on the wire. Without it, a synthetic order is used.
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

from bench import fake
from lacak import logs
from lacak.http import render
from lacak.http.app import create_app
from lacak.http.envelope import JSON, body
from lacak.orders.models import Order
from lacak.settings import Settings
from lacak.storage.rows import order_from_row

STATIC_PATH = "/bench/static"


def tracking_body(order: Order) -> bytes:
    """Byte for byte what the tracking endpoint sends for `order` (see lacak.http.mitra)."""
    return body(True, "success", 0, None, render.tracking(order))


def tracking_etag(order: Order) -> str:
    return f'"{order.pk}-{order.seq}"'


class _Row(tuple[Any, ...]):
    """A generated row readable both by position and by column name, like sqlite3.Row."""

    names = fake.LACAK_ORDER_COLS

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self.names.index(key) if isinstance(key, str) else key)

    def keys(self) -> tuple[str, ...]:
        return self.names


def _synthetic() -> tuple[bytes, str]:
    plan = fake.Plan(orders=1)
    optional = fake.OPTIONAL_ORDER_COLS
    row = next(fake.order_rows(plan, fake.merchants(plan), fake.trips(plan.seed), fake.wire_text, optional))
    named = dict(zip((*fake.ORDER_COLS, *optional), row, strict=True))
    order = order_from_row(_Row(named.get(c) for c in fake.LACAK_ORDER_COLS))
    return tracking_body(order), tracking_etag(order)


def _static_response() -> tuple[bytes, dict[str, str]]:
    path = os.environ.get("LACAK_BENCH_STATIC_BODY")
    if path:
        payload, etag = Path(path).read_bytes(), os.environ.get("LACAK_BENCH_STATIC_ETAG", '"1-1"')
    else:
        payload, etag = _synthetic()
    return payload, {"ETag": etag, "Cache-Control": "private, no-cache"}


def with_static_route(app: Starlette) -> Starlette:
    payload, headers = _static_response()

    async def static(request: Request) -> Response:
        return Response(payload, 200, headers, JSON)

    app.router.routes.insert(0, Route(STATIC_PATH, static, methods=["GET"]))
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
