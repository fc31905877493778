"""Fixtures: every API test runs against SQLite and PostgreSQL, through a real server.

PostgreSQL tests are skipped when no server answers, unless LACAK_TEST_REQUIRE_POSTGRES=1
(as in CI), which turns a missing server into a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Api, Backend, Server, create_merchant, fresh_backend


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with fresh_backend(request.param, tmp_path_factory.mktemp(f"lacak-{request.param}")) as b:
        yield b


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
