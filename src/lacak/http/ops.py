"""Operations endpoints: health, readiness, metrics, the OpenAPI document and its page."""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from lacak.errors import StorageError
from lacak.http.openapi import document
from lacak.http.routes import services_of


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await services_of(request).db.ping()
    except StorageError:
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    return JSONResponse({"status": "ok", "database": "reachable"})


async def metrics(request: Request) -> Response:
    body = services_of(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(request: Request) -> Response:
    return JSONResponse(document())


async def docs(request: Request) -> Response:
    """A self-contained page (no CDN): every operation with its request and response shapes."""
    doc = document()
    parts = [
        f"<h1>{html.escape(doc['info']['title'])} {html.escape(doc['info']['version'])}</h1>",
        f"<p>{html.escape(doc['info']['description'])}</p>",
        '<p><a href="/openapi.json">openapi.json</a></p>',
    ]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            parts.append(
                f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                f"<p>{html.escape(op.get('summary', ''))}</p>"
                f"<p>{html.escape(op.get('description', ''))}</p>"
                f"<details><summary>details</summary><pre>{html.escape(json.dumps(op, indent=2))}</pre>"
                "</details></section>"
            )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>lacak API</title><style>body{font-family:system-ui,sans-serif;max-width:60rem;"
        "margin:2rem auto;padding:0 1rem;color:#111}pre{background:#f4f4f4;padding:1rem;"
        "overflow:auto}section{border-top:1px solid #ddd}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )
    return HTMLResponse(page)


def routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
