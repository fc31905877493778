"""The `lacak` command, run as a real subprocess against both databases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.support import Api, Backend, Server, create_order, lacak


def test_merchant_create_prints_a_key_once_and_it_works(backend: Backend, server: Server) -> None:
    out = json.loads(lacak(backend.env(), "merchant", "create", f"cli-{backend.name}-1", "--json").stdout)
    assert set(out) == {"merchant_id", "api_key"}
    assert re.fullmatch(r"[0-9a-f]{64}", out["api_key"])
    api = Api(server.base_url, out["api_key"], out["merchant_id"])
    assert api.track("NONE-1").json()["text"] == "data not found"
    stored = backend.query(
        "SELECT key_hash, key_enc FROM api_keys WHERE merchant_id = $1", out["merchant_id"]
    )
    assert out["api_key"] not in json.dumps(stored)  # only a hash and a sealed copy at rest
    listed = json.loads(lacak(backend.env(), "merchant", "list", "--json").stdout)
    mine = next(m for m in listed if m["merchant_id"] == out["merchant_id"])
    assert mine["active_keys"] == 1 and out["api_key"] not in json.dumps(listed)


def test_duplicate_merchant_name_is_a_clear_error(backend: Backend) -> None:
    lacak(backend.env(), "merchant", "create", f"cli-{backend.name}-dup")
    again = lacak(backend.env(), "merchant", "create", f"cli-{backend.name}-dup", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_key_rotate_replaces_the_key(backend: Backend, server: Server) -> None:
    out = json.loads(lacak(backend.env(), "merchant", "create", f"cli-{backend.name}-rot", "--json").stdout)
    new = json.loads(lacak(backend.env(), "key", "rotate", str(out["merchant_id"]), "--json").stdout)
    assert new["api_key"] != out["api_key"]
    r = httpx.get(
        f"{server.base_url}/api/mitra/v4/instant/tracking/X-1",
        headers={"Authorization": f"Bearer {new['api_key']}"},
    )
    assert r.status_code == 200


def test_order_advance_and_show(backend: Backend, api: Api) -> None:
    pkg = create_order(api)
    oid = pkg["order_id"]
    done = lacak(
        backend.env(),
        "order",
        "advance",
        oid,
        "driver_assigned",
        "--driver-name",
        "Budi",
        "--driver-phone",
        "081234567890",
        "--tracking-code",
        "GK-11-1",
    )
    assert "applied" in done.stdout and "seq=3" in done.stdout
    result = api.track(oid).json()["result"]
    assert result["driver"]["name"] == "Budi" and result["tracking_code"] == "GK-11-1"
    stale = lacak(backend.env(), "order", "advance", oid, "finding_driver", check=False)
    assert stale.returncode == 0  # driver change: finding_driver is an allowed backward move
    refused = lacak(backend.env(), "order", "advance", oid, "created", check=False)
    assert refused.returncode == 1 and "stale" in refused.stdout
    shown = json.loads(lacak(backend.env(), "order", "show", oid).stdout)
    assert [h["state"] for h in shown["history"]] == [
        "created",
        "finding_driver",
        "driver_assigned",
        "finding_driver",
        "created",
    ]
    assert [h["outcome"] for h in shown["history"]][-1] == "stale"


def test_unknown_order_is_a_clear_error(backend: Backend) -> None:
    r = lacak(backend.env(), "order", "advance", "NOPE-404", "delivered", check=False)
    assert r.returncode == 1 and "data not found" in r.stderr and "Traceback" not in r.stderr


def test_demo_creates_orders_and_prints_working_examples(backend: Backend, server: Server) -> None:
    out = lacak(backend.env(), "demo", "--base-url", server.base_url).stdout
    key = re.search(r"API key: ([0-9a-f]{64})", out)
    order_id = re.search(r"tracking/(DEMO-\d+)", out)
    assert key and order_id and "from kiriminaja import KiriminAja" in out
    r = httpx.get(
        f"{server.base_url}/api/mitra/v4/instant/tracking/{order_id.group(1)}",
        headers={"Authorization": f"Bearer {key.group(1)}"},
    ).json()
    assert r["result"]["status_name"] == "finding_driver"  # the simulator (parked in tests) takes it on
    # Running it again reuses the same merchant and key.
    again = lacak(backend.env(), "demo", "--base-url", server.base_url).stdout
    assert key.group(1) in again


def test_embedded_default_migrates_itself(tmp_path: Path) -> None:
    from tests.support import server_env

    env = server_env("", tmp_path / "data")
    env.pop("LACAK_DATABASE_URL")
    out = json.loads(lacak(env, "merchant", "create", "first", "--json").stdout)
    assert out["merchant_id"] == 1
    assert (tmp_path / "data" / "lacak.db").exists()


def test_migrate_is_idempotent(backend: Backend) -> None:
    from lacak.storage.migrate import head_revision

    head = head_revision()
    assert head is not None
    assert f"migrated to {head}" in lacak(backend.env(), "migrate").stdout
    assert f"migrated to {head}" in lacak(backend.env(), "migrate").stdout
    rows = backend.query("SELECT version_num FROM alembic_version")
    assert rows == [{"version_num": head}]


def test_unmigrated_postgres_is_refused_with_a_clear_message(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "postgres":
        return  # the embedded default migrates itself (test_embedded_default_migrates_itself)
    from tests.support import postgres_database, server_env

    with postgres_database() as url:
        r = lacak(server_env(url, tmp_path), "merchant", "list", check=False)
    assert r.returncode == 1 and "run `lacak migrate`" in r.stderr and "Traceback" not in r.stderr
