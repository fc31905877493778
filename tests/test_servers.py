"""The same ASGI app under granian, and uvicorn with several workers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import Backend, Server, create_merchant, create_order, free_port


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server did not start")


def test_granian_serves_the_same_app(backend: Backend, tmp_path: Path) -> None:
    granian = shutil.which("granian", path=str(Path(sys.executable).parent))
    assert granian, "granian is a test dependency"
    port = free_port()
    proc = subprocess.Popen(
        [
            granian,
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "lacak.http.asgi:app",
        ],
        env=backend.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/healthz", proc)
        api = create_merchant(base)
        pkg = create_order(api)
        body = api.track(pkg["order_id"]).json()
        assert body["status"] is True and body["result"]["order_id"] == pkg["order_id"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_two_workers_share_one_database(backend: Backend, tmp_path: Path) -> None:
    srv = Server(backend.env(), tmp_path / "server.log", workers=2).start()
    try:
        api = create_merchant(srv.base_url)
        ids = [create_order(api)["order_id"] for _ in range(6)]
        # New connections land on either worker; every order is visible from both.
        for oid in ids * 2:
            with httpx.Client(headers={"Authorization": f"Bearer {api.key}"}) as fresh:
                r = fresh.get(f"{srv.base_url}/api/mitra/v4/instant/tracking/{oid}").json()
            assert r["result"]["order_id"] == oid
        text = httpx.get(f"{srv.base_url}/metrics").text
        assert "lacak_orders_created_total 6.0" in text  # summed across both workers
    finally:
        srv.stop()
