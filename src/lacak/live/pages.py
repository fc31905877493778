"""The live page and its error pages, rendered to HTML strings with Jinja2.

The page works without JavaScript and without the internet: the status, the history and an SVG
map are all in the HTML. `static/live.js` then keeps it current from the same snapshot shape
over Server-Sent Events (or polling), so the projection below has a twin in that file.

A strict Content-Security-Policy applies: the templates hold no inline script or style; data
reaches the script as JSON in `<script type="application/json">`, escaped so no string in it can
close the tag.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from lacak.live.i18n import LANGS, messages

TONES = ("active", "warning", "done", "failed")
SERVICES = {"gosend": "GoSend", "grab_express": "GrabExpress", "borzo": "Borzo"}
DEFAULT_PHOTO = "/static/live/driver.svg"
# The SVG map's user space: 4:3 reads well both as a phone-wide card and a desktop column.
MAP_W, MAP_H, MAP_PAD = 400.0, 300.0, 30.0
# The smallest area the map shows (in Web Mercator units, about 500 m at Jakarta), so a driver
# standing on the pickup point is not drawn at street-level zoom across the whole card.
MIN_SPAN = 1.2e-5
MAX_LAT = 85.05112878  # Web Mercator's edge
# The wall clock of an ISO time as written: snapshots already carry the order's own offset.
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})")
_VALID_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$")
# Characters that could end the <script> element or confuse the HTML parser around it.
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


@functools.cache
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("lacak.live", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def script_json(value: Any) -> Markup:
    """JSON safe inside `<script type="application/json">`: `</script>` in a name stays text."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.translate(_JSON_ESCAPES).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)  # noqa: S704 - every character that could end the element is escaped above


def _lang(lang: str) -> str:
    return lang if lang in LANGS else LANGS[0]


# --- times ---------------------------------------------------------------------------------------


def clock(at: Any, zone: str, months: list[str]) -> dict[str, str] | None:
    """`2026-12-03T14:05:00+07:00` -> 14:05 WIB on 3 Des, as the wall clock in the string says."""
    if not isinstance(at, str):
        return None
    m = _ISO.match(at)
    if m is None:
        return None
    month = int(m.group(2))
    if not 1 <= month <= 12:
        return None
    hhmm = f"{m.group(4)}:{m.group(5)}"
    return {
        "iso": at if _VALID_DATETIME.match(at) else "",
        "time": f"{hhmm} {zone}".strip(),
        "date": f"{int(m.group(3))} {months[month - 1]}",
    }


# --- the SVG map ---------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _latlong(lat: Any, long: Any) -> tuple[float, float] | None:
    la, lo = _number(lat), _number(long)
    if la is None or lo is None or not -90 <= la <= 90 or not -180 <= lo <= 180:
        return None
    return la, lo


def _point(place: Any) -> tuple[float, float] | None:
    return _latlong(place.get("lat"), place.get("long")) if isinstance(place, dict) else None


def mercator(lat: float, long: float) -> tuple[float, float]:
    """Web Mercator on the unit square: x east from -180°, y south from the top edge."""
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    s = math.sin(math.radians(lat))
    return (long + 180.0) / 360.0, 0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)


@dataclass(frozen=True, slots=True)
class Frame:
    """Where the unit square lands in the SVG viewBox: centred on the data, fitted with padding."""

    cx: float
    cy: float
    scale: float

    @classmethod
    def fit(cls, points: list[tuple[float, float]]) -> Frame:
        if not points:
            points = [(-6.2, 106.816)]  # Jakarta: only reached when every coordinate is broken
        xs, ys = zip(*(mercator(la, lo) for la, lo in points), strict=True)
        span_x = max(max(xs) - min(xs), MIN_SPAN)
        span_y = max(max(ys) - min(ys), MIN_SPAN)
        scale = min((MAP_W - 2 * MAP_PAD) / span_x, (MAP_H - 2 * MAP_PAD) / span_y)
        return cls((max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2, scale)

    def xy(self, lat: float, long: float) -> tuple[float, float]:
        x, y = mercator(lat, long)
        sx = MAP_W / 2 + (x - self.cx) * self.scale
        sy = MAP_H / 2 + (y - self.cy) * self.scale
        return round(sx, 1), round(sy, 1)


def _num(v: float) -> str:
    """1.0 -> "1", 12.5 -> "12.5": the same text JavaScript's String() gives for the number."""
    return str(int(v)) if v == int(v) else str(v)


def _route(snapshot: dict[str, Any]) -> list[tuple[float, float]]:
    raw = snapshot.get("route")
    points = []
    for p in raw if isinstance(raw, list) else []:
        ll = _latlong(p[0], p[1]) if isinstance(p, list | tuple) and len(p) >= 2 else None
        if ll is not None:
            points.append(ll)
    return points


def map_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Everything the SVG map draws, projected: the same numbers live.js computes in the browser."""
    route = _route(snapshot)
    origin, destination = _point(snapshot.get("origin")), _point(snapshot.get("destination"))
    position = _point(snapshot.get("position"))
    ends = [p for p in (origin, destination) if p is not None]
    frame = Frame.fit(route + ends + ([position] if position else []))
    # No route yet: a dashed straight line says "from here to there" without pretending a road.
    line = route if len(route) >= 2 else ends
    d = "".join(
        f"{'M' if i == 0 else 'L'}{_num(x)} {_num(y)}" for i, (x, y) in enumerate(frame.xy(*p) for p in line)
    )

    def marker(p: tuple[float, float] | None) -> dict[str, str] | None:
        if p is None:
            return None
        x, y = frame.xy(*p)
        return {"x": _num(x), "y": _num(y), "lat": _num(p[0]), "long": _num(p[1])}

    return {
        "w": _num(MAP_W),
        "h": _num(MAP_H),
        "route": d or "M0 0",
        "straight": len(route) < 2,
        "origin": marker(origin),
        "destination": marker(destination),
        "driver": marker(position),
    }


# --- the page ------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def safe_photo(raw: Any) -> str | None:
    """Only same-site paths and https URLs reach an <img src>; anything else shows no photo."""
    url = _text(raw)
    if (url.startswith("/") and not url.startswith("//") and "\\" not in url) or url.startswith("https://"):
        return url
    return None


def _driver(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or not _text(raw.get("name")):
        return None
    return {
        "name": _text(raw.get("name")),
        "phone": _text(raw.get("phone")),
        "plate": _text(raw.get("plate")),
        "photo": safe_photo(raw.get("photo")),
    }


def _view(snapshot: dict[str, Any], t: dict[str, str], tiles_url: str | None) -> dict[str, Any]:
    state = _text(snapshot.get("state"))
    zone = _text(snapshot.get("zone"))
    months = t["months"].split()
    prog = _dict(snapshot.get("progress"))
    p_max = max(1, int(_number(prog.get("max")) or 5))
    p_value = max(0, min(p_max, int(_number(prog.get("value")) or 0)))
    timeline = []
    raw_timeline = snapshot.get("timeline")
    for entry in raw_timeline if isinstance(raw_timeline, list) else []:
        if not isinstance(entry, dict):
            continue
        s = _text(entry.get("state"))
        timeline.append(
            {"state": s, "label": t.get(f"state.{s}", s), "at": clock(entry.get("at"), zone, months)}
        )
    origin = _dict(snapshot.get("origin"))
    destination = _dict(snapshot.get("destination"))
    position = _dict(snapshot.get("position"))
    tone = _text(snapshot.get("tone"))
    service = _text(snapshot.get("service"))
    return {
        "seq": int(_number(snapshot.get("seq")) or 0),
        "state": state,
        "tone": tone if tone in TONES else "active",
        "terminal": snapshot.get("terminal") is True,
        "label": t.get(f"state.{state}", state),
        "hint": t.get(f"hint.{state}", ""),
        "note": _text(snapshot.get("note")),
        "service": SERVICES.get(service, service),
        "code": _text(snapshot.get("tracking_code")),
        "order_id": _text(snapshot.get("order_id")),
        "progress": {"value": p_value, "max": p_max},
        "timeline": timeline,
        "updated": timeline[0]["at"] if timeline else None,
        "driver": _driver(snapshot.get("driver")),
        "origin": {"name": _text(origin.get("name"))},
        "destination": {"name": _text(destination.get("name")), "address": _text(destination.get("address"))},
        "map": map_view(snapshot),
        "position_at": clock(position.get("at"), zone, months),
        "expires": clock(snapshot.get("expires_at"), zone, months),
        "tiles_url": tiles_url or "",
    }


def page(
    snapshot: dict[str, Any],
    *,
    lang: str,
    token: str,
    tiles_url: str | None,
    nonce_free: bool = True,
    tiles_attribution: str | None = None,
) -> str:
    """The live page for one order. `tiles_url` (`https://…/{z}/{x}/{y}.png`) turns on Leaflet.

    `nonce_free` is accepted for the contract's sake: the page never needs a CSP nonce, because
    it has no inline script or style at all.
    """
    del nonce_free
    lang = _lang(lang)
    t = messages(lang)
    base = f"/t/{quote(token, safe='')}"
    return (
        _env()
        .get_template("page.html")
        .render(
            lang=lang,
            t=t,
            v=_view(snapshot, t, tiles_url),
            events_url=f"{base}/events",
            state_url=f"{base}/state",
            attribution=tiles_attribution or "",
            default_photo=DEFAULT_PHOTO,
            data_json=script_json(snapshot),
            i18n_json=script_json(t),
        )
    )


def _error(template: str, lang: str) -> str:
    lang = _lang(lang)
    return _env().get_template(template).render(lang=lang, t=messages(lang))


def gone(*, lang: str) -> str:
    """The link has expired (410)."""
    return _error("gone.html", lang)


def not_found(*, lang: str) -> str:
    """No delivery behind this link (404)."""
    return _error("notfound.html", lang)


def too_many(*, lang: str) -> str:
    """Rate limited (429)."""
    return _error("toomany.html", lang)
