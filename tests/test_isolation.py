"""Merchants are walled off from each other; keys are checked, revocable, and never logged."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
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
    lacak,
    pickup,
)

TRACK = "/api/mitra/v4/instant/tracking/{}"
VOID = "/api/mitra/v4/instant/pickup/void/{}"
FIND = "/api/mitra/v4/instant/pickup/find-new-driver"
PAY = "/api/mitra/v2/get_payment"
CREATE = "/api/mitra/v4/instant/pickup/request"
ENVELOPE_KEYS = ["status", "text", "code", "method", "result"]
REVOKE_WITHIN = 5.0
# Headers that differ on every response whatever it says.
PER_RESPONSE = {"date", "x-request-id"}

Call = tuple[str, str, Any]  # method, path, JSON body


def order_calls(order_id: str, payment_id: str) -> list[Call]:
    """Every merchant action on one order and its payment; the one that changes it last."""
    return [
        ("GET", TRACK.format(order_id), None),
        ("POST", FIND, {"order_id": order_id}),
        ("POST", PAY, {"payment_id": payment_id}),
        ("DELETE", VOID.format(order_id), None),
    ]


def send(http: httpx.Client, call: Call, **kw: Any) -> httpx.Response:
    method, path, body = call
    return http.request(method, path, json=body, **kw)


def answer(r: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Everything a client could tell two responses apart by."""
    headers = {k: v for k, v in r.headers.items() if k not in PER_RESPONSE}
    return r.status_code, headers, r.content


def place_order(api: Api, prefix: str) -> tuple[str, str]:
    body = api.post(CREATE, pickup(order_prefix=prefix)).json()
    assert body["status"] is True, body
    return body["result"]["packages"][0]["order_id"], body["result"]["payment"]["payment_id"]


def snapshot(server: Server, backend: Backend, api: Api, order_id: str) -> tuple[Any, ...]:
    """The owner's view of an order plus the rows behind it: equal snapshots, nothing changed."""
    r = api.track(order_id)
    with admin_client(server.base_url) as admin:
        seq = admin.get(f"/api/admin/orders/{order_id}", params={"merchant": api.merchant_id}).json()
    return r.content, r.headers["etag"], seq["result"]["seq"], backend.counts(api.merchant_id)


def test_foreign_orders_answer_exactly_like_unknown_ones(
    server: Server, backend: Backend, api: Api, other: Api
) -> None:
    owned = {api.key: place_order(api, "AAA")}
    # Payment ids are "PID-<epoch s>" per merchant: give the other merchant a later second, so
    # that neither happens to hold a payment id equal to the one it probes.
    time.sleep(max(0.0, int(owned[api.key][1].removeprefix("PID-")) + 1 - time.time()))
    owned[other.key] = place_order(other, "BBB")
    assert owned[other.key][1] != owned[api.key][1]

    for owner, intruder in ((api, other), (other, api)):
        order_id, payment_id = owned[owner.key]
        before = snapshot(server, backend, owner, order_id)
        foreign = order_calls(order_id, payment_id)
        unknown = order_calls("ZZZ-1234567890123", "PID-1234567890")
        for theirs, nobodys in zip(foreign, unknown, strict=True):
            conditional = {"If-None-Match": before[1]}  # the owner's ETag must not give a 304
            got = send(intruder.http, theirs, headers=conditional)
            assert got.status_code == 200 and got.json()["status"] is False, (theirs, got.text)
            assert answer(got) == answer(send(intruder.http, nobodys, headers=conditional)), theirs
        assert snapshot(server, backend, owner, order_id) == before

        # Positive control: the owner can do each of those things.
        for mine in foreign:
            r = send(owner.http, mine)
            assert r.status_code == 200 and r.json()["status"] is True, (mine, r.text)
        assert owner.track(order_id).json()["result"]["status_name"] == "cancelled"


# -- authentication ---------------------------------------------------------------------------

Headers = Callable[[str], dict[str, Any]]
BAD_AUTH: dict[str, Headers] = {
    "missing": lambda key: {},
    "empty": lambda key: {"Authorization": ""},
    "scheme-only": lambda key: {"Authorization": "Bearer"},
    "no-scheme": lambda key: {"Authorization": key},
    "basic": lambda key: {"Authorization": f"Basic {key}"},
    "token": lambda key: {"Authorization": f"Token {key}"},
    "wrong-key": lambda key: {"Authorization": f"Bearer {secrets.token_hex(32)}"},
    "uppercased": lambda key: {"Authorization": f"Bearer {key.upper()}"},
    "one-short": lambda key: {"Authorization": f"Bearer {key[:-1]}"},
    "one-long": lambda key: {"Authorization": f"Bearer {key}0"},
    "two-keys": lambda key: {"Authorization": f"Bearer {key} {key}"},
    "huge": lambda key: {"Authorization": f"Bearer {key * 20}"},
    "non-ascii": lambda key: {"Authorization": b"Bearer " + key.encode()[:-1] + b"\xe9"},
    "admin-token": lambda key: {"Authorization": f"Bearer {ADMIN_TOKEN}"},
}


def merchant_calls(order_id: str) -> list[Call]:
    return [
        *order_calls(order_id, "PID-1234567890"),
        (
            "POST",
            "/api/mitra/v4/instant/pricing",
            {"origin": {"lat": -7.80, "long": 110.35}, "destination": {"lat": -7.73, "long": 110.40}},
        ),
        ("POST", CREATE, pickup()),
        ("POST", "/api/mitra/set_callback", {"url": "https://example.com/hook"}),
    ]


def assert_unauthorized(r: httpx.Response) -> None:
    assert r.status_code == 401, (r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ENVELOPE_KEYS
    assert isinstance(body["text"], str) and body["text"]
    assert body == {"status": False, "text": body["text"], "code": 401, "method": None, "result": None}


@pytest.mark.parametrize("variant", list(BAD_AUTH))
def test_bad_credentials_get_401(server: Server, backend: Backend, api: Api, variant: str) -> None:
    order_id = create_order(api)["order_id"]
    before = backend.counts()
    with httpx.Client(base_url=server.base_url, timeout=30) as anonymous:
        for call in merchant_calls(order_id):
            assert_unauthorized(send(anonymous, call, headers=BAD_AUTH[variant](api.key)))
    assert backend.counts() == before
    assert api.track(order_id).json()["result"]["status_name"] == "finding_driver"


def works(server: Server, key: str) -> bool:
    r = httpx.get(
        f"{server.base_url}{TRACK.format('ZZZ-1')}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert r.status_code in (200, 401), r.text
    if r.status_code == 401:
        assert_unauthorized(r)
    return r.status_code == 200


def admin_post(server: Server, api: Api, action: str) -> str | None:
    with admin_client(server.base_url) as admin:
        body = admin.post(f"/api/admin/merchants/{api.merchant_id}/keys/{action}").json()
    assert body["status"] is True, body
    assert body["result"]["merchant_id"] == api.merchant_id
    key: str | None = body["result"].get("api_key")
    return key


def cli(server: Server, api: Api, action: str) -> str | None:
    if action == "rotate":
        done = lacak(server.env, "key", "rotate", str(api.merchant_id), "--json")
        key: str = json.loads(done.stdout)["api_key"]
        return key
    lacak(server.env, "key", "revoke", str(api.merchant_id))
    return None


KeyChange = Callable[[Server, Api, str], str | None]
CHANGES: dict[str, tuple[KeyChange, str]] = {
    "admin-revoke": (admin_post, "revoke"),
    "cli-revoke": (cli, "revoke"),
    "admin-rotate": (admin_post, "rotate"),
    "cli-rotate": (cli, "rotate"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_revoked_and_rotated_keys_stop_working(server: Server, api: Api, other: Api, change: str) -> None:
    assert works(server, api.key), "the key worked before"  # and is now in the key cache
    action, verb = CHANGES[change]
    new_key = action(server, api, verb)
    if verb == "rotate":
        assert new_key and new_key != api.key
        assert works(server, new_key), "a rotated key works at once"
    deadline = time.monotonic() + REVOKE_WITHIN
    while works(server, api.key):
        assert time.monotonic() < deadline, f"old key still accepted {REVOKE_WITHIN}s after {change}"
        time.sleep(0.1)
    assert not works(server, api.key)
    assert works(server, other.key), "another merchant's key is untouched"
    if new_key:
        assert works(server, new_key)


# -- the admin API ----------------------------------------------------------------------------


def admin_calls(merchant_id: int, order_id: str, payment_id: str) -> list[Call]:
    base = f"/api/admin/merchants/{merchant_id}"
    return [
        ("GET", "/api/admin/merchants", None),
        ("POST", "/api/admin/merchants", {"name": f"intruder-{secrets.token_hex(4)}"}),
        ("POST", f"{base}/keys/rotate", None),
        ("POST", f"{base}/keys/revoke", None),
        ("GET", f"/api/admin/orders/{order_id}", None),
        ("POST", f"/api/admin/orders/{order_id}/advance", {"state": "delivered"}),
        ("POST", f"/api/admin/payments/{payment_id}/paid", {"merchant": str(merchant_id)}),
    ]


ADMIN_REFUSED: dict[str, Headers] = {
    "merchant-key": lambda key: {"Authorization": f"Bearer {key}"},
    "wrong-token": lambda key: {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    "token-prefix": lambda key: {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
    "token-wrong-scheme": lambda key: {"Authorization": f"Token {ADMIN_TOKEN}"},
    "missing": lambda key: {},
}


@pytest.mark.parametrize("variant", list(ADMIN_REFUSED))
def test_admin_api_refuses_all_but_the_admin_token(server: Server, backend: Backend, variant: str) -> None:
    owner = create_merchant(server.base_url, prepaid=True)  # so that mark-paid would change something
    order_id, payment_id = place_order(owner, "ADM")
    before = backend.counts(), snapshot(server, backend, owner, order_id)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for call in admin_calls(owner.merchant_id, order_id, payment_id):
            assert_unauthorized(send(http, call, headers=ADMIN_REFUSED[variant](owner.key)))
    assert (backend.counts(), snapshot(server, backend, owner, order_id)) == before
    assert works(server, owner.key), "neither rotated nor revoked"
    # Positive control: the same calls with the admin token are accepted.
    with admin_client(server.base_url) as admin:
        assert admin.get(f"/api/admin/orders/{order_id}").json()["status"] is True


# -- logs -------------------------------------------------------------------------------------


def access_lines(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "path" in record and "status" in record:
            out.append(record)
    return out


def test_api_keys_never_reach_the_log(backend: Backend, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    srv = Server(backend.env(LACAK_ACCESS_LOG="1", LACAK_LOG_LEVEL="INFO"), log).start()
    wrong = secrets.token_hex(32)
    try:
        api = create_merchant(srv.base_url)
        order_id = create_order(api)["order_id"]
        assert api.track(order_id).status_code == 200
        api.post(PAY, {"payment_id": "PID-1234567890"})
        for variant in ("one-long", "no-scheme", "basic"):
            assert_unauthorized(
                httpx.get(f"{srv.base_url}{TRACK.format(order_id)}", headers=BAD_AUTH[variant](api.key))
            )
        assert_unauthorized(
            httpx.get(f"{srv.base_url}{TRACK.format(order_id)}", headers={"Authorization": f"Bearer {wrong}"})
        )
        rotated = admin_post(srv, api, "rotate")
        assert rotated and works(srv, rotated)
        assert not works(srv, api.key)
    finally:
        srv.stop()

    text = log.read_text()
    for secret in (api.key, wrong, rotated, ADMIN_TOKEN):
        assert secret not in text
    seen = {(r.get("method"), r["path"], r["status"]) for r in access_lines(log)}
    tracked = TRACK.format(order_id)
    assert {("GET", tracked, 200), ("GET", tracked, 401), ("POST", CREATE, 200)} <= seen, seen
