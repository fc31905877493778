"""The public live-tracking link `/t/{token}` end to end: page, `/state` and the event stream.

Real `lacak serve` processes on loopback, on SQLite and on PostgreSQL. The module's server
(`live`) shares the session database but runs no task loop and books with the inert `fleet`
provider, so orders move only when a test moves them; it polls fast, beats its heart every
half second and has a rate limit no test reaches. Tests that need other live settings (expiry,
rate limit, stream cap, a moving simulator, a slow poll) start a server of their own.

Streams are read by a thread into a queue (`Sse`), so a stream that hangs fails the test at a
deadline instead of blocking it. Timings are measured on arrival in that thread.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import queue
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    ADMIN_TOKEN,
    Api,
    Backend,
    Server,
    admin_client,
    create_merchant,
    create_order,
    fresh_backend,
    lacak,
    package,
    pickup,
    wait_until,
)

POLL = 0.2  # LACAK_LIVE_POLL of the servers started here
HEARTBEAT = 0.5  # LACAK_LIVE_HEARTBEAT of the servers started here
FLEET = {f"LACAK_PROVIDER_{s}": "fleet" for s in ("GOSEND", "GRAB_EXPRESS", "BORZO")}
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,}")
AT_WIB = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00$")
AT_WITA = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")
PHONE = "081280045616"  # package()'s origin and destination phone
SNAPSHOT_KEYS = {
    "order_id",
    "service",
    "tracking_code",
    "seq",
    "state",
    "status_code",
    "terminal",
    "tone",
    "progress",
    "note",
    "zone",
    "timeline",
    "driver",
    "origin",
    "destination",
    "route",
    "position",
    "expires_at",
}
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
DRIVER = {"driver_name": "Budi Santoso", "driver_phone": "081234567616"}


# -- servers ----------------------------------------------------------------------------------


def live_env(db: Backend, **extra: str) -> dict[str, str]:
    env = {
        "LACAK_RUN_TASKS": "0",
        **FLEET,
        "LACAK_LIVE_POLL": str(POLL),
        "LACAK_LIVE_HEARTBEAT": str(HEARTBEAT),
        "LACAK_LIVE_RATE_PER_MINUTE": "1000000",
        "LACAK_LIVE_BURST": "100000",
    }
    env.update(extra)
    return db.env(**env)


@contextmanager
def running(env: dict[str, str], log: Path, *, kill: bool = False) -> Iterator[Server]:
    """A server for the block; `kill` ends it with SIGKILL (no graceful shutdown to wait for)."""
    srv = Server(env, log).start()
    try:
        yield srv
    finally:
        if kill:
            halt(srv)
        srv.stop()


def halt(srv: Server) -> None:
    if srv.proc is not None and srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def stopped_within(srv: Server, seconds: float) -> float | None:
    """SIGTERM; how long the process took to exit, or None if it was still running after
    `seconds` (then it is killed)."""
    assert srv.proc is not None
    t0 = time.monotonic()
    srv.proc.terminate()
    try:
        srv.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        halt(srv)
        return None
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def live(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(live_env(backend), tmp_path_factory.mktemp("live") / "server.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def shop(live: Server) -> Api:
    return create_merchant(live.base_url)


@pytest.fixture(scope="module")
def rival(live: Server) -> Api:
    return create_merchant(live.base_url)


# -- orders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    api: Api
    order_id: str
    url: str  # the live link as the merchant API gave it

    @property
    def token(self) -> str:
        return self.url.rsplit("/", 1)[1]

    def on(self, srv: Server) -> str:
        """The same link on another server of the same database."""
        return f"{srv.base_url}/t/{self.token}"


def new_order(api: Api, **pkg: Any) -> Order:
    created = create_order(api, packages=[package(**pkg)])
    return Order(api, created["order_id"], created["live_track_url"])


def move(srv: Server, order: Order, state: str, **extra: Any) -> int:
    """An operator move that must apply; the order's new seq."""
    with admin_client(srv.base_url) as admin:
        r = admin.post(
            f"/api/admin/orders/{order.order_id}/advance",
            json={"state": state, "merchant": str(order.api.merchant_id), **extra},
        )
    body = r.json()
    assert body["status"] is True and body["result"]["outcome"] == "applied", body
    seq: int = body["result"]["seq"]
    return seq


def state_of(url: str, **kw: Any) -> dict[str, Any]:
    r = httpx.get(url + "/state", timeout=10, **kw)
    assert r.status_code == 200, r.text
    snap: dict[str, Any] = r.json()
    return snap


# -- the event stream -------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One dispatched SSE block, or one comment line."""

    at: float  # time.monotonic() on arrival
    event: str | None = None
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comment: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class Sse:
    """An open `/events` request; a thread parses its lines into frames on a queue."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, *, read: float = 10.0, local: str | None = None
    ) -> None:
        transport = httpx.HTTPTransport(local_address=local) if local else None
        self.client = httpx.Client(timeout=httpx.Timeout(10.0, read=read), transport=transport)
        self._stream = self.client.stream("GET", url + "/events", headers=headers or {})
        self.response = self._stream.__enter__()
        self.frames: queue.Queue[Frame | None] = queue.Queue()
        self.error: BaseException | None = None
        if self.response.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.response.read()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            for line in self.response.iter_lines():
                now = time.monotonic()
                if line == "":
                    if fields or data:
                        retry = fields.get("retry")
                        self.frames.put(
                            Frame(
                                now,
                                event=fields.get("event"),
                                id=fields.get("id"),
                                data="\n".join(data),
                                retry=None if retry is None else int(retry),
                            )
                        )
                    fields, data = {}, []
                elif line.startswith(":"):
                    self.frames.put(Frame(now, comment=line[1:].strip()))
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        data.append(value)
                    else:
                        fields[name] = value
        except BaseException as exc:  # a closed or timed-out stream ends the reader, never the test
            self.error = exc
        finally:
            self.frames.put(None)

    def take(self, timeout: float) -> Frame | None:
        """The next frame; None once the stream has ended. Fails after `timeout` seconds."""
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no frame within {timeout:g} s") from None

    def until(self, what: str, match: Callable[[Frame], bool], timeout: float) -> tuple[Frame, list[Frame]]:
        """The first frame that matches, and the frames before it; fails at the deadline."""
        deadline = time.monotonic() + timeout
        skipped: list[Frame] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout:g} s; got {skipped}")
            try:
                frame = self.frames.get(timeout=left)
            except queue.Empty:
                raise AssertionError(f"no {what} within {timeout:g} s; got {skipped}") from None
            if frame is None:
                raise AssertionError(f"stream ended before {what} ({self.error!r}); got {skipped}")
            if match(frame):
                return frame, skipped
            skipped.append(frame)

    def state(self, timeout: float, seq: int | None = None) -> Frame:
        frame, _ = self.until(
            f"state event (seq {seq})",
            lambda f: f.event == "state" and (seq is None or f.id == str(seq)),
            timeout,
        )
        return frame

    def during(self, seconds: float) -> list[Frame]:
        """Every frame that arrives within `seconds` (fewer if the stream ends)."""
        deadline = time.monotonic() + seconds
        out: list[Frame] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.frames.get(timeout=left)
            except queue.Empty:
                break
            if frame is None:
                break
            out.append(frame)
        return out

    def ends_within(self, timeout: float) -> bool:
        """Whether the stream ends (EOF or a broken connection) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.frames.get(timeout=left) is None:
                    return True
            except queue.Empty:
                break
        return False

    def close(self) -> None:
        self.response.close()
        self.client.close()

    def __enter__(self) -> Sse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def opening(s: Sse, timeout: float = 5.0) -> tuple[Frame, Frame]:
    """The first two frames: `retry:` and the state event."""
    retry = s.take(timeout)
    state = s.take(timeout)
    assert retry is not None and state is not None, s.error
    return retry, state


# -- HTML -------------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each <script type=application/json>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.json: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script" and a.get("type") == "application/json":
            self._in = a.get("id") or ""
            self.json[self._in] = ""

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self.json[self._in] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in = None


def parse(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    t.close()
    return t


def has_id(html: str, element_id: str) -> bool:
    return any(a.get("id") == element_id for _, a in parse(html).tags)


def assert_live_headers(r: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        got = r.headers.get(name, "")
        # The event stream adds no-transform (no proxy may buffer or compress it).
        ok = got == value or (name.lower() == "cache-control" and got == "no-store, no-transform")
        assert ok, (name, dict(r.headers))
    csp = r.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"], csp
    assert directives["default-src"] == ["'none'"], csp
    assert directives["frame-ancestors"] == ["'none'"], csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
    assert "set-cookie" not in r.headers


def assert_html(r: httpx.Response, status: int, main_id: str, lang: str = "id") -> None:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html"), r.headers
    assert r.headers["content-language"] == lang
    assert_live_headers(r)
    assert has_id(r.text, main_id), r.text[:1000]
    html_tags = [a for tag, a in parse(r.text).tags if tag == "html"]
    assert html_tags and html_tags[0].get("lang") == lang


def assert_json(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    assert_live_headers(r)
    body: dict[str, Any] = r.json()
    return body


# -- 1. the link ------------------------------------------------------------------------------


def test_every_order_gets_its_own_unguessable_link(live: Server, shop: Api) -> None:
    r = shop.post("/api/mitra/v4/instant/pickup/request", pickup(packages=[package(), package()]))
    body = r.json()
    assert body["status"] is True, body
    packages = body["result"]["packages"]
    tokens = []
    for pkg in packages:
        url = pkg["live_track_url"]
        prefix = f"{live.base_url}/t/"
        assert url.startswith(prefix), url
        token = url.removeprefix(prefix)
        assert TOKEN.fullmatch(token), token
        assert pkg["order_id"] not in token and pkg["order_id"].split("-")[-1] not in token
        tracked = shop.track(pkg["order_id"])
        assert tracked.json()["result"]["live_tracking_url"] == url
        tokens.append(token)
    assert len(set(tokens)) == 2
    # The link stays the same through the order's life (a customer may have it already).
    order = Order(shop, packages[0]["order_id"], packages[0]["live_track_url"])
    move(live, order, "driver_assigned", **DRIVER)
    assert shop.track(order.order_id).json()["result"]["live_tracking_url"] == order.url
    assert state_of(order.url)["order_id"] == order.order_id


# -- 2. the page ------------------------------------------------------------------------------


def test_page_is_html_with_strict_headers_in_the_visitors_language(live: Server, shop: Api) -> None:
    order = new_order(shop)
    plain = httpx.get(order.url, timeout=10)
    assert_html(plain, 200, "live", lang="id")
    assert "Accept-Language" in plain.headers.get("vary", "")
    en = httpx.get(order.url, headers={"Accept-Language": "en-US,en;q=0.9"}, timeout=10)
    assert_html(en, 200, "live", lang="en")
    # The query parameter wins over the browser's preference, both ways.
    forced_en = httpx.get(order.url, params={"lang": "en"}, headers={"Accept-Language": "id"}, timeout=10)
    assert_html(forced_en, 200, "live", lang="en")
    forced_id = httpx.get(order.url, params={"lang": "id"}, headers={"Accept-Language": "en"}, timeout=10)
    assert_html(forced_id, 200, "live", lang="id")
    assert en.text != plain.text


def test_page_obeys_its_own_content_security_policy(live: Server, shop: Api) -> None:
    order = new_order(shop)
    r = httpx.get(order.url, timeout=10)
    assert r.status_code == 200
    tags = parse(r.text)
    assets = []
    for tag, attrs in tags.tags:
        assert tag != "style", "an inline <style> block is blocked by style-src 'self'"
        assert "style" not in attrs, f"inline style attribute on <{tag}>"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"inline handler {name} on <{tag}>"
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, name, value)
        if tag == "script":
            assert attrs.get("src") or attrs.get("type") == "application/json", attrs
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if value.startswith("/static/"):
                assets.append(value)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
    for asset in assets:  # nothing the page loads is missing
        got = httpx.get(live.base_url + asset, timeout=10)
        assert got.status_code == 200, (asset, got.status_code)


def test_page_shows_the_customer_nothing_private(live: Server, shop: Api) -> None:
    name = f"Okka {uuid.uuid4().hex[:8]}"
    order = new_order(
        shop,
        origin_phone="081211112222",
        destination_phone="081233334444",
        destination_name=name,
        origin_address="Jl. Rahasia Gudang 17",
        origin_address_note="Pintu belakang gudang",
        destination_address_note="Titip satpam",
    )
    move(live, order, "driver_assigned", **DRIVER)
    page = httpx.get(order.url, timeout=10).text
    state = httpx.get(order.url + "/state", timeout=10).text
    assert name in page
    assert "0812****616" in page and "0812****616" in state  # the driver's phone, masked
    for text in (page, state):
        for secret in (
            "081211112222",
            "81211112222",
            "081233334444",
            "81233334444",
            DRIVER["driver_phone"],
            "Rahasia Gudang",
            "Pintu belakang",
            "Titip satpam",
            shop.key,
            ADMIN_TOKEN,
        ):
            assert secret not in text, secret
    # The page carries the same snapshot `/state` gives (the script renders from it).
    data = parse(page).json.get("lacak-data")
    assert data is not None, "no <script type=application/json id=lacak-data>"
    assert json.loads(data) == json.loads(state)


def test_page_escapes_what_the_merchant_typed(live: Server, shop: Api) -> None:
    name = 'Okka </script><script>alert(1)</script> "x" & <img src=x onerror=alert(2)>'
    order = new_order(shop, destination_name=name)
    r = httpx.get(order.url, timeout=10)
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text and "<img src=x" not in r.text
    tags = parse(r.text)
    assert not any(tag == "img" and attrs.get("onerror") for tag, attrs in tags.tags)
    assert json.loads(tags.json["lacak-data"])["destination"]["name"] == name


def raw_get(srv: Server, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (httpx would resolve `..` before sending it)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_unknown_and_malformed_tokens_are_not_found(live: Server, shop: Api) -> None:
    known = new_order(shop)
    unknown = ["A" * 24, known.token[:-1] + ("A" if known.token[-1] != "A" else "B"), "a" * 64]
    malformed = ["x", "a" * 200, "a" * 65, "..", "%2e%2e", "%ff%fe%00", "a%20b", "%3Cscript%3E", "~"]
    for token in unknown + malformed:
        for suffix in ("", "/state", "/events"):
            status, headers, body = raw_get(live, f"/t/{token}{suffix}")
            assert status == 404, (token, suffix, status, body[:300])
            assert headers["cache-control"] == "no-store", (token, suffix)
            kind = "text/html" if suffix == "" else "application/json"
            assert headers["content-type"].startswith(kind), (token, suffix, headers)
            if suffix == "":
                assert has_id(body.decode(), "notfound"), (token, body[:300])
    assert_html(httpx.get(f"{live.base_url}/t/{'A' * 24}", timeout=10), 404, "notfound")
    # The English visitor gets the English "not found" page.
    en = httpx.get(f"{live.base_url}/t/{'A' * 24}", params={"lang": "en"}, timeout=10)
    assert_html(en, 404, "notfound", lang="en")
    # Paths that are no token at all are no server error either.
    for path in ("/t/..%2Fetc", "/t/../etc/passwd", "/t/", "/t", f"/t/{known.token}/", f"/t/{known.token}/x"):
        status, _, body = raw_get(live, path)
        assert status == 404, (path, status, body[:300])


# -- 3. the snapshot --------------------------------------------------------------------------


def test_state_snapshot_follows_the_order(live: Server, shop: Api) -> None:
    order = new_order(shop)
    r = httpx.get(order.url + "/state", timeout=10)
    snap = assert_json(r, 200)
    assert set(snap) == SNAPSHOT_KEYS
    assert snap["order_id"] == order.order_id and snap["service"] == "gosend"
    assert snap["state"] == "finding_driver" and snap["status_code"] == 105
    assert snap["terminal"] is False and snap["tone"] == "active" and snap["note"] is None
    assert snap["progress"] == {"value": 0, "max": 5}
    assert snap["zone"] == "WIB"
    assert [e["state"] for e in snap["timeline"]] == ["finding_driver", "created"]
    assert all(AT_WIB.match(e["at"]) for e in snap["timeline"]), snap["timeline"]
    assert snap["driver"] is None and snap["position"] is None and snap["expires_at"] is None
    assert snap["origin"] == {"name": "Arfian", "lat": -7.8032616, "long": 110.350244}
    assert snap["destination"] == {
        "name": "Okka",
        "address": "Minomartani, Sleman",
        "lat": -7.7349434,
        "long": 110.405355,
    }
    assert len(snap["route"]) >= 2 and all(len(p) == 2 for p in snap["route"])
    assert snap["route"][0] == pytest.approx([-7.8032616, 110.350244], abs=1e-4)
    assert snap["route"][-1] == pytest.approx([-7.7349434, 110.405355], abs=1e-4)

    seq = move(live, order, "driver_assigned", **DRIVER)
    snap = state_of(order.url)
    assert snap["seq"] == seq == 3 and snap["state"] == "driver_assigned"
    assert snap["driver"] == {"name": "Budi Santoso", "phone": "0812****616", "plate": None, "photo": None}
    assert snap["progress"] == {"value": 1, "max": 5}
    assert [e["state"] for e in snap["timeline"]] == ["driver_assigned", "finding_driver", "created"]
    # A driver change; an international number is masked the same way.
    move(live, order, "driver_assigned", driver_name="Sari", driver_phone="+62 812-3456-7890")
    assert state_of(order.url)["driver"]["phone"] == "0812****890"

    move(live, order, "picked_up")
    move(live, order, "in_transit")
    snap = state_of(order.url)
    assert (snap["status_code"], snap["progress"]["value"]) == (106, 4)
    move(live, order, "on_hold", reason="Alamat tidak jelas")
    snap = state_of(order.url)
    # Off the happy path: the furthest step reached, and the warning tone.
    assert (snap["state"], snap["tone"], snap["progress"]["value"]) == ("on_hold", "warning", 4)
    assert [e["state"] for e in snap["timeline"]][:3] == ["on_hold", "in_transit", "picked_up"]


def test_finished_order_shows_its_reason_and_expiry(live: Server, shop: Api) -> None:
    order = new_order(shop)
    before = datetime.now(UTC)
    move(live, order, "cancelled", reason="Pembeli membatalkan")
    snap = state_of(order.url)
    assert snap["state"] == "cancelled" and snap["terminal"] is True
    assert snap["tone"] == "failed" and snap["note"] == "Pembeli membatalkan"
    assert snap["position"] is None
    assert AT_WIB.match(snap["expires_at"]), snap["expires_at"]
    left = datetime.fromisoformat(snap["expires_at"]) - before
    assert timedelta(hours=23, minutes=59) < left < timedelta(hours=24, minutes=1)  # the default TTL
    assert httpx.get(order.url, timeout=10).status_code == 200  # still within its day


def test_zone_follows_the_pickup(live: Server, shop: Api) -> None:
    # The same trip moved east of 114.5°: Bali / Nusa Tenggara keep WITA (UTC+8).
    order = new_order(shop, origin_long=115.350244, destination_long=115.405355)
    snap = state_of(order.url)
    assert snap["zone"] == "WITA"
    assert all(AT_WITA.match(e["at"]) for e in snap["timeline"]), snap["timeline"]


# -- 4. the event stream ----------------------------------------------------------------------


def test_stream_opens_with_the_state_and_pushes_every_change(live: Server, shop: Api) -> None:
    order = new_order(shop)
    with Sse(order.url) as first, Sse(order.url) as second:
        r = first.response
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("x-accel-buffering") == "no"
        assert_live_headers(r)
        retry, state = opening(first)
        assert retry.retry == 3000 and retry.event is None
        assert state.event == "state"
        snap = state.json()
        assert state.id == str(snap["seq"]) == "2"
        assert snap == state_of(order.url)
        opening(second)

        t0 = time.monotonic()
        seq = move(live, order, "driver_assigned", **DRIVER)
        for s in (first, second):  # every open page of the order hears it
            frame = s.state(2.0, seq)
            assert frame.at - t0 < 2.0
            pushed = frame.json()
            assert pushed["seq"] == seq and pushed["state"] == "driver_assigned"
            assert pushed["driver"]["phone"] == "0812****616"
        seq = move(live, order, "at_pickup")
        assert first.state(2.0, seq).json()["progress"]["value"] == 2


def test_resumed_stream_skips_the_state_it_already_has(live: Server, shop: Api) -> None:
    order = new_order(shop)
    seq = move(live, order, "driver_assigned", **DRIVER)
    with Sse(order.url, {"Last-Event-ID": str(seq)}) as resumed:
        retry = resumed.take(5.0)
        assert retry is not None and retry.retry == 3000
        quiet = resumed.during(HEARTBEAT * 2.5)
        assert not [f for f in quiet if f.event == "state"], quiet
        assert [f for f in quiet if f.comment == "ping"], quiet  # alive, only quiet
        newer = move(live, order, "at_pickup")
        assert resumed.state(2.0, newer).json()["state"] == "at_pickup"
    for last in (str(seq - 1), "0", "garbage"):
        with Sse(order.url, {"Last-Event-ID": last}) as stale:
            _, state = opening(stale)
            assert state.event == "state" and state.id == str(seq + 1), (last, state)


def test_idle_stream_sends_heartbeats(live: Server, shop: Api) -> None:
    order = new_order(shop)
    with Sse(order.url, read=3.0) as s:
        opening(s)
        frames = s.during(HEARTBEAT * 4 + 0.3)
    pings = [f for f in frames if f.comment == "ping"]
    assert len(pings) >= 3, frames
    assert all(f.comment == "ping" for f in frames), frames
    gaps = [b.at - a.at for a, b in itertools.pairwise(pings)]
    assert all(HEARTBEAT * 0.6 < g < HEARTBEAT * 2.5 for g in gaps), gaps


@pytest.fixture(scope="module")
def sim(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose simulator drives orders and reports positions: a database of its own,
    so its task loop takes no other test's work."""
    where = tmp_path_factory.mktemp("live-sim")
    with fresh_backend(backend.name, where) as db:
        env = live_env(
            db,
            LACAK_RUN_TASKS="1",
            LACAK_SIM_FIND_DELAY="1",
            LACAK_SIM_SPEED="30",
            LACAK_SIM_POSITION_EVERY="5",
            # The driver starts 1 to 3 km away: at 10 km/h and speed 30 it reaches the pickup
            # 12 s or more later, so no state change falls inside a test's window of positions.
            LACAK_SIM_CITY_KMH="10",
        )
        for k in FLEET:  # the simulator books
            env.pop(k)
        with running(env, where / "server.log") as srv:
            yield srv


def positions(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.event == "position"]


def test_stream_pushes_driver_positions_at_most_every_two_seconds(sim: Server) -> None:
    order = new_order(create_merchant(sim.base_url))
    with Sse(order.url) as s:
        opening(s)
        deadline = time.monotonic() + 12
        frames: list[Frame] = []
        while len(positions(frames)) < 4 and time.monotonic() < deadline:
            frames += s.during(0.5)
    moved = positions(frames)
    assert len(moved) >= 4, frames
    for f in moved:
        p = f.json()
        assert set(p) == {"lat", "long", "at"}, p
        assert -8.0 < p["lat"] < -7.6 and 110.2 < p["long"] < 110.6, p
        assert AT_WIB.match(p["at"]), p
    gaps = [round(b.at - a.at, 2) for a, b in itertools.pairwise(moved)]
    assert all(g >= 1.9 for g in gaps), gaps
    assert len({(f.json()["lat"], f.json()["long"]) for f in moved}) > 1  # the driver moves
    assert state_of(order.url)["position"] is not None


def test_a_page_opened_mid_trip_gets_its_next_position_two_seconds_later(sim: Server) -> None:
    """The opening state event carries the position: the first position event waits 2 s."""
    order = new_order(create_merchant(sim.base_url))
    wait_until("the driver to move", lambda: state_of(order.url)["position"], 15)
    with contextlib.ExitStack() as stack:
        opened = []
        for _ in range(8):  # pages opened across the hub's 2 s rhythm
            s = stack.enter_context(Sse(order.url))
            _, state = opening(s)
            assert state.event == "state" and state.json()["position"] is not None
            opened.append((s, state))
            time.sleep(0.25)
        gaps = []
        for s, state in opened:
            first, _ = s.until("position", lambda f: f.event == "position", 6.0)
            gaps.append(round(first.at - state.at, 2))
    assert all(g >= 1.9 for g in gaps), gaps


def test_state_change_does_not_bypass_the_position_throttle(sim: Server) -> None:
    """Contract: `event: position` at most every 2 s, state changes included."""
    order = new_order(create_merchant(sim.base_url))
    with Sse(order.url) as s:
        opening(s)
        s.state(10.0, 3)  # the simulator found a driver
        last, _ = s.until("position", lambda f: f.event == "position", 5.0)
        seq = move(sim, order, "at_pickup")  # right after a position was pushed
        frames = s.during(max(0.0, last.at + 2.6 - time.monotonic()))
    assert [f for f in frames if f.event == "state" and f.id == str(seq)], frames
    early = [round(f.at - last.at, 2) for f in positions(frames) if f.at - last.at < 1.9]
    assert not early, f"position events {early} s after the previous one"


# -- 5. expiry --------------------------------------------------------------------------------


def test_link_expires_after_the_order_ends(backend: Backend, tmp_path: Path) -> None:
    # ~1.1 s after its terminal state a link is gone.
    with running(live_env(backend, LACAK_LIVE_TTL_HOURS="0.0003"), tmp_path / "server.log") as srv:
        api = create_merchant(srv.base_url)
        delivered = new_order(api)
        voided = new_order(api)
        with Sse(delivered.url) as s:
            opening(s)
            for state in ("driver_assigned", "picked_up", "in_transit"):
                move(srv, delivered, state, **(DRIVER if state == "driver_assigned" else {}))
            seq = move(srv, delivered, "delivered")
            done = s.state(3.0, seq).json()
            assert done["terminal"] is True and done["tone"] == "done"
            assert done["progress"] == {"value": 5, "max": 5} and done["position"] is None
            assert done["expires_at"] is not None
            gone, _ = s.until("gone event", lambda f: f.event == "gone", 5.0)
            assert json.loads(gone.data) == {}
            assert s.ends_within(3.0), "the stream goes on after `gone`"
        r = httpx.delete(
            f"{srv.base_url}/api/mitra/v4/instant/pickup/void/{voided.order_id}",
            headers={"Authorization": f"Bearer {api.key}"},
            timeout=10,
        )
        assert r.json()["status"] is True, r.text
        wait_until(
            "the voided order's link to expire",
            lambda: httpx.get(voided.url + "/state").status_code == 410,
            5,
        )
        for order in (delivered, voided):
            assert_html(httpx.get(order.url, timeout=10), 410, "gone")
            assert_html(httpx.get(order.url, params={"lang": "en"}, timeout=10), 410, "gone", lang="en")
            assert assert_json(httpx.get(order.url + "/state", timeout=10), 410) == {"error": "expired"}
            with Sse(order.url) as late:
                assert late.response.status_code == 410
                assert_live_headers(late.response)


# -- 6. rate limit ----------------------------------------------------------------------------


def test_each_client_is_rate_limited(backend: Backend, tmp_path: Path) -> None:
    env = live_env(backend, LACAK_LIVE_RATE_PER_MINUTE="60", LACAK_LIVE_BURST="5")
    with running(env, tmp_path / "server.log") as srv:
        order = new_order(create_merchant(srv.base_url))
        with httpx.Client(timeout=10) as me:
            answers = [me.get(order.url) for _ in range(6)]
            state = me.get(order.url + "/state")
            events = me.get(order.url + "/events")
            # Another address on the same machine has a bucket of its own.
            with httpx.Client(
                timeout=10, transport=httpx.HTTPTransport(local_address="127.0.0.2")
            ) as neighbour:
                assert neighbour.get(order.url + "/state").status_code == 200
            assert [r.status_code for r in answers[:5]] == [200] * 5
            limited = answers[5]
            assert_html(limited, 429, "toomany")
            wait = int(limited.headers["retry-after"])
            assert 1 <= wait <= 2
            assert assert_json(state, 429) == {"error": "too many requests"}
            assert int(state.headers["retry-after"]) >= 1
            assert events.status_code == 429 and int(events.headers["retry-after"]) >= 1
            time.sleep(wait)
            assert me.get(order.url + "/state").status_code == 200  # the bucket refills


# -- 7. open streams ---------------------------------------------------------------------------


def test_streams_are_capped_per_process(backend: Backend, tmp_path: Path) -> None:
    with running(live_env(backend, LACAK_LIVE_MAX_STREAMS="2"), tmp_path / "server.log") as srv:
        api = create_merchant(srv.base_url)
        a, b = new_order(api), new_order(api)
        with Sse(a.url) as one, Sse(b.url) as two:
            opening(one)
            opening(two)
            with Sse(a.url) as third:
                assert third.response.status_code == 503
                assert int(third.response.headers["retry-after"]) > 0
                assert third.response.json() == {"error": "too many open streams"}
                assert_live_headers(third.response)
            # The page and its polling fallback still work.
            assert httpx.get(a.url, timeout=10).status_code == 200
            assert state_of(a.url)["order_id"] == a.order_id
        # A closed stream frees its place.

        def reopened() -> bool:
            with Sse(a.url) as again:
                return again.response.status_code == 200

        wait_until("a stream slot to be freed", reopened, 5)


def test_streams_are_capped_per_client_and_tokens_stay_out_of_the_log(
    backend: Backend, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    env = live_env(backend, LACAK_LIVE_STREAMS_PER_CLIENT="2", LACAK_ACCESS_LOG="1", LACAK_LOG_LEVEL="INFO")
    with running(env, log) as srv:
        api = create_merchant(srv.base_url)
        a = new_order(api)
        with Sse(a.url) as one, Sse(a.url) as two:
            opening(one)
            opening(two)
            with Sse(a.url) as third:
                assert third.response.status_code == 429
                assert third.response.json() == {"error": "too many open streams"}
            with Sse(a.url, local="127.0.0.2") as elsewhere:  # another address has its own share
                assert elsewhere.response.status_code == 200
        assert httpx.get(a.url, timeout=10).status_code == 200
        token = a.url.rsplit("/", 1)[1]
        wait_until("the access log", lambda: '"/t/{token}/events"' in log.read_text(), 10)
    assert token not in log.read_text()


# -- 8. another process -----------------------------------------------------------------------


def test_change_by_another_process_reaches_open_streams(
    backend: Backend, live: Server, shop: Api, tmp_path: Path
) -> None:
    order = new_order(shop)
    if backend.name == "postgres":
        # Server A hears B's change through LISTEN/NOTIFY: its poll (30 s) cannot explain a
        # sub-second arrival.
        a_env = live_env(backend, LACAK_LIVE_POLL="30")
        with running(a_env, tmp_path / "a.log", kill=True) as a, Sse(order.on(a)) as s:
            opening(s)
            # The first change also proves A's listener is up (it connects after start-up).
            s.state(5.0, move(live, order, "driver_assigned", **DRIVER))
            for state in ("at_pickup", "picked_up"):
                t0 = time.monotonic()
                seq = move(live, order, state)
                frame = s.state(3.0, seq)
                assert frame.json()["state"] == state
                assert frame.at - t0 < 1.0, f"{state} took {frame.at - t0:.2f} s"
        return
    # SQLite: one serving process; the CLI's change is found by the next look.
    with Sse(order.url) as s:
        opening(s)
        done = lacak(
            backend.env(),
            "order",
            "advance",
            order.order_id,
            "driver_assigned",
            "--merchant",
            str(shop.merchant_id),
            "--driver-name",
            "Budi Santoso",
            "--driver-phone",
            "081234567616",
        )
        t0 = time.monotonic()
        assert "applied" in done.stdout, done.stdout + done.stderr
        frame = s.state(POLL + 1.0, 3)
        assert frame.json()["state"] == "driver_assigned"
        assert frame.json()["driver"]["name"] == "Budi Santoso"
        assert frame.at - t0 < POLL + 1.0


# -- 9. isolation -----------------------------------------------------------------------------


def test_a_link_shows_its_own_order_and_needs_no_key(live: Server, shop: Api, rival: Api) -> None:
    mine = new_order(shop, destination_name=f"Mine {uuid.uuid4().hex[:6]}")
    theirs = new_order(rival, destination_name=f"Theirs {uuid.uuid4().hex[:6]}")
    move(live, theirs, "driver_assigned", driver_name="Rival Driver", driver_phone="081299998888")
    bare = state_of(mine.url)
    assert bare["order_id"] == mine.order_id
    page = httpx.get(mine.url, timeout=10).text
    for text in (page, json.dumps(bare)):
        assert theirs.order_id not in text and "Theirs" not in text and "Rival Driver" not in text
    # Keys change nothing: not the merchant's, not another merchant's, not the admin's.
    for key in (shop.key, rival.key, ADMIN_TOKEN):
        auth = {"Authorization": f"Bearer {key}"}
        assert state_of(mine.url, headers=auth) == bare
        assert httpx.get(mine.url, headers=auth, timeout=10).text == page
    # And the token is no key for the merchant API.
    r = httpx.get(
        f"{live.base_url}/api/mitra/v4/instant/tracking/{mine.order_id}",
        headers={"Authorization": f"Bearer {mine.token}"},
        timeout=10,
    )
    assert r.status_code == 401
    # Each order's stream carries only its own changes.
    with Sse(mine.url) as s:
        opening(s)
        move(live, theirs, "at_pickup")
        seq = move(live, mine, "driver_assigned", **DRIVER)
        frame = s.state(3.0)
        assert frame.id == str(seq) and frame.json()["order_id"] == mine.order_id


# -- shutdown ---------------------------------------------------------------------------------
# Process lifecycle, the same on either database: run once, on a SQLite database of its own.


def test_server_stops_promptly_whatever_the_poll_interval(tmp_path: Path) -> None:
    with fresh_backend("sqlite", tmp_path) as db:
        srv = Server(live_env(db, LACAK_LIVE_POLL="30"), tmp_path / "server.log").start()
        try:
            took = stopped_within(srv, 5.0)
        finally:
            halt(srv)
    assert took is not None, "SIGTERM did not stop `lacak serve` within 5 s (LACAK_LIVE_POLL=30)"


def test_server_stops_with_live_pages_open(tmp_path: Path) -> None:
    """A customer's open page must not hold a deploy: SIGTERM ends its stream (the browser
    reconnects elsewhere after `retry`) and the process exits."""
    with fresh_backend("sqlite", tmp_path) as db:
        srv = Server(live_env(db), tmp_path / "server.log").start()
        try:
            order = new_order(create_merchant(srv.base_url))
            with Sse(order.url, read=30.0) as s:
                opening(s)
                took = stopped_within(srv, 8.0)
                assert took is not None, "SIGTERM did not stop `lacak serve` within 8 s with a stream open"
                assert s.ends_within(3.0), "the stream outlived its server"
        finally:
            halt(srv)
