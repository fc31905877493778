"""Simulated trips live in the database: they survive a SIGKILL, and run once across processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import Api, Backend, create_merchant, create_order
from tests.test_simulator import (
    TASK_LEASE,
    check_history,
    finished,
    fresh_database,
    history,
    order_pk,
    sim_env,
    start,
    wait_for,
)

# A task claimed by a killed process keeps its lease (LACAK_TASK_LEASE, 5 s in these tests)
# before another process may take it over: a killed step can take that long to resume.
LEASE = TASK_LEASE
TERMINAL = ("delivered", "returned", "cancelled", "failed")


@pytest.fixture()
def own(backend: Backend, tmp_path: Path) -> Iterator[Backend]:
    with fresh_database(backend, tmp_path) as db:
        yield db


def states(db: Backend) -> list[str]:
    """Every order's state (the database holds only this test's orders)."""
    return [r["state"] for r in db.query("SELECT state FROM orders ORDER BY id")]


def make_orders(api: Api, n: int) -> list[str]:
    return [create_order(api)["order_id"] for _ in range(n)]


def check_all(db: Backend, base_url: str, api: Api, order_ids: list[str], timeout: float) -> None:
    for order_id in order_ids:
        assert finished(api, order_id, timeout)["status_name"] == "delivered"
        check_history(db, order_pk(db, order_id), history(base_url, order_id))
    left = db.query("SELECT count(*) AS n FROM tasks WHERE kind = 'sim.step' AND done_at IS NULL")
    assert left[0]["n"] == 0, "every trip's last step completed its task"


def test_killed_server_resumes_every_trip(own: Backend, tmp_path: Path) -> None:
    # Slow enough that five trips are still under way a moment after their drivers are found.
    env = sim_env(own, speed="500")
    srv = start(env, tmp_path / "first.log")
    try:
        api = create_merchant(srv.base_url)
        order_ids = make_orders(api, 5)
        wait_for("every order to have a driver", lambda: "finding_driver" not in states(own))
        at_kill = states(own)
        assert srv.proc is not None
        srv.proc.kill()  # SIGKILL: no shutdown, whatever step was running is cut off
        srv.proc.wait()
    finally:
        srv.stop()
    killed_at = datetime.now(UTC)
    assert not set(at_kill) & set(TERMINAL), at_kill
    # Each trip's whole state is its one pending step in the database (none lived in memory only).
    pending = own.query("SELECT order_pk FROM tasks WHERE kind = 'sim.step' AND done_at IS NULL")
    assert sorted(r["order_pk"] for r in pending) == sorted(order_pk(own, o) for o in order_ids)

    again = start(env, tmp_path / "second.log")
    try:
        check_all(own, again.base_url, Api(again.base_url, api.key, api.merchant_id), order_ids, LEASE + 40)
        for order_id in order_ids:
            events = history(again.base_url, order_id)
            resumed = [e for e in events if datetime.fromisoformat(e["occurred_at"]) > killed_at]
            assert resumed and resumed[-1]["state"] == "delivered", "the trip went on after the restart"
    finally:
        again.stop()


def test_several_processes_run_each_step_once(own: Backend, tmp_path: Path) -> None:
    """Two server workers and a separate task worker claim steps from one database."""
    env = sim_env(own, speed="1500")  # ~20 steps a trip: plenty of claims to race for
    srv = start(env, tmp_path / "server.log", workers=2)
    log = (tmp_path / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "lacak", "worker"], env=srv.env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        api = create_merchant(srv.base_url)
        order_ids = make_orders(api, 10)
        started = time.monotonic()
        check_all(own, srv.base_url, api, order_ids, LEASE + 30)
        assert worker.poll() is None, "the task worker is still running"
        assert time.monotonic() - started < LEASE, "no step waited for a lease to expire"
    finally:
        worker.terminate()
        worker.wait(10)
        log.close()
        srv.stop()
