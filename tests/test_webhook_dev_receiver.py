"""`lacak webhooks receive`: the development receiver verifies what lacak signs."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lacak.webhooks import receiver, signing

pytestmark = pytest.mark.anyio
BODY = b'{"method":"update_instant_packages","data":{"order_id":"X-1","seq":2}}'


async def post(secret: str | None, headers: dict[str, str], body: bytes = BODY) -> tuple[int, list[str]]:
    seen: list[str] = []
    async with TestClient(TestServer(receiver.app(secret, seen.append))) as client:
        resp = await client.post("/webhook", data=body, headers=headers)
        return resp.status, seen


async def test_a_signed_delivery_verifies_and_is_printed() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_1", int(time.time()), BODY)
    status, seen = await post(secret, headers)
    assert status == 200
    assert seen == [f"msg_1 verified\n{BODY.decode()}"]


async def test_a_tampered_body_or_wrong_secret_is_refused() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_2", int(time.time()), BODY)
    status, seen = await post(secret, headers, BODY.replace(b"X-1", b"X-2"))
    assert status == 401 and seen[0].startswith("REJECTED msg_2")
    status, _ = await post(signing.new_secret(), headers)
    assert status == 401


async def test_an_old_timestamp_is_refused() -> None:
    secret = signing.new_secret()
    headers = signing.headers([secret], "msg_3", int(time.time()) - 600, BODY)
    status, seen = await post(secret, headers)
    assert status == 401 and "too old" in seen[0]


async def test_without_a_secret_it_only_prints() -> None:
    status, seen = await post(None, {"webhook-id": "msg_4"})
    assert status == 200 and seen == [f"msg_4 unverified (no --secret)\n{BODY.decode()}"]
