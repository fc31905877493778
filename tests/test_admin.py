"""The operator API."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import Api, Backend, Server, admin_client, create_order


def test_merchant_list_and_order_history(server: Server, api: Api) -> None:
    pkg = create_order(api)
    with admin_client(server.base_url) as admin:
        merchants = admin.get("/api/admin/merchants").json()["result"]
        assert any(m["merchant_id"] == api.merchant_id and m["active_keys"] == 1 for m in merchants)
        assert all("api_key" not in m for m in merchants)
        adv = admin.post(
            f"/api/admin/orders/{pkg['order_id']}/advance",
            json={
                "state": "driver_assigned",
                "merchant": str(api.merchant_id),
                "driver_name": "Sri",
                "driver_phone": "081211112222",
            },
        ).json()
        assert adv["result"]["outcome"] == "applied" and adv["result"]["seq"] == 3
        got = admin.get(
            f"/api/admin/orders/{pkg['order_id']}", params={"merchant": str(api.merchant_id)}
        ).json()["result"]
    assert got["tracking"]["driver"]["name"] == "Sri"
    assert [(h["seq"], h["state"], h["source"]) for h in got["history"]] == [
        (1, "created", "api"),
        (2, "finding_driver", "api"),
        (3, "driver_assigned", "operator"),
    ]


def test_admin_input_errors_are_envelopes(server: Server, api: Api) -> None:
    pkg = create_order(api)
    with admin_client(server.base_url) as admin:
        bad_state = admin.post(f"/api/admin/orders/{pkg['order_id']}/advance", json={"state": "teleported"})
        assert bad_state.status_code == 200
        assert (
            bad_state.json()["code"] == 422 and bad_state.json()["text"] == "The selected state is invalid."
        )
        missing = admin.post("/api/admin/orders/NOPE-1/advance", json={"state": "delivered"})
        assert missing.json() == {
            "status": False,
            "text": "data not found",
            "code": 2,
            "method": None,
            "result": None,
        }
        no_name = admin.post("/api/admin/merchants", json={})
        assert no_name.json()["text"] == "The name field is required."
        # merchant references that cannot exist: a digit int() refuses, beyond BIGINT, a NUL
        for ref in ("%C2%B2", "9" * 30, "a%00b"):
            odd = admin.post(f"/api/admin/merchants/{ref}/keys/rotate")
            assert odd.status_code < 500 and odd.json()["status"] is False, (ref, odd.text)
    assert api.track(pkg["order_id"]).json()["result"]["status_name"] == "finding_driver"


def test_ambiguous_order_id_needs_a_merchant(server: Server, api: Api, other: Api) -> None:
    pkg = create_order(api)
    p = {
        "service": "gosend",
        "service_type": "instant",
        "vehicle": "motor",
        "packages": [{**_pkg(), "order_id": pkg["order_id"]}],
    }
    assert other.post("/api/mitra/v4/instant/pickup/request", p).json()["status"] is True
    with admin_client(server.base_url) as admin:
        r = admin.post(f"/api/admin/orders/{pkg['order_id']}/advance", json={"state": "at_pickup"}).json()
        assert r["status"] is False and "several merchants" in r["text"]
        r = admin.post(
            f"/api/admin/orders/{pkg['order_id']}/advance",
            json={"state": "at_pickup", "merchant": str(other.merchant_id)},
        ).json()
        assert r["result"]["outcome"] == "applied"
    assert api.track(pkg["order_id"]).json()["result"]["status_name"] == "finding_driver"
    assert other.track(pkg["order_id"]).json()["result"]["status_name"] == "at_pickup"


def _pkg() -> dict[str, object]:
    from tests.support import package

    return package()


def test_admin_api_is_off_without_a_token(backend: Backend, tmp_path: Path) -> None:
    env = backend.env()
    env.pop("LACAK_ADMIN_TOKEN")
    srv = Server(env, tmp_path / "server.log").start()
    try:
        r = httpx.get(f"{srv.base_url}/api/admin/merchants", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 401 and "LACAK_ADMIN_TOKEN" in r.json()["text"]
    finally:
        srv.stop()
