"""Routes: the public live-tracking page `/t/{token}`, its event stream, its polling fallback.

No key: the unguessable token is the permission. Every answer is `no-store` and
`no-referrer` (the token must not leak to a cache or to another site), under a CSP that lets
the page run only its own script and talk only to its own origin. Each client address is
rate-limited; pages are HTML in the visitor's language, the stream and `/state` are data.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing
from importlib.resources import files
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import msgspec
from prometheus_client import Gauge
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lacak.errors import StorageError
from lacak.http.ratelimit import RateLimit, client_key
from lacak.http.routes import services_of
from lacak.live import i18n, pages
from lacak.live.hub import GONE_FRAME, POSITION_EVERY, POSITION_SPREAD, Entry, Watch
from lacak.live.links import expired, valid_token
from lacak.live.store import Found
from lacak.live.wiring import LiveRuntime
from lacak.settings import LiveSettings

_encode = msgspec.json.Encoder().encode
RETRY_MS = 3000  # how long a browser waits before reconnecting a dropped stream


def csp(settings: LiveSettings) -> str:
    img = "'self' data: https:"
    if settings.tiles_url:
        parts = urlsplit(settings.tiles_url)
        img += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _headers(settings: LiveSettings, **extra: str) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": csp(settings),
        "X-Content-Type-Options": "nosniff",
        **extra,
    }


class Live:
    """The handlers, bound to the runtime and the limiter once (no per-request lookups)."""

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        self.limit = RateLimit(settings.rate_per_minute, settings.burst)
        self.open: Counter[str] = Counter()  # open streams per client address

    @staticmethod
    def runtime(request: Request) -> LiveRuntime:
        return services_of(request).live

    def _lang(self, request: Request) -> str:
        return i18n.pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))

    def _html(self, body: str, status: int, lang: str, **extra: str) -> Response:
        headers = _headers(self.settings, **extra)
        headers["Content-Language"] = lang
        headers["Vary"] = "Accept-Language"
        return HTMLResponse(body, status, headers)

    def _data(self, status: int, payload: Any, **extra: str) -> Response:
        headers = _headers(self.settings, **extra)
        return Response(_encode(payload), status, headers, media_type="application/json")

    def _throttled(self, request: Request) -> float:
        client = request.client
        return self.limit.take(client_key(client.host) if client else "-")

    async def _order(self, request: Request) -> tuple[Found | None, bool]:
        """The link's order (None: no such link) and whether the link has expired."""
        token = request.path_params["token"]
        if not valid_token(token):
            return None, False
        rt = self.runtime(request)
        found = await rt.store.by_token(token)
        if found is None:
            return None, False
        return found, expired(found.order, rt.hub.clock(), rt.settings.ttl_hours)

    async def _snapshot(self, request: Request) -> tuple[dict[str, Any] | None, bool]:
        """The page's data (None: no such link, or expired) and whether the link has expired."""
        found, gone = await self._order(request)
        if found is None or gone:
            return None, gone
        return await self.runtime(request).hub.snapshot(found.order.pk, found), False

    async def page(self, request: Request) -> Response:
        lang = self._lang(request)
        wait = self._throttled(request)
        if wait:
            return self._html(pages.too_many(lang=lang), 429, lang, **{"Retry-After": str(int(wait) + 1)})
        try:
            snapshot, gone = await self._snapshot(request)
        except StorageError:
            unavailable = _headers(self.settings, **{"Retry-After": "5"})
            return Response("service unavailable, try again", 503, unavailable)
        if gone:
            return self._html(pages.gone(lang=lang), 410, lang)
        if snapshot is None:
            return self._html(pages.not_found(lang=lang), 404, lang)
        body = pages.page(
            snapshot,
            lang=lang,
            token=request.path_params["token"],
            tiles_url=self.settings.tiles_url,
            tiles_attribution=self.settings.tiles_attribution,
        )
        return self._html(body, 200, lang)

    async def state(self, request: Request) -> Response:
        wait = self._throttled(request)
        if wait:
            return self._data(429, {"error": "too many requests"}, **{"Retry-After": str(int(wait) + 1)})
        try:
            snapshot, gone = await self._snapshot(request)
        except StorageError:
            return self._data(503, {"error": "unavailable"}, **{"Retry-After": "5"})
        if gone:
            return self._data(410, {"error": "expired"})
        if snapshot is None:
            return self._data(404, {"error": "not found"})
        return self._data(200, snapshot)

    async def events(self, request: Request) -> Response:
        # Error answers are not streams: EventSource gives up on them instead of retrying.
        wait = self._throttled(request)
        if wait:
            return self._data(429, {"error": "too many requests"}, **{"Retry-After": str(int(wait) + 1)})
        rt = self.runtime(request)
        client = client_key(request.client.host) if request.client else "-"
        if self.open[client] >= self.settings.streams_per_client:
            # One address holding open streams by the hundred is not one family's phones.
            return self._data(429, {"error": "too many open streams"}, **{"Retry-After": "30"})
        if rt.hub.streams >= self.settings.max_streams:
            # The page falls back to polling `/state`, which costs this process no open stream.
            return self._data(503, {"error": "too many open streams"}, **{"Retry-After": "30"})
        try:
            found, gone = await self._order(request)
            subscribed = None if found is None or gone else await rt.hub.subscribe(found.order.pk, found)
        except StorageError:
            return self._data(503, {"error": "unavailable"}, **{"Retry-After": "5"})
        if gone:
            return self._data(410, {"error": "expired"})
        if subscribed is None:
            return self._data(404, {"error": "not found"})
        watch, entry = subscribed
        return EventStream(
            self.settings,
            rt,
            watch,
            entry,
            request.headers.get("last-event-id"),
            services_of(request).metrics.live_streams,
            (self.open, client),
        )


class EventStream(Response):
    """One page's stream, written straight to the ASGI `send`.

    One coroutine per open page (plus one waiting for the disconnect), not a streaming
    response's task group: a thousand open pages are a thousand of these, and every object
    they keep is walked by each full garbage collection.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        settings: LiveSettings,
        rt: LiveRuntime,
        watch: Watch,
        entry: Entry,
        last: str | None,
        gauge: Gauge,
        client: tuple[Counter[str], str],
    ) -> None:
        # No body and so no Content-Length (as Starlette's StreamingResponse does it).
        self.status_code = 200
        self.background = None
        headers = _headers(settings, **{"X-Accel-Buffering": "no"})
        headers["Cache-Control"] = "no-store, no-transform"  # no proxy may buffer or compress it
        self.init_headers(headers)
        self.quiet = settings.heartbeat
        self.rt, self.watch, self.entry, self.last, self.gauge = rt, watch, entry, last, gauge
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = self.watch
        listener = asyncio.ensure_future(_until_disconnect(receive, watch))
        self.gauge.inc()
        counts, client = self.client
        counts[client] += 1
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with aclosing(self._frames()) as frames:
                async for chunk in frames:
                    if watch.closed:
                        return
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            listener.cancel()
            self.rt.hub.unsubscribe(watch)
            self.gauge.dec()
            counts[client] -= 1
            if not counts[client]:
                del counts[client]

    async def _frames(self) -> AsyncGenerator[bytes]:
        watch, entry = self.watch, self.entry
        clock = asyncio.get_running_loop().time
        phase = random.random() * POSITION_SPREAD
        # A resumed stream that already has this state gets only what is newer. A state event
        # carries the position too, so a separate one goes only without it.
        yield b"retry: %d\n\n" % RETRY_MS + (entry.state if self.last != str(entry.seq) else entry.position)
        shown = clock()  # when this page last got a position (a state event carries one)
        while not watch.closed:
            if not await watch.wait(self.quiet):
                yield b": ping\n\n"
                continue
            if watch.position and not (watch.state or watch.gone):
                # Positions of every watched order reach every page in one turn of the loop;
                # each stream waits its own fixed offset, so a thousand writes are spread over
                # a second instead of stalling lookups behind them; and never sooner than 2 s
                # after this page's last position (one that came with a state event included).
                await asyncio.sleep(max(phase, shown + POSITION_EVERY - clock()))
            current = self.rt.hub.entry(watch.pk) or entry
            out = current.state if watch.state else current.position if watch.position else b""
            watch.state = watch.position = False
            if watch.gone:  # the final state first, if it came in the same wake-up
                yield out + GONE_FRAME
                return
            if out:
                shown = clock()
                yield out


async def _until_disconnect(receive: Receive, watch: Watch) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    watch.close()


# The page's own files: a fixed list of types, nothing outside the package's static folder.
_STATIC = files("lacak.live") / "static"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


async def static(request: Request) -> Response:
    path = request.path_params["path"]
    parts = path.split("/")
    kind = _TYPES.get(PurePosixPath(path).suffix)
    if kind is None or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return Response("not found", 404, media_type="text/plain")
    resource = _STATIC.joinpath(*parts)
    if not resource.is_file():
        return Response("not found", 404, media_type="text/plain")
    # Filenames do not change with versions, so caches revalidate after an hour.
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(resource.read_bytes(), 200, headers, media_type=kind)


def routes(settings: LiveSettings) -> list[Route]:
    live = Live(settings)
    return [
        Route("/t/{token}", live.page, methods=["GET"]),
        Route("/t/{token}/state", live.state, methods=["GET"]),
        Route("/t/{token}/events", live.events, methods=["GET"]),
        Route("/static/live/{path:path}", static, methods=["GET"]),
    ]
