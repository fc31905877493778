"""The live page's HTML and words: language choice, copy in both languages, escaping, the CSP rules."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from lacak.live import i18n, pages
from lacak.orders.models import State

HOSTILE = "</script><script>alert(1)</script><!--"

SNAPSHOT: dict[str, Any] = {
    "order_id": "ORD-1",
    "service": "gosend",
    "tracking_code": "GK-11-123456",
    "seq": 7,
    "state": "in_transit",
    "status_code": 106,
    "terminal": False,
    "tone": "active",
    "progress": {"value": 4, "max": 5},
    "note": None,
    "zone": "WIB",
    "timeline": [
        {"state": "in_transit", "at": "2026-12-03T14:09:00+07:00"},
        {"state": "picked_up", "at": "2026-12-03T14:05:00+07:00"},
        {"state": "created", "at": "2026-12-02T23:47:00+07:00"},
    ],
    "driver": {
        "name": "Budi Santoso",
        "phone": "0812****616",
        "plate": "B 1234 XYZ",
        "photo": "/avatars/ab.svg",
    },
    "origin": {"name": "Toko Maju", "lat": -6.2, "long": 106.8},
    "destination": {"name": "Ani", "address": "Jl. Melati 5, Jakarta", "lat": -6.25, "long": 106.85},
    "route": [[-6.2, 106.8], [-6.21, 106.81], [-6.25, 106.85]],
    "position": {"lat": -6.21, "long": 106.81, "at": "2026-12-03T14:06:00+07:00"},
    "expires_at": None,
}


def snap(**changes: Any) -> dict[str, Any]:
    s = copy.deepcopy(SNAPSHOT)
    s.update(changes)
    return s


class Doc(HTMLParser):
    """Every element with its attributes, the text under each id, and the raw script bodies."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self._script: dict[str, str | None] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.elements.append((tag, a))
        if tag == "script":
            self._script = a
            self.scripts.append((a, ""))
        if tag not in {"meta", "link", "img", "br", "input", "source"}:
            self._open.append((tag, a.get("id")))
            if a.get("id"):
                self.text.setdefault(str(a["id"]), "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        for _, element_id in self._open:
            if element_id:
                self.text[element_id] += data

    def by_id(self, element_id: str) -> tuple[str, dict[str, str | None]]:
        found = [(tag, a) for tag, a in self.elements if a.get("id") == element_id]
        assert len(found) == 1, f"#{element_id}: {len(found)} elements"
        return found[0]

    def has(self, element_id: str) -> bool:
        return any(a.get("id") == element_id for _, a in self.elements)

    def words(self, element_id: str) -> str:
        return " ".join(self.text[element_id].split())


def data_block(html: str, element_id: str = "lacak-data") -> str:
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert m is not None
    return m.group(1)


# --- language --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        (None, None, "id"),
        (None, "", "id"),
        ("en", "id-ID,id;q=0.9", "en"),
        ("id", "en-US,en;q=0.9", "id"),
        ("EN", None, "en"),
        ("fr", "en-GB,en;q=0.8", "en"),  # a query we do not speak falls back to the header
        ("", "en", "en"),
        (None, "en-US,en;q=0.9,id;q=0.8", "en"),
        (None, "en;q=0.5, id;q=0.8", "id"),
        (None, "fr-FR, de;q=0.9, en;q=0.1", "en"),
        (None, "fr-FR, de;q=0.9", "id"),
        (None, "in", "id"),  # the pre-1989 code for Indonesian
        (None, "id;q=0, en;q=0.1", "en"),
        (None, "en;q=0", "id"),
        (None, "en;q=0.5, id;q=0.5", "en"),  # a tie: the first listed wins
        (None, "*", "id"),
        (None, "*;q=1, en;q=0.2", "en"),
        (None, "EN-gb ; Q = 0.7", "en"),
        (None, "en" + ";q=0.5" * 500, "en"),
    ],
)
def test_pick_language(query: str | None, header: str | None, expected: str) -> None:
    assert i18n.pick_language(query, header) == expected


@pytest.mark.parametrize(
    "junk",
    [
        ";;;,,,",
        "en;q=abc",
        "en;q=nan",
        "en;q=inf",
        "en;q=2",
        "en;q=-1",
        "en;q=",
        "=;q=0.5",
        "\x00\xff\u2028",
        ",".join(["xx"] * 5000) + ",en",  # past the parsed prefix
        "<script>",
    ],
)
def test_pick_language_survives_junk_headers(junk: str) -> None:
    assert i18n.pick_language(None, junk) == "id"
    assert i18n.pick_language("en", junk) == "en"


def test_every_state_has_a_label_and_a_hint_in_both_languages() -> None:
    assert set(i18n.STATES) == {s.value for s in State}
    id_, en = i18n.messages("id"), i18n.messages("en")
    assert set(id_) == set(en)  # no string missing from either language
    for state in i18n.STATES:
        for key in (f"state.{state}", f"hint.{state}"):
            assert id_[key].strip() and en[key].strip(), key
    assert id_["state.finding_driver"] == "Mencari driver"
    assert id_["state.delivered"] == "Terkirim"
    assert en["state.delivered"] == "Delivered"
    assert len(id_["months"].split()) == len(en["months"].split()) == 12
    labels = [id_[f"state.{s}"] for s in i18n.STATES]
    assert len(set(labels)) == len(labels)  # every state reads differently


def test_messages_are_a_copy_and_unknown_languages_get_indonesian() -> None:
    m = i18n.messages("en")
    m["state.delivered"] = "changed"
    assert i18n.messages("en")["state.delivered"] == "Delivered"
    assert i18n.messages("xx") == i18n.messages("id")


# --- the page --------------------------------------------------------------------------------


def test_page_has_the_contract_ids_and_data() -> None:
    html = pages.page(SNAPSHOT, lang="id", token="tok_123", tiles_url=None)
    doc = Doc(html)
    assert ("html", {"lang": "id"}) in doc.elements
    _, main = doc.by_id("live")
    assert main["data-seq"] == "7"
    assert main["data-state"] == "in_transit"
    assert main["data-mode"] == "connecting"
    assert main["data-events"] == "/t/tok_123/events"
    assert main["data-state-url"] == "/t/tok_123/state"
    assert doc.words("status") == "Dalam perjalanan"
    assert doc.by_id("status-note")[1].keys() >= {"hidden"}
    tag, bar = doc.by_id("progress")
    assert (tag, bar["value"], bar["max"]) == ("progress", "4", "5")
    assert ("label", {"for": "progress"}) in doc.elements
    assert doc.by_id("timeline")[0] == "ol"
    states = [a["data-state"] for tag, a in doc.elements if tag == "li" and "data-state" in a]
    assert states == ["in_transit", "picked_up", "created"]  # newest first, as given
    assert "14:05 WIB" in doc.words("timeline")
    assert "3 Des" in doc.words("timeline") and "2 Des" in doc.words("timeline")
    assert "hidden" not in doc.by_id("driver")[1]
    assert doc.words("driver-name") == "Budi Santoso"
    assert doc.words("driver-phone") == "0812****616"
    assert doc.words("driver-plate") == "B 1234 XYZ"
    photo = doc.by_id("driver-photo")[1]
    assert photo["src"] == "/avatars/ab.svg"
    assert photo["alt"] == "Foto Budi Santoso"
    assert doc.words("origin") == "Toko Maju"
    assert doc.words("destination") == "Ani Jl. Melati 5, Jakarta"
    assert doc.by_id("map-svg")[1]["role"] == "img"
    assert doc.by_id("map-svg")[1]["aria-label"]
    assert doc.by_id("route")[0] == "path"
    assert doc.by_id("origin-marker")[0] == "circle"
    assert doc.by_id("destination-marker")[0] == "circle"
    _, marker = doc.by_id("driver-marker")
    assert (marker["data-lat"], marker["data-long"]) == ("-6.21", "106.81")
    assert doc.has("conn")
    assert ("link", {"rel": "icon", "href": "/static/live/icon.svg", "type": "image/svg+xml"}) in doc.elements
    langs = [a for tag, a in doc.elements if tag == "a" and "hreflang" in a]
    assert [(a["href"], a["lang"], a.get("aria-current")) for a in langs] == [
        ("?lang=id", "id", "page"),
        ("?lang=en", "en", None),
    ]
    assert doc.by_id("lang")[0] == "nav"
    # The status is announced politely when it changes.
    assert any(a.get("aria-live") == "polite" for _, a in doc.elements)


def test_page_in_english() -> None:
    doc = Doc(pages.page(SNAPSHOT, lang="en", token="t", tiles_url=None))
    assert ("html", {"lang": "en"}) in doc.elements
    assert doc.words("status") == "On the way"
    assert "3 Dec" in doc.words("timeline")
    langs = {a["lang"]: a.get("aria-current") for tag, a in doc.elements if tag == "a" and "hreflang" in a}
    assert langs == {"id": None, "en": "page"}


@pytest.mark.parametrize("lang", i18n.LANGS)
@pytest.mark.parametrize("state", i18n.STATES)
def test_every_state_renders_its_label(state: str, lang: str) -> None:
    doc = Doc(pages.page(snap(state=state), lang=lang, token="t", tiles_url=None))
    assert doc.words("status") == i18n.messages(lang)[f"state.{state}"]


def test_page_without_driver_or_position() -> None:
    s = snap(state="finding_driver", driver=None, position=None, route=[], timeline=[])
    html = pages.page(s, lang="id", token="t", tiles_url=None)
    doc = Doc(html)
    assert "hidden" in doc.by_id("driver")[1]
    assert not doc.has("driver-marker")
    assert "hidden" not in doc.by_id("timeline-empty")[1]
    assert not doc.text["timeline"].strip()
    # No route yet: a dashed straight line from the pickup to the destination.
    assert "is-straight" in str(doc.by_id("route")[1]["class"])
    assert doc.by_id("route")[1]["d"].count("L") == 1  # type: ignore[union-attr]


def test_note_is_shown_when_present() -> None:
    s = snap(state="cancelled", tone="failed", terminal=True, note="Driver tidak ditemukan", position=None)
    doc = Doc(pages.page(s, lang="id", token="t", tiles_url=None))
    assert doc.words("status-note") == "Driver tidak ditemukan"
    assert "hidden" not in doc.by_id("status-note")[1]
    assert doc.by_id("live")[1]["data-tone"] == "failed"


def hostile_snapshot() -> dict[str, Any]:
    return snap(
        state=HOSTILE,
        tone=HOSTILE,
        tracking_code=HOSTILE,
        note=HOSTILE + "\"'&",
        driver={
            "name": HOSTILE,
            "phone": '"><b>',
            "plate": "' onmouseover='x",
            "photo": "javascript:alert(1)",
        },
        origin={"name": "<img src=x onerror=alert(1)>", "lat": "x", "long": None},
        destination={"name": HOSTILE, "address": "\u2028<svg onload=alert(1)>", "lat": -6.25, "long": 106.85},
        timeline=[{"state": HOSTILE, "at": HOSTILE}, {"state": "picked_up", "at": "2026-13-40T99:99"}, "x"],
        route=[["a", 1], [1], None, [-6.2, 106.8], [float("inf"), 1]],
        position={"lat": 999, "long": 1, "at": HOSTILE},
        progress={"value": "x", "max": -3},
        seq="7",
        expires_at=HOSTILE,
    )


def test_hostile_strings_are_escaped() -> None:
    s = hostile_snapshot()
    s["route"] = s["route"][:-1]  # JSON has no infinity; the snapshot never carries one
    html = pages.page(s, lang="id", token="t", tiles_url=None)
    doc = Doc(html)
    body = html.split('<script type="application/json"')[0]
    assert "<script>alert" not in body
    assert "<img src=x" not in body
    assert "<svg onload" not in body
    assert "<b>" not in body
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert doc.words("driver-name") == HOSTILE
    assert doc.words("origin") == "<img src=x onerror=alert(1)>"
    assert doc.by_id("driver-photo")[1]["src"] == pages.DEFAULT_PHOTO  # javascript: never reaches src
    assert doc.by_id("live")[1]["data-tone"] == "active"
    assert not doc.has("driver-marker")  # latitude 999 is no position
    assert [tag for tag, a in doc.elements if tag == "script" and "src" not in a] == ["script", "script"]


def test_json_blocks_cannot_end_the_script_element() -> None:
    s = hostile_snapshot()
    s["route"] = s["route"][:-1]
    html = pages.page(s, lang="en", token="t", tiles_url=None)
    for element_id in ("lacak-data", "lacak-i18n"):
        body = data_block(html, element_id)
        assert "<" not in body and ">" not in body
        assert "\u2028" not in body
    assert json.loads(data_block(html)) == s  # the script sees exactly the snapshot
    assert json.loads(data_block(html, "lacak-i18n")) == i18n.messages("en")
    assert html.count("</script>") == len(Doc(html).scripts)


def test_non_finite_numbers_are_refused_not_sent_as_invalid_json() -> None:
    s = hostile_snapshot()  # an infinite latitude: the map skips it, but JSON has no way to say it
    with pytest.raises(ValueError):
        pages.page(s, lang="id", token="t", tiles_url=None)
    s["route"] = [[float("nan"), 1.0]]
    s["destination"] = {"name": "no coordinates"}
    view = pages.map_view(s)
    assert view["route"] == "M0 0"  # nothing to draw, and still a valid path
    assert view["origin"] is view["destination"] is view["driver"] is None


@pytest.mark.parametrize(
    "html",
    [
        pages.page(SNAPSHOT, lang="id", token="t", tiles_url=None),
        pages.page(SNAPSHOT, lang="en", token="t", tiles_url="https://tile.example/{z}/{x}/{y}.png"),
        pages.gone(lang="id"),
        pages.not_found(lang="en"),
        pages.too_many(lang="id"),
    ],
)
def test_no_inline_script_or_style(html: str) -> None:
    doc = Doc(html)
    for tag, attrs in doc.elements:
        assert tag != "style"
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for value in attrs.values():
            assert not (value or "").strip().lower().startswith("javascript:")
    for attrs, body in doc.scripts:
        if attrs.get("src"):
            assert str(attrs["src"]).startswith("/static/live/") and not body.strip()
        else:
            assert attrs.get("type") == "application/json"
    for tag, attrs in doc.elements:
        for name in ("src", "href"):
            url = attrs.get(name)
            if url and tag in ("script", "link", "img"):
                assert url.startswith("/static/live/") or url.startswith("/avatars/"), url


def test_tiles_mode_loads_the_vendored_leaflet_only_then() -> None:
    tiles = "https://tile.example/{z}/{x}/{y}.png"
    with_tiles = pages.page(SNAPSHOT, lang="id", token="t", tiles_url=tiles, tiles_attribution="© OSM")
    doc = Doc(with_tiles)
    assert doc.by_id("map")[1]["data-tiles"] == tiles
    assert doc.by_id("map")[1]["data-attribution"] == "© OSM"
    srcs = [a["src"] for tag, a in doc.elements if tag == "script" and a.get("src")]
    assert srcs == ["/static/live/leaflet/leaflet.js", "/static/live/live.js"]
    assert ("link", {"rel": "stylesheet", "href": "/static/live/leaflet/leaflet.css"}) in doc.elements
    without = pages.page(SNAPSHOT, lang="id", token="t", tiles_url=None)
    assert "leaflet" not in without
    assert "data-tiles" not in without


def test_map_fits_every_point_inside_the_view() -> None:
    view = pages.map_view(SNAPSHOT)
    for key in ("origin", "destination", "driver"):
        x, y = float(view[key]["x"]), float(view[key]["y"])
        assert pages.MAP_PAD - 0.1 <= x <= pages.MAP_W - pages.MAP_PAD + 0.1
        assert pages.MAP_PAD - 0.1 <= y <= pages.MAP_H - pages.MAP_PAD + 0.1
    # North is up and east is right: the destination is south-east of the pickup.
    assert float(view["destination"]["x"]) > float(view["origin"]["x"])
    assert float(view["destination"]["y"]) > float(view["origin"]["y"])
    # One point only: centred, not a division by zero.
    single = pages.map_view(snap(route=[], destination=None, position=None))
    assert (single["origin"]["x"], single["origin"]["y"]) == ("200", "150")


def test_clock_reads_the_wall_clock_as_written() -> None:
    months = i18n.messages("id")["months"].split()
    assert pages.clock("2026-12-03T14:05:00+07:00", "WIB", months) == {
        "iso": "2026-12-03T14:05:00+07:00",
        "time": "14:05 WIB",
        "date": "3 Des",
    }
    assert pages.clock("2026-08-17T09:30:00+08:00", "WITA", months)["time"] == "09:30 WITA"  # type: ignore[index]
    assert pages.clock("nope", "WIB", months) is None
    assert pages.clock(None, "WIB", months) is None


def test_safe_photo() -> None:
    assert pages.safe_photo("/avatars/x.svg") == "/avatars/x.svg"
    assert pages.safe_photo("https://cdn.example/p.jpg") == "https://cdn.example/p.jpg"
    for bad in (
        "javascript:alert(1)",
        "//evil.example/x.png",
        "http://x/y.png",
        "data:image/png;base64,x",
        "/\\x",
    ):
        assert pages.safe_photo(bad) is None


def test_token_is_quoted_into_the_urls() -> None:
    doc = Doc(pages.page(SNAPSHOT, lang="id", token='a"b/c', tiles_url=None))
    assert doc.by_id("live")[1]["data-events"] == "/t/a%22b%2Fc/events"


@pytest.mark.parametrize("lang", i18n.LANGS)
@pytest.mark.parametrize(
    ("render", "main_id"),
    [(pages.gone, "gone"), (pages.not_found, "notfound"), (pages.too_many, "toomany")],
)
def test_error_pages(render: Any, main_id: str, lang: str) -> None:
    html = render(lang=lang)
    doc = Doc(html)
    t = i18n.messages(lang)
    assert ("html", {"lang": lang}) in doc.elements
    assert doc.by_id(main_id)[0] == "main"
    assert doc.words(main_id).startswith(t[f"{main_id}.title"])
    assert t[f"{main_id}.text"] in doc.words(main_id)
    assert [tag for tag, _ in doc.elements].count("h1") == 1
    assert ("link", {"rel": "stylesheet", "href": "/static/live/live.css"}) in doc.elements
    assert not [a for tag, a in doc.elements if tag == "script"]
    assert doc.by_id("lang")[0] == "nav"


def test_unknown_language_renders_indonesian() -> None:
    assert 'lang="id"' in pages.gone(lang="xx")
    assert 'lang="id"' in pages.page(SNAPSHOT, lang="xx", token="t", tiles_url=None)
