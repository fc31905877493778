"""The stored tracking view: what lookups send, and the rendering it must always agree with."""

from __future__ import annotations

import json

from tests.support import Api, Backend, Server, advance, create_order


def _pk(backend: Backend, api: Api, order_id: str) -> int:
    sql = "SELECT id FROM orders WHERE merchant_id = $1 AND order_id = $2"
    rows = backend.query(sql, api.merchant_id, order_id)
    return int(rows[0]["id"])


def test_stored_view_is_what_lookups_send_and_equals_a_fresh_render(
    api: Api, backend: Backend, server: Server
) -> None:
    oid = create_order(api)["order_id"]
    advance(server.base_url, oid, "driver_assigned", merchant=str(api.merchant_id), driver_name="Tono")
    pk = _pk(backend, api, oid)
    stored = backend.query("SELECT tracking_json FROM orders WHERE id = $1", pk)[0]["tracking_json"]
    fast = api.track(oid)
    assert json.loads(stored) == fast.json()["result"]
    assert json.loads(stored)["driver"]["name"] == "Tono"  # refreshed by the state change
    # Without a stored view (rows from before it existed, or a link changed) the lookup renders
    # from the columns: the same bytes and the same ETag.
    backend.query("UPDATE orders SET tracking_json = NULL WHERE id = $1 RETURNING id", pk)
    slow = api.track(oid)
    assert slow.content == fast.content
    assert slow.headers["etag"] == fast.headers["etag"]
