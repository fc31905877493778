"""Live links, the customer's snapshot and the per-address limiter: pure rules, no I/O."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec
import polyline

from lacak.http.ratelimit import RateLimit, client_key
from lacak.live import links, views
from lacak.live.links import Links, expired, expires_at, mask_phone, valid_token, zone_for
from lacak.orders.models import Driver, HistoryEvent, Order, Outcome, Place, Source, State
from lacak.positions.store import Point
from tests.test_lifecycle import make_order

S = State
T0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def order(state: State = S.IN_TRANSIT, **over: object) -> Order:
    trip = {
        "seq": 5,
        "origin": Place("Toko Maju", "081280045616", "Jl. Asal 1", "lantai 2", -7.80, 110.35),
        "destination": Place("Okka", "081298765432", "Minomartani, Sleman", "dekat pasar", -7.73, 110.40),
        "driver": Driver("Budi Santoso", "+6281234567616", "/avatars/b.svg"),
        "poly_line": polyline.encode([(-7.80, 110.35), (-7.76, 110.38), (-7.73, 110.40)], 5),
        "live_token": "t" * 24,
        "created_at": T0,
        "updated_at": T0,
    }
    return make_order(state, **{**trip, **over})


def event(state: State, minutes: int, outcome: Outcome = Outcome.APPLIED) -> HistoryEvent:
    at = T0 + timedelta(minutes=minutes)
    return HistoryEvent(order_pk=7, seq=minutes, state=state, from_state=None, outcome=outcome,
                        source=Source.SIMULATOR, occurred_at=at, recorded_at=at)  # fmt: skip


# -- tokens --------------------------------------------------------------------------------------


def test_tokens_are_long_random_and_url_safe() -> None:
    tokens = [links.new_token() for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == 24 and valid_token(t) for t in tokens)
    # 144 bits: every one of the 64 URL-safe symbols shows up, spread roughly evenly.
    counts = Counter("".join(tokens))
    assert len(counts) == 64
    expected = len(tokens) * 24 / 64
    assert all(abs(n - expected) < 6 * math.sqrt(expected) for n in counts.values())


def test_a_link_is_the_base_url_and_the_token_only() -> None:
    token, url = Links("https://track.example.com/").new()
    assert url == f"https://track.example.com/t/{token}"
    assert "ORD" not in url


def test_only_token_shaped_strings_are_looked_up() -> None:
    assert valid_token("A" * 22) and valid_token("a-b_c" * 10)
    for bad in ("", "x", "A" * 21, "A" * 65, "../etc/passwd/xxxxxxxxxxxxxx", "A" * 23 + "=", "A" * 22 + "\n"):
        assert not valid_token(bad), bad


# -- expiry, zones, phones ----------------------------------------------------------------------


def test_a_link_expires_ttl_hours_after_the_terminal_state() -> None:
    moving = order(S.IN_TRANSIT)
    assert expires_at(moving, 24) is None and not expired(moving, T0 + timedelta(days=365), 24)
    done = order(S.DELIVERED, finished_at=T0)
    assert expires_at(done, 24) == T0 + timedelta(hours=24)
    assert not expired(done, T0 + timedelta(hours=23, minutes=59), 24)
    assert expired(done, T0 + timedelta(hours=24), 24)
    cancelled = order(S.CANCELLED, canceled_at=T0 + timedelta(hours=1))
    assert expires_at(cancelled, 2) == T0 + timedelta(hours=3)


def test_the_zone_follows_the_pickup_longitude() -> None:
    assert zone_for(106.82) == ("Asia/Jakarta", "WIB")  # Jakarta
    assert zone_for(114.37) == ("Asia/Jakarta", "WIB")  # Banyuwangi
    assert zone_for(115.21) == ("Asia/Makassar", "WITA")  # Denpasar
    assert zone_for(124.84) == ("Asia/Makassar", "WITA")  # Manado
    assert zone_for(128.18) == ("Asia/Jayapura", "WIT")  # Ambon
    assert zone_for(140.7) == ("Asia/Jayapura", "WIT")  # Jayapura


def test_phones_are_masked_in_the_middle() -> None:
    assert mask_phone("081234567616") == "0812****616"
    assert mask_phone("+62 812-3456-7616") == "0812****616"
    assert mask_phone("6281234567616") == "0812****616"
    assert mask_phone("12345") == "****45"
    assert mask_phone(None) is None and mask_phone("") is None


# -- the snapshot -------------------------------------------------------------------------------


def test_the_snapshot_shows_the_trip_in_the_local_clock() -> None:
    events = [event(S.CREATED, 0), event(S.FINDING_DRIVER, 1), event(S.DRIVER_ASSIGNED, 3),
              event(S.IN_TRANSIT, 4, Outcome.STALE), event(S.PICKED_UP, 9),
              event(S.IN_TRANSIT, 12)]  # fmt: skip
    live = Point(-7.77, 110.37, T0 + timedelta(minutes=13))
    snap = views.snapshot(order(), "AB 1234 CD", events, live, 24)
    assert snap["state"] == "in_transit" and snap["status_code"] == 106 and snap["seq"] == 5
    assert snap["progress"] == {"value": 4, "max": 5} and snap["tone"] == "active"
    # Newest first, applied only (the stale one changed nothing), in WIB (UTC+7).
    assert [e["state"] for e in snap["timeline"]] == [
        "in_transit", "picked_up", "driver_assigned", "finding_driver", "created"
    ]  # fmt: skip
    assert snap["timeline"][0]["at"] == "2026-12-03T14:12:00+07:00" and snap["zone"] == "WIB"
    assert snap["driver"] == {"name": "Budi Santoso", "phone": "0812****616", "plate": "AB 1234 CD",
                              "photo": "/avatars/b.svg"}  # fmt: skip
    assert snap["position"] == {"lat": -7.77, "long": 110.37, "at": "2026-12-03T14:13:00+07:00"}
    assert snap["route"][0] == [-7.8, 110.35] and len(snap["route"]) == 3
    assert snap["expires_at"] is None and snap["note"] is None


def test_a_position_json_cannot_carry_is_no_position() -> None:
    clock = views.Clock(110.35)
    assert views.position(Point(float("nan"), 110.3, T0), clock) is None
    assert views.position(Point(-7.7, float("inf"), T0), clock) is None


def test_the_snapshot_keeps_what_the_customer_does_not_need_out() -> None:
    snap = views.snapshot(order(), None, [event(S.CREATED, 0)], None, 24)
    text = msgspec.json.encode(snap).decode()
    for secret in ("081280045616", "081298765432", "81234567616", "Jl. Asal 1", "lantai 2", "dekat pasar"):
        assert secret not in text
    assert snap["origin"] == {"name": "Toko Maju", "lat": -7.8, "long": 110.35}
    assert snap["destination"]["address"] == "Minomartani, Sleman"


def test_off_path_states_keep_the_furthest_step_and_say_why() -> None:
    events = [event(S.CREATED, 0), event(S.DRIVER_ASSIGNED, 2), event(S.AT_PICKUP, 5), event(S.CANCELLED, 6)]
    cancelled = order(
        S.CANCELLED, canceled_at=T0 + timedelta(minutes=6), cancel_description="Dibatalkan toko"
    )
    snap = views.snapshot(cancelled, None, events, Point(-7.7, 110.4, T0), 24)
    assert snap["progress"]["value"] == 2 and snap["tone"] == "failed" and snap["terminal"] is True
    assert snap["note"] == "Dibatalkan toko"
    assert snap["position"] is None  # a finished trip shows no driver position
    assert snap["expires_at"] == "2026-12-04T14:06:00+07:00"
    assert views.tone(S.DELIVERED) == "done" and views.tone(S.NO_DRIVER) == "warning"
    # lacak's own photos become paths (the page's CSP and origin); others stay as they are.
    own = order(driver=Driver("Budi", "0812", "http://127.0.0.1:8080/avatars/b.svg"))
    assert (
        views.snapshot(own, None, [], None, 24, "http://127.0.0.1:8080")["driver"]["photo"]
        == "/avatars/b.svg"
    )
    other = order(driver=Driver("Budi", "0812", "https://cdn.gojek.com/d.jpg"))
    assert views.snapshot(other, None, [], None, 24, "http://127.0.0.1:8080")["driver"]["photo"].startswith(
        "https://cdn"
    )
    # A courier's note stays the merchant's business while the order runs normally.
    assert views.snapshot(order(cancel_description="x"), None, [], None, 24)["note"] is None


# -- the limiter ----------------------------------------------------------------------------------


def test_the_limiter_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    limit = RateLimit(per_minute=60, burst=3, clock=lambda: now[0])
    assert [limit.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limit.take("a")
    assert 0.9 < wait <= 1.0
    assert limit.take("b") == 0.0  # another address has its own bucket
    now[0] = 1.0
    assert limit.take("a") == 0.0 and limit.take("a") > 0


def test_the_limiter_keeps_a_hard_bound_and_forgets_the_oldest() -> None:
    now = [0.0]
    limit = RateLimit(per_minute=60, burst=2, clock=lambda: now[0], max_keys=100)
    limit.take("first")
    limit.take("first")
    assert limit.take("first") > 0  # its bucket is empty
    for i in range(100):
        limit.take(f"10.0.0.{i}")
    assert len(limit._buckets) == 100
    assert limit.take("first") == 0.0  # forgotten: a new address gets a full bucket


def test_ipv6_clients_share_their_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("-") == "-"
