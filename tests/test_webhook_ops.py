"""Webhook operations: the attempt log, resend, recover, re-enable, rotate, dialect.

For the merchant (API key), the operator (admin token) and the CLI, against both databases,
through the shared server. That server does not dispatch (LACAK_RUN_WEBHOOKS=0): deliveries
stay as the tests put them, with SQL where a state needs faking (failed, paused, attempts).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from lacak.crypto import SecretBox
from lacak.http.openapi import document
from lacak.storage.rows import as_dt
from lacak.timeutil import utcnow
from lacak.webhooks.dispatcher import SECRET_CONTEXT
from tests.support import (
    ADMIN_TOKEN,
    SECRET_KEY,
    Api,
    Backend,
    Server,
    admin_client,
    advance,
    create_order,
    lacak,
)
from tests.test_openapi import check

HOOK = "https://93.184.216.34/hook"  # public and literal: accepted, never sent to (no dispatcher)
WH = "/api/mitra/v4/webhooks"
ADMIN_WH = "/api/admin/merchants/{merchant}/webhooks"
WIRE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
DOC = document()
DELIVERY_KEYS = [
    "event_id", "merchant_id", "order_id", "seq", "state", "status", "attempts", "next_attempt_at",
    "created_at", "delivered_at", "last_status", "last_error",
]  # fmt: skip
T0 = datetime(2031, 3, 1, tzinfo=UTC)  # times put on rows by hand: far from every real one


# -- helpers -------------------------------------------------------------------------------


def hooked(api: Api) -> str:
    """Give the merchant a callback URL; its signing secret (handed out this once)."""
    body = api.post("/api/mitra/set_callback", {"url": HOOK}).json()
    assert body["status"] is True, body
    secret: str = body["result"]["webhook_secret"]
    return secret


def orders_with_deliveries(api: Api, server: Server, count: int, *, assigned: int = 0) -> list[str]:
    """`count` orders (one delivery each), the first `assigned` moved on once more (a second)."""
    ids = [create_order(api)["order_id"] for _ in range(count)]
    for order_id in ids[:assigned]:
        moved = advance(server.base_url, order_id, "driver_assigned", merchant=str(api.merchant_id))
        assert moved["result"]["outcome"] == "applied", moved
    return ids


def rows(backend: Backend, merchant_id: int) -> list[dict[str, Any]]:
    """The merchant's deliveries, oldest first."""
    return backend.query(
        "SELECT d.id, d.event_id, o.order_id, d.seq, d.status, d.attempts, d.next_attempt_at, d.manual,"
        " d.created_at FROM deliveries d JOIN orders o ON o.id = d.order_pk WHERE d.merchant_id = $1"
        " ORDER BY d.id",
        merchant_id,
    )


def snapshot(backend: Backend, merchant_id: int) -> list[Any]:
    """Everything an operation could change for the merchant: proof that nothing did."""
    return [
        backend.query("SELECT * FROM deliveries WHERE merchant_id = $1 ORDER BY id", merchant_id),
        backend.query("SELECT * FROM webhook_endpoints WHERE merchant_id = $1", merchant_id),
        backend.query("SELECT callback_url, webhook_dialect FROM merchants WHERE id = $1", merchant_id),
        backend.query(
            "SELECT a.* FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.merchant_id = $1 ORDER BY a.id",
            merchant_id,
        ),
    ]


def set_status(backend: Backend, event_id: str, status: str, **extra: Any) -> None:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(extra, start=3))
    backend.query(
        f"UPDATE deliveries SET status = $2{', ' + sets if sets else ''} WHERE event_id = $1",
        event_id,
        status,
        *extra.values(),
    )


def set_created(backend: Backend, event_id: str, when: datetime) -> None:
    backend.query("UPDATE deliveries SET created_at = $2 WHERE event_id = $1", event_id, when)


def add_attempt(backend: Backend, event_id: str, **values: Any) -> None:
    delivery = backend.query("SELECT id FROM deliveries WHERE event_id = $1", event_id)[0]["id"]
    backend.query(
        "INSERT INTO delivery_attempts (delivery_id, attempt, trigger, started_at, duration_ms, status_code,"
        " error_class, error, response_body, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        delivery,
        values["attempt"],
        values["trigger"],
        values["started_at"],
        values["duration_ms"],
        values.get("status_code"),
        values.get("error_class"),
        values.get("error"),
        values.get("response_body"),
        values["outcome"],
    )


def result(path: str, method: str, response: httpx.Response) -> Any:
    """A successful answer's result, checked against the OpenAPI document first."""
    body = check(DOC, path, method, response)
    assert response.status_code == 200 and body["status"] is True, body
    return body["result"]


def refused(path: str, method: str, response: httpx.Response, status: int, code: int, text: str) -> None:
    body = check(DOC, path, method, response)
    assert response.status_code == status, body
    assert body == {"status": False, "text": text, "code": code, "method": None, "result": None}


def page_all(client: httpx.Client, url: str, **params: Any) -> list[list[str]]:
    """Every page of a listing, as event ids per page."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        got = client.get(url, params=query).json()["result"]
        pages.append([d["event_id"] for d in got["deliveries"]])
        cursor = got["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


# -- listing -------------------------------------------------------------------------------


def test_listing_pages_and_filters(api: Api, backend: Backend, server: Server) -> None:
    hooked(api)
    order_ids = orders_with_deliveries(api, server, 5, assigned=2)
    stored = rows(backend, api.merchant_id)
    assert len(stored) == 7
    newest_first = [r["event_id"] for r in reversed(stored)]

    listed = result(f"{WH}/deliveries", "get", api.http.get(f"{WH}/deliveries"))
    assert [d["event_id"] for d in listed["deliveries"]] == newest_first
    assert listed["next_cursor"] is None
    first = listed["deliveries"][-1]
    assert list(first) == DELIVERY_KEYS
    assert first["merchant_id"] == api.merchant_id and first["order_id"] == order_ids[0]
    assert (first["seq"], first["state"], first["status"], first["attempts"]) == (
        2,
        "finding_driver",
        "pending",
        0,
    )
    assert WIRE.fullmatch(first["created_at"]) and WIRE.fullmatch(first["next_attempt_at"])
    assert first["delivered_at"] is None and first["last_status"] is None

    # Pages of 3: every delivery exactly once, in order, and the last page says so.
    pages = page_all(api.http, f"{WH}/deliveries", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e for p in pages for e in p] == newest_first

    # order id: both deliveries of the first order, and nothing else
    by_order = api.http.get(f"{WH}/deliveries", params={"order_id": order_ids[0]}).json()["result"]
    assert [(d["order_id"], d["seq"]) for d in by_order["deliveries"]] == [
        (order_ids[0], 3),
        (order_ids[0], 2),
    ]

    # status
    failed = [stored[1]["event_id"], stored[4]["event_id"]]
    for event_id in failed:
        set_status(backend, event_id, "failed", attempts=8, last_status=500, last_error="HTTP 500")
    only_failed = api.http.get(f"{WH}/deliveries", params={"status": "failed"}).json()["result"]
    assert [d["event_id"] for d in only_failed["deliveries"]] == failed[::-1]
    assert all(d["next_attempt_at"] is None and d["last_status"] == 500 for d in only_failed["deliveries"])
    pending = api.http.get(f"{WH}/deliveries", params={"status": "pending"}).json()["result"]
    assert {d["event_id"] for d in pending["deliveries"]} == set(newest_first) - set(failed)

    # time range: created at T0 + i hours; since is inclusive, until exclusive, offsets honoured
    for i, row in enumerate(stored):
        set_created(backend, row["event_id"], T0 + timedelta(hours=i))
    window = {
        "since": (T0 + timedelta(hours=2)).isoformat(),
        "until": "2031-03-01T12:00:00+07:00",
    }  # T0 + 5 h
    ranged = api.http.get(f"{WH}/deliveries", params=window).json()["result"]
    assert [d["event_id"] for d in ranged["deliveries"]] == [r["event_id"] for r in stored[2:5]][::-1]
    assert ranged["deliveries"][-1]["created_at"] == "2031-03-01T02:00:00.000000Z"

    # filters combine, and page together
    combined = page_all(api.http, f"{WH}/deliveries", status="pending", since=window["since"], limit=2)
    assert [e for p in combined for e in p] == [stored[i]["event_id"] for i in (6, 5, 3, 2)]
    assert [len(p) for p in combined] == [2, 2]


def test_show_gives_every_attempt_with_the_start_of_each_answer(
    api: Api, backend: Backend, server: Server
) -> None:
    hooked(api)
    orders_with_deliveries(api, server, 1)
    event_id = rows(backend, api.merchant_id)[0]["event_id"]
    answer = "e" * 4000 + "é" * 96  # 4 KiB of characters, some of them not ASCII
    started = datetime(2031, 3, 1, 8, 21, 28, 301662, tzinfo=UTC)
    add_attempt(
        backend,
        event_id,
        attempt=1,
        trigger="scheduled",
        started_at=started,
        duration_ms=12.5,
        status_code=500,
        error_class="http",
        error="HTTP 500",
        response_body=answer,
        outcome="retry",
    )
    add_attempt(
        backend,
        event_id,
        attempt=2,
        trigger="manual",
        started_at=started + timedelta(seconds=5),
        duration_ms=15000.0,
        error_class="timeout",
        error="no answer in 15 s",
        outcome="failed",
    )
    set_status(backend, event_id, "failed", attempts=2, last_error="no answer in 15 s")

    path = f"{WH}/deliveries/{{event_id}}"
    shown = result(path, "get", api.http.get(f"{WH}/deliveries/{event_id}"))
    assert [k for k in shown if k != "attempts"] == [k for k in DELIVERY_KEYS if k != "attempts"]
    assert shown["event_id"] == event_id and shown["status"] == "failed"
    assert shown["last_error"] == "no answer in 15 s"
    assert shown["attempts"] == [
        {
            "attempt": 1, "trigger": "scheduled", "started_at": "2031-03-01T08:21:28.301662Z",
            "duration_ms": 12.5, "status_code": 500, "error_class": "http", "error": "HTTP 500",
            "response_body": answer, "outcome": "retry",
        },
        {
            "attempt": 2, "trigger": "manual", "started_at": "2031-03-01T08:21:33.301662Z",
            "duration_ms": 15000.0, "status_code": None, "error_class": "timeout",
            "error": "no answer in 15 s", "response_body": None, "outcome": "failed",
        },
    ]  # fmt: skip
    # The listing counts the attempts; only `show` carries the log.
    listed = api.http.get(f"{WH}/deliveries").json()["result"]["deliveries"]
    assert listed[0]["attempts"] == 2


# -- acting on deliveries ------------------------------------------------------------------


def test_resend_makes_one_delivery_due_now_as_manual(api: Api, backend: Backend, server: Server) -> None:
    hooked(api)
    orders_with_deliveries(api, server, 3)
    failed, delivered, untouched = (r["event_id"] for r in rows(backend, api.merchant_id))
    long_ago = utcnow() - timedelta(days=3)
    set_status(backend, failed, "failed", attempts=8, next_attempt_at=long_ago)
    set_status(backend, delivered, "delivered", attempts=1, delivered_at=long_ago, next_attempt_at=long_ago)
    before = {r["event_id"]: r for r in rows(backend, api.merchant_id)}
    assert not before[failed]["manual"]

    path = f"{WH}/deliveries/{{event_id}}/resend"
    for event_id in (failed, delivered):
        sent_at = utcnow()
        again = result(path, "post", api.http.post(f"{WH}/deliveries/{event_id}/resend"))
        assert again["event_id"] == event_id and again["status"] == "pending"
        after = {r["event_id"]: r for r in rows(backend, api.merchant_id)}
        assert after[event_id]["status"] == "pending" and after[event_id]["manual"]
        due = as_dt(after[event_id]["next_attempt_at"])
        assert due is not None and abs((due - sent_at).total_seconds()) < 30
        assert after[event_id]["attempts"] == before[event_id]["attempts"]  # the log keeps counting
    assert rows(backend, api.merchant_id)[2] == before[untouched]


def test_recover_requeues_only_failed_deliveries_since_the_time(
    api: Api, backend: Backend, server: Server
) -> None:
    hooked(api)
    orders_with_deliveries(api, server, 5)
    old_failed, new_failed, newer_failed, new_delivered, new_pending = (
        r["event_id"] for r in rows(backend, api.merchant_id)
    )
    since = T0 + timedelta(days=1)
    for event_id, created, status in (
        (old_failed, since - timedelta(seconds=1), "failed"),
        (new_failed, since, "failed"),
        (newer_failed, since + timedelta(hours=3), "failed"),
        (new_delivered, since + timedelta(hours=1), "delivered"),
        (new_pending, since + timedelta(hours=2), "pending"),
    ):
        set_created(backend, event_id, created)
        set_status(backend, event_id, status, attempts=8)
    before = {r["event_id"]: r for r in rows(backend, api.merchant_id)}

    # the same instant, written with an offset
    recovered = result(
        f"{WH}/recover", "post", api.post(f"{WH}/recover", {"since": "2031-03-02T07:00:00+07:00"})
    )
    assert recovered == {"requeued": 2}
    after = {r["event_id"]: r for r in rows(backend, api.merchant_id)}
    for event_id in (new_failed, newer_failed):
        assert after[event_id]["status"] == "pending" and after[event_id]["manual"]
    for event_id in (old_failed, new_delivered, new_pending):
        assert after[event_id] == before[event_id]
    assert api.post(f"{WH}/recover", {"since": since.isoformat()}).json()["result"] == {"requeued": 0}


def test_enable_resumes_paused_deliveries(api: Api, backend: Backend, server: Server) -> None:
    hooked(api)
    orders_with_deliveries(api, server, 3)
    paused = [r["event_id"] for r in rows(backend, api.merchant_id)[:2]]
    failed = rows(backend, api.merchant_id)[2]["event_id"]
    for event_id in paused:
        set_status(backend, event_id, "paused")
    set_status(backend, failed, "failed")
    down = T0 + timedelta(hours=5)
    backend.query(
        "UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3, failing_since = $4,"
        " held_until = $5 WHERE merchant_id = $1",
        api.merchant_id,
        down,
        "the endpoint answered 410 Gone",
        down - timedelta(hours=1),
        down + timedelta(minutes=1),
    )
    shown = result(WH, "get", api.http.get(WH))
    assert shown == {
        "merchant_id": api.merchant_id,
        "url": HOOK,
        "dialect": "kiriminaja-2024",
        "has_secret": True,
        "rotating_until": None,
        "failing_since": "2031-03-01T04:00:00.000000Z",
        "held_until": "2031-03-01T05:01:00.000000Z",
        "disabled_at": "2031-03-01T05:00:00.000000Z",
        "disabled_reason": "the endpoint answered 410 Gone",
    }

    assert result(f"{WH}/enable", "post", api.post(f"{WH}/enable")) == {"resumed": 2}
    after = {r["event_id"]: r for r in rows(backend, api.merchant_id)}
    assert all(after[e]["status"] == "pending" and after[e]["manual"] for e in paused)
    assert after[failed]["status"] == "failed"  # enabling is not recovering
    healthy = api.http.get(WH).json()["result"]
    assert (healthy["disabled_at"], healthy["disabled_reason"], healthy["failing_since"]) == (
        None,
        None,
        None,
    )
    assert healthy["held_until"] is None  # re-enabled: its new events are due at once
    assert api.post(f"{WH}/enable").json()["result"] == {"resumed": 0}


def test_rotation_keeps_the_old_secret_signing_until_the_time(api: Api, backend: Backend) -> None:
    first = hooked(api)
    asked = utcnow()
    rotated = result(f"{WH}/secret/rotate", "post", api.post(f"{WH}/secret/rotate"))
    assert list(rotated) == ["webhook_secret", "previous_valid_until"]
    second = rotated["webhook_secret"]
    assert second.startswith("whsec_") and second != first
    until = datetime.fromisoformat(rotated["previous_valid_until"])
    assert abs((until - asked - timedelta(hours=24)).total_seconds()) < 30  # the default overlap

    stored = backend.query("SELECT * FROM webhook_endpoints WHERE merchant_id = $1", api.merchant_id)[0]
    box = SecretBox(bytes.fromhex(SECRET_KEY))
    assert box.open(stored["secret_enc"], context=SECRET_CONTEXT) == second
    assert box.open(stored["old_secret_enc"], context=SECRET_CONTEXT) == first
    assert as_dt(stored["old_secret_until"]) == until
    assert first not in json.dumps(stored, default=str) and second not in json.dumps(stored, default=str)
    assert api.http.get(WH).json()["result"]["rotating_until"] == rotated["previous_valid_until"]

    # rotating again retires the first secret: only the last two ever sign
    third = api.post(f"{WH}/secret/rotate").json()["result"]["webhook_secret"]
    stored = backend.query("SELECT * FROM webhook_endpoints WHERE merchant_id = $1", api.merchant_id)[0]
    assert box.open(stored["old_secret_enc"], context=SECRET_CONTEXT) == second
    assert box.open(stored["secret_enc"], context=SECRET_CONTEXT) == third


def test_dialect_is_chosen_per_merchant(api: Api, other: Api, backend: Backend) -> None:
    hooked(api)
    chosen = result(f"{WH}/dialect", "post", api.post(f"{WH}/dialect", {"dialect": "kiriminaja-2025"}))
    assert chosen["dialect"] == "kiriminaja-2025" and chosen["url"] == HOOK
    dialects = backend.query(
        "SELECT id, webhook_dialect FROM merchants WHERE id IN ($1, $2) ORDER BY id",
        api.merchant_id,
        other.merchant_id,
    )
    assert {r["id"]: r["webhook_dialect"] for r in dialects} == {
        api.merchant_id: "kiriminaja-2025",
        other.merchant_id: "kiriminaja-2024",
    }
    assert api.http.get(WH).json()["result"]["dialect"] == "kiriminaja-2025"
    back = api.post(f"{WH}/dialect", {"dialect": "kiriminaja-2024"}).json()["result"]
    assert back["dialect"] == "kiriminaja-2024"


# -- isolation and authentication ----------------------------------------------------------


def test_merchants_see_and_touch_only_their_own(
    api: Api, other: Api, backend: Backend, server: Server
) -> None:
    hooked(api)
    hooked(other)
    orders_with_deliveries(api, server, 2)
    mine = [r["event_id"] for r in rows(backend, api.merchant_id)]
    set_status(backend, mine[0], "failed")
    set_status(backend, mine[1], "paused")
    before = snapshot(backend, api.merchant_id)

    assert other.http.get(f"{WH}/deliveries").json()["result"] == {"deliveries": [], "next_cursor": None}
    for event_id in mine:
        assert (
            other.http.get(
                f"{WH}/deliveries", params={"order_id": rows(backend, api.merchant_id)[0]["order_id"]}
            ).json()["result"]["deliveries"]
            == []
        )
        unknown = other.http.get(f"{WH}/deliveries/msg_{uuid.uuid4().hex}")
        theirs = other.http.get(f"{WH}/deliveries/{event_id}")
        assert theirs.status_code == unknown.status_code == 200
        assert theirs.content == unknown.content  # indistinguishable from an id that does not exist
        assert theirs.json()["text"] == "data not found"
        resent = other.post(f"{WH}/deliveries/{event_id}/resend")
        assert resent.json() == unknown.json()
    assert other.post(f"{WH}/recover", {"since": "2000-01-01T00:00:00Z"}).json()["result"] == {"requeued": 0}
    assert other.post(f"{WH}/enable").json()["result"] == {"resumed": 0}
    assert snapshot(backend, api.merchant_id) == before
    # and the owner still sees them
    assert len(api.http.get(f"{WH}/deliveries").json()["result"]["deliveries"]) == 2


MERCHANT_ROUTES = [
    ("get", WH),
    ("get", f"{WH}/deliveries"),
    ("get", f"{WH}/deliveries/msg_x"),
    ("post", f"{WH}/deliveries/msg_x/resend"),
    ("post", f"{WH}/recover"),
    ("post", f"{WH}/enable"),
    ("post", f"{WH}/secret/rotate"),
    ("post", f"{WH}/dialect"),
]
ADMIN_ROUTES = [
    *((m, p.replace(WH, "/api/admin/merchants/1/webhooks")) for m, p in MERCHANT_ROUTES),
    ("get", "/api/admin/merchants/1/webhooks/secret"),
    ("get", "/api/admin/webhooks/deliveries"),
    ("get", "/api/admin/webhooks/deliveries/msg_x"),
    ("post", "/api/admin/webhooks/deliveries/msg_x/resend"),
    ("post", "/api/admin/webhooks/recover"),
]


def test_credentials_are_required(api: Api, backend: Backend, server: Server) -> None:
    hooked(api)
    before = snapshot(backend, api.merchant_id)
    for merchant_key in ("", "Bearer " + "0" * 64, f"Bearer {ADMIN_TOKEN}"):
        for method, url in MERCHANT_ROUTES:
            r = httpx.request(
                method,
                f"{server.base_url}{url}",
                headers={"Authorization": merchant_key},
                json={"since": "2000-01-01T00:00:00Z", "dialect": "kiriminaja-2025"},
            )
            assert r.status_code == 401 and r.json()["code"] == 401, (method, url)
    for admin_token in ("", "Bearer wrong", f"Bearer {api.key}", ADMIN_TOKEN):
        for method, url in ADMIN_ROUTES:
            url = url.replace("/merchants/1/", f"/merchants/{api.merchant_id}/")
            r = httpx.request(
                method,
                f"{server.base_url}{url}",
                headers={"Authorization": admin_token},
                json={"since": "2000-01-01T00:00:00Z", "dialect": "kiriminaja-2025"},
            )
            assert r.status_code == 401, (method, url)
            assert r.json() == {
                "status": False,
                "text": "Unauthenticated.",
                "code": 401,
                "method": None,
                "result": None,
            }
            assert "webhook_secret" not in r.text
    assert snapshot(backend, api.merchant_id) == before


# -- the operator --------------------------------------------------------------------------


def test_operator_does_the_same_for_any_merchant(
    api: Api, other: Api, backend: Backend, server: Server
) -> None:
    started = utcnow() - timedelta(seconds=1)
    first = hooked(api)
    hooked(other)
    order_ids = orders_with_deliveries(api, server, 3)
    orders_with_deliveries(other, server, 1)
    mine = [r["event_id"] for r in rows(backend, api.merchant_id)]
    theirs = rows(backend, other.merchant_id)[0]["event_id"]
    base = f"/api/admin/merchants/{api.merchant_id}/webhooks"
    with admin_client(server.base_url) as admin:
        name = next(
            m["name"]
            for m in admin.get("/api/admin/merchants").json()["result"]
            if m["merchant_id"] == api.merchant_id
        )
        by_name = f"/api/admin/merchants/{name}/webhooks"
        assert result(ADMIN_WH, "get", admin.get(base))["url"] == HOOK
        assert admin.get(by_name).json()["result"]["merchant_id"] == api.merchant_id

        # the secret, read and rotated
        assert result(f"{ADMIN_WH}/secret", "get", admin.get(f"{base}/secret")) == {"webhook_secret": first}
        rotated = result(f"{ADMIN_WH}/secret/rotate", "post", admin.post(f"{by_name}/secret/rotate"))
        assert rotated["webhook_secret"] != first
        assert admin.get(f"{base}/secret").json()["result"] == {"webhook_secret": rotated["webhook_secret"]}

        listed = result(f"{ADMIN_WH}/deliveries", "get", admin.get(f"{base}/deliveries", params={"limit": 2}))
        assert [d["event_id"] for d in listed["deliveries"]] == mine[::-1][:2]
        assert [e for p in page_all(admin, f"{base}/deliveries", limit=1) for e in p] == mine[::-1]

        # across merchants: one merchant, or everyone (filtered to these two orders)
        everyone = "/api/admin/webhooks/deliveries"
        one = result(everyone, "get", admin.get(everyone, params={"merchant": str(api.merchant_id)}))
        assert [d["event_id"] for d in one["deliveries"]] == mine[::-1]
        two = admin.get(everyone, params={"merchant": str(other.merchant_id)}).json()["result"]
        assert [d["event_id"] for d in two["deliveries"]] == [theirs]
        # this test's window of time holds exactly its own four deliveries, whoever made them
        window = {"since": started.isoformat(), "until": (utcnow() + timedelta(minutes=1)).isoformat()}
        by_order = admin.get(everyone, params={**window, "order_id": order_ids[1]}).json()["result"]
        assert [d["event_id"] for d in by_order["deliveries"]] == [mine[1]]
        recent = page_all(admin, everyone, limit=1, **window)
        assert recent == [[theirs], *([e] for e in mine[::-1])]

        # one delivery: by the merchant's path (scoped) or by event id alone
        shown = result(
            f"{ADMIN_WH}/deliveries/{{event_id}}", "get", admin.get(f"{base}/deliveries/{mine[0]}")
        )
        assert shown["event_id"] == mine[0] and shown["attempts"] == []
        wrong_merchant = admin.get(f"{base}/deliveries/{theirs}").json()
        assert wrong_merchant["code"] == 2 and wrong_merchant["text"] == "data not found"
        any_path = "/api/admin/webhooks/deliveries/{event_id}"
        assert result(any_path, "get", admin.get(f"/api/admin/webhooks/deliveries/{theirs}"))[
            "merchant_id"
        ] == (other.merchant_id)

        set_status(backend, mine[0], "failed")
        set_status(backend, theirs, "failed")
        resent = admin.post(f"/api/admin/webhooks/deliveries/{theirs}/resend")
        assert result(f"{any_path}/resend", "post", resent)["status"] == "pending"
        assert (
            result(
                f"{ADMIN_WH}/deliveries/{{event_id}}/resend",
                "post",
                admin.post(f"{base}/deliveries/{mine[0]}/resend"),
            )["status"]
            == "pending"
        )
        assert [r["status"] for r in rows(backend, other.merchant_id)] == ["pending"]

        # recover: one merchant by path, or by body; everyone (only these rows are this far ahead)
        since = T0 + timedelta(days=400)
        for event_id in (*mine, theirs):
            set_created(backend, event_id, since + timedelta(minutes=1))
            set_status(backend, event_id, "failed")
        by_path = admin.post(f"{base}/recover", json={"since": since.isoformat()})
        assert result(f"{ADMIN_WH}/recover", "post", by_path) == {"requeued": 3}
        assert [r["status"] for r in rows(backend, other.merchant_id)] == ["failed"]
        for event_id in mine:
            set_status(backend, event_id, "failed")
        everywhere = admin.post("/api/admin/webhooks/recover", json={"since": since.isoformat()})
        assert result("/api/admin/webhooks/recover", "post", everywhere) == {"requeued": 4}
        set_status(backend, theirs, "failed")
        only = admin.post(
            "/api/admin/webhooks/recover",
            json={"since": since.isoformat(), "merchant": str(other.merchant_id)},
        )
        assert only.json()["result"] == {"requeued": 1}

        # enable and dialect
        set_status(backend, mine[2], "paused")
        assert result(f"{ADMIN_WH}/enable", "post", admin.post(f"{base}/enable")) == {"resumed": 1}
        chosen = admin.post(f"{by_name}/dialect", json={"dialect": "kiriminaja-2025"})
        assert result(f"{ADMIN_WH}/dialect", "post", chosen)["dialect"] == "kiriminaja-2025"
    assert api.http.get(WH).json()["result"]["dialect"] == "kiriminaja-2025"
    assert other.http.get(WH).json()["result"]["dialect"] == "kiriminaja-2024"


# -- bad input -----------------------------------------------------------------------------

STATUSES = "pending, delivered, failed, paused, no_endpoint"
BAD_TIME = "The {} field must be an ISO 8601 time with a timezone."
LIMIT = "The limit must be between 1 and 200."
HUGE = b'{"since": "' + b"x" * (1024 * 1024) + b'"}'
# (method, URL, query, JSON body or raw bytes, HTTP status, code, text)
D, R = f"{WH}/deliveries", f"{WH}/recover"
BAD: list[tuple[str, str, dict[str, str], Any, int, int, str]] = [
    ("get", D, {"status": "lost"}, None, 200, 422, f"The status must be one of: {STATUSES}."),
    ("get", D, {"limit": "0"}, None, 200, 422, LIMIT),
    ("get", D, {"limit": "201"}, None, 200, 422, LIMIT),
    ("get", D, {"limit": "ten"}, None, 200, 422, LIMIT),
    ("get", D, {"limit": "-5"}, None, 200, 422, LIMIT),
    ("get", D, {"cursor": "abc"}, None, 200, 422, "The cursor is invalid."),
    ("get", D, {"cursor": "\u00b2"}, None, 200, 422, "The cursor is invalid."),  # "²".isdigit()
    ("get", D, {"since": "yesterday"}, None, 200, 422, BAD_TIME.format("since")),
    ("get", D, {"since": "2031-03-01T00:00:00"}, None, 200, 422, BAD_TIME.format("since")),  # naive
    ("get", D, {"until": "2031-02-30T00:00:00Z"}, None, 200, 422, BAD_TIME.format("until")),
    ("get", D, {"order_id": "A\x00B"}, None, 200, 422, "The order_id format is invalid."),
    ("get", f"{D}/msg_nope", {}, None, 200, 2, "data not found"),
    ("get", f"{D}/{'m' * 65}", {}, None, 200, 2, "data not found"),
    ("post", f"{D}/msg%00/resend", {}, None, 200, 2, "data not found"),  # a NUL PostgreSQL cannot hold
    ("post", R, {}, {}, 200, 422, "The since field is required."),
    ("post", R, {}, {"since": 1700000000}, 200, 422, "The since field must be a string."),
    ("post", R, {}, {"since": "last week"}, 200, 422, BAD_TIME.format("since")),
    ("post", R, {}, {"since": "2000-01-01"}, 200, 422, BAD_TIME.format("since")),
    ("post", R, {}, b'{"since": ', 400, 400, "request body is not valid JSON"),
    ("post", R, {}, HUGE, 413, 413, "request body too large (limit 1 MiB)"),
    ("post", f"{WH}/dialect", {}, {"dialect": "kiriminaja-2099"}, 200, 422,
     "The dialect must be one of: kiriminaja-2024, kiriminaja-2025."),
    ("post", f"{WH}/dialect", {}, {"dialect": None}, 200, 422, "The dialect field is required."),
    ("post", f"{WH}/dialect", {}, [], 200, 422, "The request body must be a JSON object."),
]  # fmt: skip


def template(url: str) -> str:
    """The documented path of a URL (its event id as `{event_id}`)."""
    return re.sub(r"/deliveries/[^/]+", "/deliveries/{event_id}", url)


def test_bad_input_is_refused_and_changes_nothing(api: Api, backend: Backend, server: Server) -> None:
    hooked(api)
    orders_with_deliveries(api, server, 3)
    # something for every operation to change, were the input let through
    event_ids = [r["event_id"] for r in rows(backend, api.merchant_id)]
    set_status(backend, event_ids[0], "failed")
    set_status(backend, event_ids[1], "paused")
    set_created(backend, event_ids[0], T0)
    before = snapshot(backend, api.merchant_id)
    for method, url, params, payload, status, code, text in BAD:
        kw: dict[str, Any] = {"params": params}
        if isinstance(payload, bytes):
            kw["content"], kw["headers"] = payload, {"Content-Type": "application/json"}
        elif payload is not None:
            kw["json"] = payload
        r = api.http.request(method.upper(), url, **kw)
        refused(template(url), method, r, status, code, text)
        assert snapshot(backend, api.merchant_id) == before, (url, params, payload)


def test_bad_operator_input_is_refused_and_changes_nothing(
    api: Api, backend: Backend, server: Server
) -> None:
    hooked(api)
    orders_with_deliveries(api, server, 1)
    event_id = rows(backend, api.merchant_id)[0]["event_id"]
    set_status(backend, event_id, "failed")
    before = snapshot(backend, api.merchant_id)
    everyone = "/api/admin/webhooks/deliveries"
    with admin_client(server.base_url) as admin:
        for ref in ("no-such-merchant", "9" * 30, "²"):
            refused(
                ADMIN_WH,
                "get",
                admin.get(f"/api/admin/merchants/{ref}/webhooks"),
                200,
                2,
                f"no merchant {ref!r}",
            )
            refused(
                f"{ADMIN_WH}/enable",
                "post",
                admin.post(f"/api/admin/merchants/{ref}/webhooks/enable"),
                200,
                2,
                f"no merchant {ref!r}",
            )
            refused(
                everyone, "get", admin.get(everyone, params={"merchant": ref}), 200, 2, f"no merchant {ref!r}"
            )
        refused(
            everyone,
            "get",
            admin.get(everyone, params={"merchant": "a\x00"}),
            200,
            422,
            "The merchant format is invalid.",
        )
        refused(
            everyone, "get", admin.get(everyone, params={"since": "soon"}), 200, 422, BAD_TIME.format("since")
        )
        recover = "/api/admin/webhooks/recover"
        refused(
            recover,
            "post",
            admin.post(recover, json={"since": "2000-01-01T00:00:00Z", "merchant": "nobody"}),
            200,
            2,
            "no merchant 'nobody'",
        )
        refused(
            recover,
            "post",
            admin.post(recover, json={"merchant": str(api.merchant_id)}),
            200,
            422,
            "The since field is required.",
        )
        refused(
            recover,
            "post",
            admin.post(recover, json={"since": "2000-01-01T00:00:00Z", "merchant": 7}),
            200,
            422,
            "The merchant field must be a string.",
        )
        base = f"/api/admin/merchants/{api.merchant_id}/webhooks"
        refused(
            f"{ADMIN_WH}/dialect",
            "post",
            admin.post(f"{base}/dialect", json={"dialect": "x"}),
            200,
            422,
            "The dialect must be one of: kiriminaja-2024, kiriminaja-2025.",
        )
        refused(
            f"{ADMIN_WH}/recover",
            "post",
            admin.post(f"{base}/recover", json={"since": "0"}),
            200,
            422,
            BAD_TIME.format("since"),
        )
    assert snapshot(backend, api.merchant_id) == before


# -- the CLI -------------------------------------------------------------------------------


def test_cli_lists_shows_and_resends(api: Api, backend: Backend, server: Server) -> None:
    hooked(api)
    order_ids = orders_with_deliveries(api, server, 3, assigned=1)
    mine = [r["event_id"] for r in rows(backend, api.merchant_id)]
    env, merchant = backend.env(), str(api.merchant_id)

    listed = json.loads(lacak(env, "deliveries", "list", "--merchant", merchant, "--json").stdout)
    assert listed == api.http.get(f"{WH}/deliveries").json()["result"]  # the API's shape, exactly
    assert [d["event_id"] for d in listed["deliveries"]] == mine[::-1]
    paged = json.loads(
        lacak(env, "deliveries", "list", "--merchant", merchant, "--limit", "3", "--json").stdout
    )
    assert [d["event_id"] for d in paged["deliveries"]] == mine[::-1][:3] and paged["next_cursor"]
    rest = lacak(
        env,
        "deliveries",
        "list",
        "--merchant",
        merchant,
        "--limit",
        "3",
        "--cursor",
        paged["next_cursor"],
        "--json",
    )
    assert [d["event_id"] for d in json.loads(rest.stdout)["deliveries"]] == [mine[0]]
    human = lacak(env, "deliveries", "list", "--merchant", merchant, "--order-id", order_ids[0]).stdout
    assert [line.split()[0] for line in human.splitlines()] == [mine[3], mine[0]]

    set_status(backend, mine[1], "failed", attempts=8)
    failed = json.loads(
        lacak(env, "deliveries", "list", "--merchant", merchant, "--status", "failed", "--json").stdout
    )
    assert [d["event_id"] for d in failed["deliveries"]] == [mine[1]]
    set_created(backend, mine[2], T0)
    since = lacak(
        env, "deliveries", "list", "--merchant", merchant, "--since", "2031-03-01T07:00:00+07:00", "--json"
    )
    assert [d["event_id"] for d in json.loads(since.stdout)["deliveries"]] == [mine[2]]
    until = lacak(
        env, "deliveries", "list", "--merchant", merchant, "--until", "2031-03-01T00:00:00Z", "--json"
    )
    assert mine[2] not in until.stdout and mine[0] in until.stdout

    add_attempt(
        backend,
        mine[1],
        attempt=1,
        trigger="scheduled",
        started_at=T0,
        duration_ms=7.25,
        status_code=503,
        error_class="http",
        error="HTTP 503",
        response_body="busy\nretry later",
        outcome="failed",
    )
    shown = json.loads(lacak(env, "deliveries", "show", mine[1], "--json").stdout)
    assert shown == api.http.get(f"{WH}/deliveries/{mine[1]}").json()["result"]
    text = lacak(env, "deliveries", "show", mine[1]).stdout
    assert "HTTP 503" in text and "| busy" in text and "| retry later" in text and "scheduled" in text

    out = lacak(env, "deliveries", "resend", mine[1]).stdout
    assert mine[1] in out and "pending" in out
    resent = {r["event_id"]: r for r in rows(backend, api.merchant_id)}[mine[1]]
    assert resent["status"] == "pending" and resent["manual"]

    missing = lacak(env, "deliveries", "show", "msg_nope", check=False)
    assert missing.returncode == 1 and "data not found" in missing.stderr
    bad = lacak(env, "deliveries", "list", "--since", "2031-03-01", check=False)
    assert bad.returncode == 2 and "ISO 8601 time with a timezone" in bad.stderr


def run_with_tty_stderr(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`lacak ARGS` with stderr on a pseudo-terminal (so tqdm draws): code, stdout, stderr."""
    leader, follower = pty.openpty()
    # a fresh pty is 0 columns wide, and tqdm draws a bar as wide as the terminal
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lacak", *args], env=env, stdout=subprocess.PIPE, stderr=follower, text=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the follower side closed: the process is done with its stderr
            break
        if not chunk:
            break
        chunks.append(chunk)
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


def test_cli_recover_counts_and_shows_progress(
    api: Api, other: Api, backend: Backend, server: Server
) -> None:
    hooked(api)
    hooked(other)
    orders_with_deliveries(api, server, 4)
    orders_with_deliveries(other, server, 1)
    mine = [r["event_id"] for r in rows(backend, api.merchant_id)]
    theirs = rows(backend, other.merchant_id)[0]["event_id"]
    since = T0 + timedelta(days=800)  # only these rows are this far ahead
    for event_id in (*mine[1:], theirs):
        set_created(backend, event_id, since + timedelta(hours=1))
    for event_id in (*mine, theirs):
        set_status(backend, event_id, "failed", attempts=8)
    env, merchant = backend.env(), str(api.merchant_id)

    code, out, err = run_with_tty_stderr(
        env, "deliveries", "recover", "--since", since.isoformat(), "--merchant", merchant
    )
    assert code == 0, err
    assert (
        out.strip() == f"requeued 3 failed deliveries since {since.isoformat().replace('+00:00', '.000000Z')}"
    )
    assert "recover" in err and "3/3" in err  # the bar, with its total from count_failed
    statuses = {r["event_id"]: r["status"] for r in rows(backend, api.merchant_id)}
    assert statuses == {mine[0]: "failed", **dict.fromkeys(mine[1:], "pending")}
    assert rows(backend, other.merchant_id)[0]["status"] == "failed"

    # every merchant, and quiet when stderr is not a terminal
    everyone = lacak(env, "deliveries", "recover", "--since", since.isoformat())
    assert everyone.stdout.strip().startswith("requeued 1 failed delivery since") and everyone.stderr == ""
    assert rows(backend, other.merchant_id)[0]["status"] == "pending"
    again = lacak(env, "deliveries", "recover", "--since", since.isoformat(), "--merchant", merchant)
    assert again.stdout.startswith("requeued 0 failed deliveries")
    needs_since = lacak(env, "deliveries", "recover", check=False)
    assert needs_since.returncode == 2 and "--since" in needs_since.stderr


def test_cli_webhooks_secret_show_enable_dialect(api: Api, backend: Backend, server: Server) -> None:
    env, merchant = backend.env(), str(api.merchant_id)
    # no callback yet: `secret` makes one, and then keeps printing the same one
    made = lacak(env, "webhooks", "secret", merchant).stdout.strip()
    assert made.startswith("whsec_") and lacak(env, "webhooks", "secret", merchant).stdout.strip() == made
    with admin_client(server.base_url) as admin:
        base = f"/api/admin/merchants/{api.merchant_id}/webhooks"
        assert admin.get(f"{base}/secret").json()["result"] == {"webhook_secret": made}
    # set_callback does not replace an existing secret (so it hands none out)
    assert api.post("/api/mitra/set_callback", {"url": HOOK}).json()["result"] is None

    rotated = lacak(env, "webhooks", "secret", merchant, "--rotate")
    new = rotated.stdout.strip()
    assert new.startswith("whsec_") and new != made and "until" in rotated.stderr
    assert lacak(env, "webhooks", "secret", merchant).stdout.strip() == new
    stored = backend.query(
        "SELECT old_secret_enc FROM webhook_endpoints WHERE merchant_id = $1", api.merchant_id
    )
    assert (
        SecretBox(bytes.fromhex(SECRET_KEY)).open(stored[0]["old_secret_enc"], context=SECRET_CONTEXT) == made
    )

    shown = json.loads(lacak(env, "webhooks", "show", merchant, "--json").stdout)
    assert shown == api.http.get(WH).json()["result"]
    assert shown["url"] == HOOK and shown["rotating_until"] is not None

    orders_with_deliveries(api, server, 2)
    paused = rows(backend, api.merchant_id)[0]["event_id"]
    set_status(backend, paused, "paused")
    backend.query(
        "UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = 'gone' WHERE merchant_id = $1",
        api.merchant_id,
        T0,
    )
    assert (
        "disabled since 2031-03-01T00:00:00.000000Z (gone)" in lacak(env, "webhooks", "show", merchant).stdout
    )
    enabled = lacak(env, "webhooks", "enable", merchant).stdout
    assert "1 paused deliveries resumed" in enabled
    assert rows(backend, api.merchant_id)[0]["status"] == "pending"
    assert api.http.get(WH).json()["result"]["disabled_at"] is None

    assert "kiriminaja-2025" in lacak(env, "webhooks", "dialect", merchant, "kiriminaja-2025").stdout
    assert api.http.get(WH).json()["result"]["dialect"] == "kiriminaja-2025"
    unknown = lacak(env, "webhooks", "show", "no-such-merchant", check=False)
    assert unknown.returncode == 1 and "no merchant" in unknown.stderr


@pytest.mark.parametrize(
    "text", ["2031-03-01T00:00:00Z", "2031-03-01T07:00:00+07:00", "2031-03-01T00:00:00.5-00:30"]
)
def test_times_are_read_with_their_offset(text: str) -> None:
    from lacak.http.webhooks import parse_time

    parsed = parse_time(text, "since")
    assert parsed.tzinfo is UTC and parsed == datetime.fromisoformat(text)
