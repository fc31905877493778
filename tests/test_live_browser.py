"""The public live-tracking page `/t/{token}` in a real browser (headless Chromium).

One browser for the module; servers of their own per scenario, each on its SQLite database,
all started side by side when the module begins:

- `sim`: the simulator drives orders fast (a whole trip in about fifteen seconds);
- `quiet`: `gosend` orders go to the operator's fleet, so they move only when a test (as the
  admin, the merchant or a fleet driver) moves them; links expire ~3 s after the order ends;
- `restart`: stopped and started again on the same port and database;
- `burst`: a rate limit of one request, for the 429 page;
- `tiles`: map tiles from a small tile server on loopback (Leaflet mode).

Every tab records console errors, uncaught exceptions, failed requests and error statuses;
the last test asserts that none happened anywhere. Screenshots of each stage go to
$LACAK_TEST_ARTIFACTS or test-artifacts/live/.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from lacak.live.i18n import messages
from tests.browser import Chrome, FleetDriver, Servers, Tab, TileServer, launch, nu_check, shot
from tests.support import Api, Server, advance, create_merchant, create_order, wait_until

ID, EN = messages("id"), messages("en")
FLEET = {"LACAK_PROVIDER_GOSEND": "fleet"}
OPEN = {  # no test here is about the rate limit but the 429 page's
    "LACAK_LIVE_RATE_PER_MINUTE": "100000",
    "LACAK_LIVE_BURST": "10000",
    "LACAK_LIVE_POLL": "0.3",
}
TTL_HOURS = 0.0008  # ~2.9 s: long enough to see a finished order, short enough to wait for
SIM_SPEED = 450
SIM = {
    "LACAK_SIM_SPEED": str(SIM_SPEED),
    # 2.5 real seconds (x0.5..1.5): time to open the page before a driver is found.
    "LACAK_SIM_FIND_DELAY": str(2.5 * SIM_SPEED),
    "LACAK_SIM_POSITION_EVERY": "5",
    "LACAK_SIM_SEED": "19",  # the first order waits ~1.2 x the find delay for its driver
    **OPEN,
    "LACAK_LIVE_POLL": "0.5",
}
HAPPY_PATH = [
    "created",
    "finding_driver",
    "driver_assigned",
    "at_pickup",
    "picked_up",
    "in_transit",
    "delivered",
]
DRIVER = {"driver_name": "Budi Santoso", "driver_phone": "081234567616"}
# Two points along the default package's route (Wirobrajan -> Minomartani, Yogyakarta).
ON_THE_WAY = [(-7.78618, 110.36373), (-7.7638, 110.37886)]

# Records every value main#live[data-state] takes, so a test sees states that came and went.
RECORD_STATES = """() => {
  const live = document.getElementById("live");
  window.__states = [live.dataset.state];
  new MutationObserver(() => {
    const s = live.dataset.state;
    if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
  }).observe(live, { attributes: true, attributeFilter: ["data-state"] });
}"""
MARKER = """() => {
  const m = document.getElementById("driver-marker");
  return m ? [m.dataset.lat, m.dataset.long] : [null, null];
}"""
NO_EVENTSOURCE = "delete window.EventSource;"


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiles() -> Iterator[TileServer]:
    server = TileServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, tiles: TileServer) -> Iterator[Servers]:
    pool = Servers(tmp_path_factory.mktemp("live-browser"))
    pool.start("sim", **SIM)
    pool.start("quiet", **FLEET, **OPEN, LACAK_LIVE_TTL_HOURS=str(TTL_HOURS))
    pool.start("restart", **OPEN)
    pool.start("tiles", **FLEET, **OPEN, LACAK_MAP_TILES_URL=tiles.url)
    pool.start("burst", LACAK_LIVE_BURST="1", LACAK_LIVE_RATE_PER_MINUTE="1")
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def chrome() -> Iterator[Chrome]:
    with sync_playwright() as pw:
        browser = Chrome(launch(pw))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def close_tabs(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed test leaves no page open (an open stream would hold its server's stop)."""
    yield
    if "chrome" in request.fixturenames:
        request.getfixturevalue("chrome").close_tabs()


@pytest.fixture(scope="module")
def quiet(servers: Servers) -> Server:
    return servers.get("quiet")


@pytest.fixture(scope="module")
def shop(quiet: Server) -> Api:
    return create_merchant(quiet.base_url)


# -- helpers ----------------------------------------------------------------------------------


def label(state: str, t: dict[str, str] = ID) -> str:
    return t[f"state.{state}"]


def move(server: Server, api: Api, order: dict[str, Any], state: str, **extra: Any) -> None:
    """An operator move (admin API) that must apply."""
    body = advance(server.base_url, order["order_id"], state, merchant=str(api.merchant_id), **extra)
    assert body["status"] is True and body["result"]["outcome"] == "applied", body


def void(api: Api, order: dict[str, Any]) -> None:
    r = api.http.delete(f"/api/mitra/v4/instant/pickup/void/{order['order_id']}")
    assert r.status_code == 200 and r.json()["status"] is True, r.text


def open_live(tab: Tab, url: str, mode: str = "sse") -> Page:
    """Open the page, mark its window (a reload or navigation loses the mark), await the mode."""
    page = tab.page
    response = page.goto(url)
    assert response is not None and response.status == 200, response and response.status
    page.evaluate("window.__marker = 1")
    expect(page.locator("main#live")).to_have_attribute("data-mode", mode)
    return page


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__marker === 1"))


def marker(page: Page) -> tuple[str | None, str | None]:
    lat, long = page.evaluate(MARKER)
    return lat, long


def in_transit(servers: Servers, name: str, api: Api) -> tuple[dict[str, Any], FleetDriver]:
    """A fleet order on its way, its driver (with a plate) at a live position."""
    server = servers.get(name)
    order = create_order(api)
    driver = FleetDriver(servers.backend(name), server.base_url, "Budi Santoso", "081234567616", "AB 1234 XY")
    pk = driver.take(order)
    driver.report(pk, "at_pickup", "picked_up", "in_transit")
    driver.at(*ON_THE_WAY[0])
    url = order["live_track_url"]
    wait_until("a position in the snapshot", lambda: httpx.get(url + "/state").json()["position"], 10)
    return order, driver


# -- 1. a simulated order, live ------------------------------------------------------------------


def test_simulated_order_advances_and_driver_moves_without_reload(chrome: Chrome, servers: Servers) -> None:
    sim = servers.get("sim")
    order = create_order(create_merchant(sim.base_url))
    tab = chrome.tab("simulated")
    page = open_live(tab, order["live_track_url"])
    live = page.locator("main#live")
    page.evaluate(RECORD_STATES)
    served = page.evaluate("JSON.parse(document.getElementById('lacak-data').textContent).state")
    assert served == "finding_driver"  # the page opened before a driver was found
    first_items = page.locator("#timeline > li").count()
    shot(page, "simulated", "loaded")

    # A driver is found: the driver card appears, the status says so.
    expect(page.locator("#driver")).to_be_visible(timeout=10_000)
    expect(page.locator("#driver-name")).not_to_be_empty()
    shot(page, "simulated", "driver-assigned")
    assert page.locator("#status").inner_text() != label("finding_driver")

    # On the way: two position events apart, the marker stands elsewhere (the state did not change).
    expect(live).to_have_attribute("data-state", "in_transit", timeout=15_000)
    expect(page.locator("#driver-marker")).to_have_attribute("data-lat", re.compile(r"^-?\d"))
    before = marker(page)
    page.wait_for_function(
        f"(b) => JSON.stringify(({MARKER})()) !== JSON.stringify(b)", arg=list(before), timeout=6_000
    )
    after = marker(page)
    assert live.get_attribute("data-state") == "in_transit", (
        "the marker moved by a state change, not a position"
    )
    assert None not in after and after != before
    expect(page.locator("#status")).to_have_text(label("in_transit"))
    shot(page, "simulated", "marker-moved")

    expect(live).to_have_attribute("data-state", "delivered", timeout=30_000)
    expect(page.locator("#status")).to_have_text(label("delivered"))
    expect(page.locator("#timeline > li").first).to_have_attribute("data-state", "delivered")
    expect(page.locator("#progress")).to_have_attribute("value", "5")
    shot(page, "simulated", "delivered")

    states = page.evaluate("window.__states")
    assert states[-1] == "delivered" and len(states) >= 4, states
    assert [HAPPY_PATH.index(s) for s in states] == sorted(HAPPY_PATH.index(s) for s in states), states
    assert page.locator("#timeline > li").count() > first_items
    assert live.get_attribute("data-mode") == "sse"
    assert not_reloaded(page)
    assert not tab.problems, tab.problems


def test_simulated_driver_photo_is_shown(chrome: Chrome, servers: Servers) -> None:
    """The simulator gives each driver an avatar; the page should show it, not the placeholder."""
    sim = servers.get("sim")
    url = create_order(create_merchant(sim.base_url))["live_track_url"]
    driver = wait_until("a driver", lambda: httpx.get(url + "/state").json()["driver"], 15)
    photo = driver["photo"]
    assert photo and "/avatars/" in photo, driver
    assert httpx.get(urljoin(sim.base_url, photo)).status_code == 200  # the server has it
    tab = chrome.tab("photo")
    page = open_live(tab, url)
    img = page.locator("#driver-photo")
    expect(img).to_be_visible()
    assert page.evaluate("document.getElementById('driver-photo').naturalWidth") > 0
    assert not tab.problems, tab.problems
    shown = img.get_attribute("src")
    assert shown and "/avatars/" in shown, f"the page shows {shown!r}, not the driver's photo {photo!r}"


# -- 2. the stream survives a server restart ---------------------------------------------------


def test_stream_resumes_after_server_restart(chrome: Chrome, servers: Servers) -> None:
    first = servers.get("restart")
    api = create_merchant(first.base_url)
    order = create_order(api)  # the simulator is parked: only the test moves it
    tab = chrome.tab("restart")
    page = open_live(tab, order["live_track_url"])
    live = page.locator("main#live")
    expect(page.locator("#status")).to_have_text(label("finding_driver"))

    with tab.outage():
        first.stop()
        expect(live).not_to_have_attribute("data-mode", "sse")  # the page noticed the drop
        second = Server(first.env, first.log)
        second.port, second.base_url = first.port, first.base_url  # same port, same database
        servers.adopt(second)
        second.start()
        move(second, api, order, "driver_assigned", **DRIVER)
        # EventSource reconnects by itself (retry: 3000) and gets the state it missed.
        expect(live).to_have_attribute("data-state", "driver_assigned", timeout=15_000)
        expect(live).to_have_attribute("data-mode", "sse")

    expect(page.locator("#status")).to_have_text(label("driver_assigned"))
    expect(page.locator("#driver-name")).to_have_text("Budi Santoso")
    # The new stream carries live changes too, not only the state it missed.
    move(second, api, order, "at_pickup")
    expect(live).to_have_attribute("data-state", "at_pickup", timeout=5_000)
    expect(page.locator("#status")).to_have_text(label("at_pickup"))
    shot(page, "restart", "resumed")
    assert not_reloaded(page)
    assert not tab.problems, tab.problems
    tab.close()


# -- 3. an expired link -------------------------------------------------------------------------


def test_expired_link_turns_open_page_into_gone_page(chrome: Chrome, quiet: Server, shop: Api) -> None:
    order = create_order(shop)
    url = order["live_track_url"]
    tab = chrome.tab("expired", allow=(410,))
    page = open_live(tab, url)
    void(shop, order)
    expect(page.locator("main#live")).to_have_attribute("data-state", "cancelled", timeout=5_000)
    expect(page.locator("#status")).to_have_text(label("cancelled"))
    shot(page, "expired", "cancelled")

    # The stream says `gone`; the page reloads into the 410 page.
    expect(page.locator("main#gone")).to_be_visible(timeout=15_000)
    assert page.evaluate("window.__marker") is None  # a reload, not an update
    expect(page.locator("main#gone h1")).to_have_text(ID["gone.title"])
    shot(page, "expired", "gone")

    fresh = chrome.tab("expired-fresh", allow=(410,))
    response = fresh.page.goto(url)
    assert response is not None and response.status == 410
    expect(fresh.page.locator("main#gone")).to_be_visible()
    expect(fresh.page.locator("main#live")).to_have_count(0)
    assert not tab.problems and not fresh.problems, tab.problems + fresh.problems
    tab.close()
    fresh.close()


# -- 4. language ------------------------------------------------------------------------------


def test_language_follows_accept_language_and_switch(chrome: Chrome, quiet: Server, shop: Api) -> None:
    assert label("finding_driver") != label("finding_driver", EN)
    order = create_order(shop)
    url = order["live_track_url"]

    tab = chrome.tab("lang-id", locale="id-ID")
    page = open_live(tab, url)
    expect(page.locator("html")).to_have_attribute("lang", "id")
    expect(page.locator("#status")).to_have_text(label("finding_driver"))
    expect(page.locator("#conn")).to_have_text(ID["conn.live"])
    expect(page.locator('nav#lang a[aria-current="page"]')).to_have_attribute("hreflang", "id")
    shot(page, "lang", "id")

    page.locator('nav#lang a[hreflang="en"]').click()
    page.wait_for_url(re.compile(r"\?lang=en$"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#status")).to_have_text(label("finding_driver", EN))
    expect(page.locator('nav#lang a[aria-current="page"]')).to_have_attribute("hreflang", "en")
    expect(page.locator("main#live")).to_have_attribute("data-mode", "sse")
    # What the script renders later is English too.
    move(quiet, shop, order, "driver_assigned", **DRIVER)
    expect(page.locator("#status")).to_have_text(label("driver_assigned", EN), timeout=5_000)
    expect(page.locator("#conn")).to_have_text(EN["conn.live"])
    shot(page, "lang", "en-switched")

    english = chrome.tab("lang-en", locale="en-US")
    response = english.page.goto(url)
    assert response is not None and response.headers["content-language"] == "en"
    assert response.request.headers["accept-language"].startswith("en-US")
    expect(english.page.locator("html")).to_have_attribute("lang", "en")
    expect(english.page.locator("#status")).to_have_text(label("driver_assigned", EN))
    assert not tab.problems and not english.problems, tab.problems + english.problems
    tab.close()
    english.close()


# -- 5. polling ---------------------------------------------------------------------------------


def test_polling_fallback_picks_up_changes(chrome: Chrome, quiet: Server, shop: Api) -> None:
    order = create_order(shop)
    url = order["live_track_url"]
    forced = chrome.tab("poll-forced")
    missing = chrome.tab("poll-no-eventsource", init_script=NO_EVENTSOURCE)
    pages = [open_live(forced, url + "?transport=poll", "poll"), open_live(missing, url, "poll")]
    assert missing.page.evaluate("typeof window.EventSource") == "undefined"
    for page in pages:
        expect(page.locator("#conn")).to_have_text(ID["conn.poll"])

    move(quiet, shop, order, "driver_assigned", **DRIVER)
    t0 = time.monotonic()
    for page in pages:
        expect(page.locator("main#live")).to_have_attribute("data-state", "driver_assigned", timeout=7_000)
        expect(page.locator("#status")).to_have_text(label("driver_assigned"))
        expect(page.locator("#driver-name")).to_have_text("Budi Santoso")
    assert time.monotonic() - t0 < 7.0
    shot(forced.page, "poll", "updated")
    for tab in (forced, missing):
        assert not_reloaded(tab.page)
        assert tab.page.locator("main#live").get_attribute("data-mode") == "poll"
        assert [u for u in tab.requests if u.endswith("/state")], "the page did not poll /state"
        assert not [u for u in tab.requests if "/events" in u], "a polling page opened a stream"
        assert not tab.problems, tab.problems
        tab.close()


# -- 7. valid HTML --------------------------------------------------------------------------------


def test_pages_are_valid_html(servers: Servers, quiet: Server, shop: Api, tmp_path: Path) -> None:
    burst = servers.get("burst")
    pages: dict[str, str] = {}

    def keep(name: str, r: httpx.Response, status: int) -> None:
        assert r.status_code == status, (name, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), (name, r.headers["content-type"])
        pages[name] = r.text

    finding = create_order(shop)
    keep("finding-driver", httpx.get(finding["live_track_url"]), 200)
    keep("finding-driver-en", httpx.get(finding["live_track_url"] + "?lang=en"), 200)
    moving, _ = in_transit(servers, "quiet", shop)
    url = moving["live_track_url"]
    keep("in-transit", httpx.get(url), 200)
    assert 'id="driver-marker"' in pages["in-transit"] and "AB 1234 XY" in pages["in-transit"]
    keep("in-transit-en", httpx.get(url + "?lang=en"), 200)
    cancelled = create_order(shop)
    void(shop, cancelled)
    keep("cancelled", httpx.get(cancelled["live_track_url"]), 200)  # before the link expires
    assert 'data-state="cancelled"' in pages["cancelled"]
    keep("not-found", httpx.get(f"{quiet.base_url}/t/{secrets.token_urlsafe(18)}"), 404)
    keep("not-found-en", httpx.get(f"{quiet.base_url}/t/{secrets.token_urlsafe(18)}?lang=en"), 404)
    wait_until("the link to expire", lambda: httpx.get(cancelled["live_track_url"]).status_code == 410, 10)
    keep("gone", httpx.get(cancelled["live_track_url"]), 410)
    token = secrets.token_urlsafe(18)
    httpx.get(f"{burst.base_url}/t/{token}")  # the one request the burst allows
    keep("too-many", httpx.get(f"{burst.base_url}/t/{token}"), 429)

    files = []
    for name, html in pages.items():
        path = tmp_path / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        files.append(path)
    found = nu_check(files)
    errors = [m for m in found if m["type"] != "info"]
    for m in found:
        if m["type"] == "info":
            print(f"Nu {m.get('subType', 'info')}: {Path(m['url']).name}:{m.get('lastLine')}: {m['message']}")
    report = [
        f"{Path(m.get('url', '?')).name}:{m.get('lastLine')}: {m['message']} [{m.get('extract', '')}]"
        for m in errors
    ]
    assert not errors, "\n".join(report)


# -- 8. tiles -----------------------------------------------------------------------------------


def test_tiles_mode_draws_leaflet_map_from_local_tiles(
    chrome: Chrome, servers: Servers, tiles: TileServer
) -> None:
    server = servers.get("tiles")
    order, driver = in_transit(servers, "tiles", create_merchant(server.base_url))
    url = order["live_track_url"]
    tab = chrome.tab("tiles")
    loaded: dict[str, int] = {}
    tab.page.on("response", lambda r: loaded.__setitem__(r.url.removeprefix(server.base_url), r.status))
    page = open_live(tab, url)

    expect(page.locator("#map")).to_have_attribute("data-tiles", tiles.url)
    assert loaded.get("/static/live/leaflet/leaflet.js") == 200, loaded
    assert loaded.get("/static/live/leaflet/leaflet.css") == 200, loaded
    expect(page.locator("#map .leaflet-container")).to_be_visible()
    expect(page.locator("#map img.leaflet-tile-loaded").first).to_be_visible()
    assert [p for p in tiles.seen if TileServer.TILE.match(p)], tiles.seen
    dot = page.locator("#driver-marker")
    # The driver's position is in the page from the start; whether the marker carries it is
    # checked last, so the rest of the tiles mode is tested either way.
    try:
        expect(dot).to_have_attribute("data-lat", str(ON_THE_WAY[0][0]), timeout=3_000)
        on_load = None
    except AssertionError:
        on_load = page.evaluate(
            "[...document.querySelectorAll('.leaflet-marker-icon')].map((m) => m.outerHTML.slice(0, 160))"
        )
    shot(page, "tiles", "loaded")

    driver.at(*ON_THE_WAY[1])  # the Leaflet marker follows position events
    expect(dot).to_have_attribute("data-lat", str(ON_THE_WAY[1][0]), timeout=6_000)
    expect(dot).to_have_attribute("data-long", str(ON_THE_WAY[1][1]))
    shot(page, "tiles", "marker-moved")
    assert not_reloaded(page)
    assert not tab.problems, tab.problems
    assert on_load is None, (
        f"in tiles mode no #driver-marker[data-lat] before the first position event: {on_load}"
    )
    tab.close()


# -- 9. layout and accessibility -------------------------------------------------------------------


def test_mobile_and_desktop_layout_and_accessibility(
    chrome: Chrome, servers: Servers, quiet: Server, shop: Api
) -> None:
    order, _ = in_transit(servers, "quiet", shop)
    url = order["live_track_url"]
    for name, size in (("mobile", (390, 844)), ("desktop", (1280, 800))):
        tab = chrome.tab(f"layout-{name}", viewport=size)
        page = open_live(tab, url)
        expect(page.locator("#driver-marker")).to_be_visible()
        expect(page.locator("#driver")).to_be_visible()
        # Nothing wider than the screen, and the status is in the first screenful.
        assert page.evaluate("document.documentElement.scrollWidth") <= size[0]
        box = page.locator("#status").bounding_box()
        assert box is not None and box["y"] + box["height"] <= size[1]
        shot(page, "layout", name)

        expect(page.locator("main")).to_have_count(1)
        expect(page.locator("h1")).to_have_count(1)
        expect(page.locator("h1")).to_have_text(label("in_transit"))
        live_region = page.evaluate(
            "document.getElementById('status').closest('[aria-live]')?.getAttribute('aria-live')"
        )
        assert live_region in ("polite", "assertive"), live_region
        no_alt = page.evaluate(
            "[...document.images].filter((i) => !i.hasAttribute('alt')).map((i) => i.outerHTML)"
        )
        assert no_alt == [], no_alt
        expect(page.locator("#driver-photo")).to_have_attribute("alt", re.compile(r"\S"))
        expect(page.locator("#progress")).to_have_accessible_name(re.compile(r"\S"))
        expect(page.get_by_role("progressbar")).to_have_count(1)
        expect(page.locator("#map-svg")).to_have_attribute("role", "img")
        expect(page.locator("#map-svg")).to_have_accessible_name(re.compile(r"\S"))
        assert not tab.problems, tab.problems
        tab.close()


# -- 6. nothing went wrong anywhere (keep this test last) --------------------------------------


def test_no_console_errors_csp_violations_or_failed_requests(
    chrome: Chrome, servers: Servers, quiet: Server, shop: Api
) -> None:
    order, driver = in_transit(servers, "quiet", shop)
    url = order["live_track_url"]
    sse = chrome.tab("clean-sse")
    poll = chrome.tab("clean-poll")
    response = sse.page.goto(url)
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    sse.page.evaluate("window.__marker = 1")
    expect(sse.page.locator("main#live")).to_have_attribute("data-mode", "sse")
    open_live(poll, url + "?transport=poll", "poll")

    driver.at(*ON_THE_WAY[1])
    for tab in (sse, poll):
        expect(tab.page.locator("#driver-marker")).to_have_attribute(
            "data-lat", str(ON_THE_WAY[1][0]), timeout=7_000
        )
    move(quiet, shop, order, "on_hold")  # a full re-render, in both modes
    for tab in (sse, poll):
        expect(tab.page.locator("#status")).to_have_text(label("on_hold"), timeout=7_000)
        expect(tab.page.locator("main#live")).to_have_attribute("data-tone", "warning")
        assert not_reloaded(tab.page)
    for tab in (sse, poll):
        tab.close()

    assert not chrome.log, "\n".join(chrome.log)
