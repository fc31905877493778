"""One pure-ASGI middleware: request id, metrics by route, access log.

Pure ASGI rather than BaseHTTPMiddleware: it sits on the tracking hot path.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lacak.http.accesslog import AccessLog
from lacak.logs import request_id
from lacak.metrics import Metrics

_VALID_ID = re.compile(rb"[A-Za-z0-9._\-]{1,64}")


SECRET_PATHS = ("/t/",)  # routes whose path holds a token (the live page's)


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: AccessLog | None) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _instruments(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
            self._children[key] = pair
        return pair

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = incoming.decode() if incoming and _VALID_ID.fullmatch(incoming) else os.urandom(8).hex()
        token = request_id.set(rid)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            counter, histogram = self._instruments(scope["method"], label, status)
            counter.inc()
            histogram.observe(elapsed)
            if self.access_log is not None:
                self.access_log.write(
                    {
                        "request_id": rid,
                        "method": scope["method"],
                        # A live page's path is its capability: logs get the route instead.
                        "path": label if label.startswith(SECRET_PATHS) else scope["path"],
                        "route": label,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    }
                )
            request_id.reset(token)
