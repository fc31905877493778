"""Health, readiness, metrics and request ids on a real server."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import Api, Backend, Server, create_order


def test_healthz_and_readyz(server: Server) -> None:
    assert httpx.get(f"{server.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.base_url}/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "reachable"


def test_readyz_reports_an_unreachable_database(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "postgres":
        # SQLite is a file: "unreachable" would mean a broken disk; PostgreSQL can go away.
        return
    srv = Server(backend.env(), tmp_path / "server.log").start()
    try:
        db = backend.database_url.rsplit("/", 1)[1]
        backend.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            db,
        )
        # The pool's connections were killed; readyz must say so or recover, never hang or 500.
        r = httpx.get(f"{srv.base_url}/readyz", timeout=10)
        assert r.status_code in (200, 503)
        assert httpx.get(f"{srv.base_url}/readyz", timeout=10).status_code == 200
    finally:
        srv.stop()


def test_metrics_count_requests_lookups_and_state_changes(api: Api) -> None:
    pkg = create_order(api)
    api.track(pkg["order_id"])
    api.track("NOPE-1")
    text = httpx.get(f"{api.base_url}/metrics").text
    assert 'lacak_tracking_lookups_total{result="found"}' in text
    assert 'lacak_tracking_lookups_total{result="not_found"}' in text
    assert 'route="/api/mitra/v4/instant/tracking/{order_id:path}"' in text
    assert 'lacak_http_request_seconds_bucket{le="0.005",method="GET"' in text
    assert "lacak_orders_created_total" in text


def test_state_change_metric(api: Api) -> None:
    pkg = create_order(api)
    api.http.delete(f"/api/mitra/v4/instant/pickup/void/{pkg['order_id']}")
    text = httpx.get(f"{api.base_url}/metrics").text
    assert 'lacak_state_changes_total{outcome="applied",state="cancelled"}' in text


def test_request_id_is_returned_and_propagated(api: Api) -> None:
    r = api.http.get("/api/mitra/v4/instant/tracking/X-1")
    assert len(r.headers["x-request-id"]) == 16
    r = api.http.get("/api/mitra/v4/instant/tracking/X-1", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    bad = api.http.get("/api/mitra/v4/instant/tracking/X-1", headers={"X-Request-ID": "a b\tc" * 40})
    assert bad.headers["x-request-id"] != "a b\tc" * 40


def test_json_access_log_carries_request_id(backend: Backend, tmp_path: Path) -> None:
    import json

    log = tmp_path / "server.log"
    srv = Server(backend.env(LACAK_ACCESS_LOG="1", LACAK_LOG_LEVEL="INFO"), log).start()
    try:
        httpx.get(f"{srv.base_url}/healthz", headers={"X-Request-ID": "trace-me"})
    finally:
        srv.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [x for x in lines if x.get("logger") == "lacak.access" and x.get("request_id") == "trace-me"]
    assert access and access[0]["status"] == 200 and access[0]["path"] == "/healthz"


def test_trailing_slash_is_an_envelope_not_a_redirect(api: Api) -> None:
    r = api.post("/api/mitra/v4/instant/pricing/", {})
    assert r.status_code == 404
    assert r.json() == {
        "status": False,
        "text": "route not found",
        "code": 404,
        "method": None,
        "result": None,
    }
