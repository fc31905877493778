"""Fixtures: every API test runs against SQLite and PostgreSQL, through a real server.

PostgreSQL tests are skipped when no server answers, unless LACAK_TEST_REQUIRE_POSTGRES=1
(as in CI), which turns a missing server into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lacak.storage import migrate
from tests.support import Api, Backend, Server, create_merchant, postgres_available, postgres_database

REQUIRE_PG = os.environ.get("LACAK_TEST_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    data_dir = tmp_path_factory.mktemp(f"lacak-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'lacak.db'}"
        migrate.upgrade(url)
        yield Backend("sqlite", url, data_dir)
        return
    why = postgres_available()
    if why is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required (LACAK_TEST_REQUIRE_POSTGRES=1) but unreachable: {why}")
        pytest.skip(f"PostgreSQL unreachable: {why}")
    with postgres_database() as url:
        migrate.upgrade(url)
        yield Backend("postgres", url, data_dir)


@pytest.fixture(scope="session")
def server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("logs") / f"server-{backend.name}.log"
    # The shared server runs no task loop and books with the inert `fleet` provider: tests that
    # start their own servers on the same database (simulator, couriers) must not have their
    # due work taken and run under this server's settings.
    quiet = {f"LACAK_PROVIDER_{s}": "fleet" for s in ("GOSEND", "GRAB_EXPRESS", "BORZO")}
    srv = Server(backend.env(LACAK_RUN_TASKS="0", **quiet), log).start()
    yield srv
    srv.stop()


@pytest.fixture()
def api(server: Server) -> Api:
    """A fresh merchant with its own key, so tests never see each other's orders."""
    return create_merchant(server.base_url)


@pytest.fixture()
def other(server: Server) -> Api:
    return create_merchant(server.base_url)


@pytest.fixture()
def tmp_data(tmp_path: Path) -> Path:
    return tmp_path
