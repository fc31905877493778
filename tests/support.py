"""Test plumbing: databases, a real server process on loopback, direct row counts."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from lacak.settings import Settings
from lacak.storage import migrate

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "spec" / "fixtures"
PG_ADMIN_URL = os.environ.get("LACAK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_TOKEN = "test-admin-token"
SECRET_KEY = "11" * 32
TABLES = ("merchants", "api_keys", "payments", "orders", "order_events", "deliveries")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to connect means "not available"
        return f"{type(exc).__name__}: {exc}"
    return None


REQUIRE_PG = os.environ.get("LACAK_TEST_REQUIRE_POSTGRES") == "1"


def require_postgres() -> None:
    """Skip when PostgreSQL is unreachable, or fail when it is required (CI)."""
    why = postgres_available()
    if why is None:
        return
    if REQUIRE_PG:
        pytest.fail(f"PostgreSQL required (LACAK_TEST_REQUIRE_POSTGRES=1) but unreachable: {why}")
    pytest.skip(f"PostgreSQL unreachable: {why}")


@contextmanager
def fresh_backend(kind: str, data_dir: Path) -> Iterator[Backend]:
    """An empty, migrated database of its own (`sqlite` in `data_dir`, or a new PostgreSQL one)."""
    if kind == "sqlite":
        url = f"sqlite:///{data_dir / 'lacak.db'}"
        migrate.upgrade(url)
        yield Backend("sqlite", url, data_dir)
        return
    require_postgres()
    with postgres_database() as url:
        migrate.upgrade(url)
        yield Backend("postgres", url, data_dir)


T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database for one test session, dropped afterwards."""
    name = f"lacak_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LACAK_")}
    env.update(
        LACAK_DATABASE_URL=database_url,
        LACAK_DATA_DIR=str(data_dir),
        LACAK_ADMIN_TOKEN=ADMIN_TOKEN,
        LACAK_SECRET_KEY=SECRET_KEY,
        LACAK_KEY_CACHE_TTL="1",
        LACAK_WEBHOOK_ALLOW_PRIVATE="0",
        LACAK_LOG_LEVEL="WARNING",
        LACAK_ACCESS_LOG="0",
        # The simulator is the default provider; in tests it stays parked (its first step is due
        # in years) unless a test starts its own server with LACAK_SIM_* settings, so orders
        # only move when a test moves them.
        LACAK_SIM_FIND_DELAY="100000000",
        # Servers share their test database with others: only the webhook tests, which pass
        # LACAK_RUN_WEBHOOKS=1, dispatch (and they use databases of their own).
        LACAK_RUN_WEBHOOKS="0",
    )
    env.update(extra)
    return env


def lacak(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lacak", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


class Server:
    """`lacak serve` in a child process on a loopback port."""

    def __init__(self, env: dict[str, str], log: Path, *, workers: int = 1) -> None:
        self.env = env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lacak",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Backend:
    """One database under test: its URL, a data dir, and direct SQL for assertions."""

    def __init__(self, name: str, database_url: str, data_dir: Path) -> None:
        self.name = name
        self.database_url = database_url
        self.data_dir = data_dir

    def env(self, **extra: str) -> dict[str, str]:
        return server_env(self.database_url, self.data_dir, **extra)

    def settings(self) -> Settings:
        """Settings for lacak's services in the test process (callbacks to loopback allowed)."""
        return Settings(
            database_url=self.database_url,
            data_dir=self.data_dir,
            secret_key="11" * 32,
            webhook_allow_private=True,
        )

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Run SQL written with $1 placeholders directly against the database."""
        from lacak.storage.db import connect

        async def go() -> list[dict[str, Any]]:
            db = connect(self.database_url, pool_size=1)
            await db.open()
            try:
                return [dict(zip(r.keys(), tuple(r), strict=True)) for r in await db.fetch(sql, *args)]
            finally:
                await db.close()

        return asyncio.run(go())

    def counts(self, merchant_id: int | None = None) -> dict[str, int]:
        """Row counts per table (for one merchant when given): proof that nothing was written."""
        where = {
            "merchants": "id = $1",
            "api_keys": "merchant_id = $1",
            "payments": "merchant_id = $1",
            "orders": "merchant_id = $1",
            "order_events": "order_pk IN (SELECT id FROM orders WHERE merchant_id = $1)",
            "deliveries": "merchant_id = $1",
        }
        out = {}
        for table in TABLES:
            if merchant_id is None:
                rows = self.query(f"SELECT count(*) AS n FROM {table}")
            else:
                rows = self.query(f"SELECT count(*) AS n FROM {table} WHERE {where[table]}", merchant_id)
            out[table] = int(rows[0]["n"])
        return out


class Api:
    """A merchant's view of a running server."""

    def __init__(self, base_url: str, key: str, merchant_id: int) -> None:
        self.base_url = base_url
        self.key = key
        self.merchant_id = merchant_id
        self.http = httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {key}"})

    def track(self, order_id: str) -> httpx.Response:
        return self.http.get(f"/api/mitra/v4/instant/tracking/{order_id}")

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.http.post(path, json=json, **kw)


def admin_client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


def create_merchant(base_url: str, *, prepaid: bool = False) -> Api:
    with admin_client(base_url) as admin:
        r = admin.post(
            "/api/admin/merchants", json={"name": f"m-{uuid.uuid4().hex[:12]}", "prepaid": prepaid}
        )
    body = r.json()
    assert body["status"] is True, body
    return Api(base_url, body["result"]["api_key"], body["result"]["merchant_id"])


def package(**over: Any) -> dict[str, Any]:
    """A valid package for the default tariff (gosend instant motor: Rp 34,000)."""
    pkg: dict[str, Any] = {
        "origin_name": "Arfian",
        "origin_phone": "081280045616",
        "origin_lat": -7.8032616,
        "origin_long": 110.350244,
        "origin_address": "Wirobrajan, Yogyakarta",
        "origin_address_note": "Tidak Ada Origin",
        "destination_name": "Okka",
        "destination_phone": "081280045616",
        "destination_lat": -7.7349434,
        "destination_long": 110.405355,
        "destination_address": "Minomartani, Sleman",
        "destination_address_note": "Dekat Pasar",
        "shipping_price": 34000,
        "item": {"name": "Barang 1", "description": "Barang 1 Description", "price": 20000, "weight": 1000},
    }
    pkg.update(over)
    return pkg


def pickup(packages: list[dict[str, Any]] | None = None, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "gosend",
        "service_type": "instant",
        "vehicle": "motor",
        "order_prefix": "TST",
        "packages": packages or [package()],
    }
    body.update(over)
    return body


def create_order(api: Api, **over: Any) -> dict[str, Any]:
    r = api.post("/api/mitra/v4/instant/pickup/request", pickup(**over))
    body = r.json()
    assert r.status_code == 200 and body["status"] is True, body
    pkg: dict[str, Any] = body["result"]["packages"][0]
    return pkg


def advance(base_url: str, order_id: str, state: str, **extra: Any) -> dict[str, Any]:
    with admin_client(base_url) as admin:
        r = admin.post(f"/api/admin/orders/{order_id}/advance", json={"state": state, **extra})
    body: dict[str, Any] = r.json()
    return body
