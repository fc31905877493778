"""Payment state: paid on creation by default, or prepaid until an operator marks it paid."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support import (
    Api,
    Backend,
    Server,
    admin_client,
    create_merchant,
    create_order,
    lacak,
    package,
    pickup,
)


def _payment(api: Api, payment_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.post("/api/mitra/v2/get_payment", {"payment_id": payment_id}).json()
    return body


def _create(api: Api, n: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = api.post(
        "/api/mitra/v4/instant/pickup/request", pickup([package() for _ in range(n)])
    ).json()
    assert body["status"] is True, body
    return body["result"]


def test_default_orders_are_paid_on_creation(api: Api) -> None:
    result = _create(api, 2)
    pay = result["payment"]
    assert pay["status_code"] == "paid" and pay["amount"] == 70000 and pay["pay_time"]
    assert [p["status"] for p in result["packages"]] == [105, 105]
    got = _payment(api, pay["payment_id"])
    assert got["text"] == "get_payment" and got["status"] is True
    assert got["result"]["status_code"] == 0 and got["result"]["amount"] == 70000
    assert [p["order_id"] for p in got["result"]["packages"]] == [p["order_id"] for p in result["packages"]]
    assert list(got["result"]["packages"][0]["origin"]) == [
        "name",
        "address",
        "phone",
        "latitude",
        "longitude",
    ]


def _mark_paid_admin(server: Server, merchant_id: int, payment_id: str) -> None:
    with admin_client(server.base_url) as admin:
        r = admin.post(f"/api/admin/payments/{payment_id}/paid", json={"merchant": str(merchant_id)})
    assert r.json()["status"] is True, r.json()


def _mark_paid_cli(backend: Backend, merchant_id: int, payment_id: str) -> None:
    out = lacak(backend.env(), "payment", "paid", payment_id, "--merchant", str(merchant_id))
    assert "paid" in out.stdout


def test_prepaid_orders_wait_until_marked_paid(server: Server, backend: Backend) -> None:
    for mark in (lambda m, p: _mark_paid_admin(server, m, p), lambda m, p: _mark_paid_cli(backend, m, p)):
        api = create_merchant(server.base_url, prepaid=True)
        result = _create(api)
        pay, pkg = result["payment"], result["packages"][0]
        assert pay["status_code"] == "unpaid" and pay["pay_time"] is None
        assert pkg["status"] == 100
        assert api.track(pkg["order_id"]).json()["result"]["status_name"] == "created"
        assert _payment(api, pay["payment_id"])["result"]["status_code"] == 9
        # A created order cannot look for a driver before it is paid.
        nd = api.post("/api/mitra/v4/instant/pickup/find-new-driver", {"order_id": pkg["order_id"]})
        assert nd.json()["text"] == "order id yang dipilih tidak valid."
        mark(api.merchant_id, pay["payment_id"])
        assert api.track(pkg["order_id"]).json()["result"]["status_name"] == "finding_driver"
        paid = _payment(api, pay["payment_id"])["result"]
        assert paid["status_code"] == 0 and paid["pay_time"]
        assert paid["packages"][0]["status"] == 105


def test_prepaid_order_can_be_voided_before_payment(server: Server) -> None:
    api = create_merchant(server.base_url, prepaid=True)
    pkg = create_order(api)
    r = api.http.delete(f"/api/mitra/v4/instant/pickup/void/{pkg['order_id']}").json()
    assert r["status"] is True and r["result"]["payment"]["status_code"] == 9
    assert r["result"]["packages"][0]["status"] == 300


def test_payment_ids_are_unique_within_one_second(api: Api) -> None:
    ids = {_create(api)["payment"]["payment_id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(i.startswith("PID-") and i[4:].isdigit() for i in ids)


def test_concurrent_creations_get_distinct_payment_ids(server: Server, api: Api) -> None:
    # Payment ids are `PID-<epoch seconds>`, bumped past taken ones: requests in the same
    # second must still all succeed, each with its own id.
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _create(api), range(8)))
    ids = [r["payment"]["payment_id"] for r in results]
    assert len(set(ids)) == 8, ids
