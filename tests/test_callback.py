"""set_callback: accepted URLs, and the outbox rows that follow."""

from __future__ import annotations

from pathlib import Path

from standardwebhooks.webhooks import Webhook

from tests.support import Api, Backend, Server, advance, create_merchant, create_order


def _set(api: Api, url: str) -> dict[str, object]:
    body: dict[str, object] = api.post("/api/mitra/set_callback", {"url": url}).json()
    return body


def test_public_url_is_accepted_in_kiriminaja_words(api: Api, backend: Backend) -> None:
    url = "https://93.184.216.34/kiriminaja/webhook"
    first = _set(api, url)
    secret = first.pop("result")
    assert first == {"status": True, "text": f"Callback di set ke {url}", "code": 0, "method": "set_callback"}
    # The first set_callback hands out the signing secret once; later ones never show it again.
    assert isinstance(secret, dict) and set(secret) == {"webhook_secret"}
    assert str(secret["webhook_secret"]).startswith("whsec_")
    Webhook(str(secret["webhook_secret"]))  # a secret the standardwebhooks package accepts
    again = _set(api, url + "2")
    assert again["status"] is True and again["result"] is None
    rows = backend.query("SELECT callback_url FROM merchants WHERE id = $1", api.merchant_id)
    assert rows == [{"callback_url": url + "2"}]


def test_outbox_rows_wait_for_an_endpoint_then_queue(api: Api, backend: Backend, server: Server) -> None:
    first = create_order(api)
    _set(api, "https://93.184.216.34/hook")
    second = create_order(api)
    advance(server.base_url, second["order_id"], "driver_assigned", merchant=str(api.merchant_id))
    rows = backend.query(
        "SELECT o.order_id, d.seq, d.state, d.status FROM deliveries d JOIN orders o ON o.id = d.order_pk"
        " WHERE d.merchant_id = $1 ORDER BY d.id",
        api.merchant_id,
    )
    assert [(r["order_id"], r["seq"], r["state"], r["status"]) for r in rows] == [
        (first["order_id"], 2, "finding_driver", "no_endpoint"),
        (second["order_id"], 2, "finding_driver", "pending"),
        (second["order_id"], 3, "driver_assigned", "pending"),
    ]


def test_private_targets_when_the_operator_allows_them(backend: Backend, tmp_path: Path) -> None:
    srv = Server(backend.env(LACAK_WEBHOOK_ALLOW_PRIVATE="1"), tmp_path / "server.log").start()
    try:
        api = create_merchant(srv.base_url)
        assert _set(api, "http://127.0.0.1:9/hook")["status"] is True
    finally:
        srv.stop()


def test_private_targets_refused_by_default(api: Api, backend: Backend) -> None:
    body = _set(api, "http://127.0.0.1:9/hook")
    assert body["status"] is False and body["code"] == 2
    rows = backend.query("SELECT callback_url FROM merchants WHERE id = $1", api.merchant_id)
    assert rows == [{"callback_url": None}]
