"""Webhook delivery end to end: a real `lacak serve` dispatching to a real receiver process.

The receiver (tests/webhook_receiver.py) verifies every request with the `standardwebhooks` and
`svix` packages, unmodified, and answers as each test scripts it (500, hang, 410, 429, 301, …).
Retries run on a compressed clock (LACAK_WEBHOOK_RETRY_SCALE divides every delay), so the real
schedule is exercised in milliseconds; timing assertions are lower bounds only (the machine is
shared), never exact values.

Isolation: each backend gets module databases of its own for the shared servers (`hub`,
`guarded`), and the tests that need other delivery settings start a server on a fresh database.
No other server ever sees these databases, so no pending retry is taken, or sent with other
settings, by anyone else. One receiver process serves the module (its start-up takes seconds);
each test's endpoint is a path of its own on it, with its own plan, and a test only reads the
requests that arrived on its path.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook

from lacak.settings import Settings
from lacak.storage.rows import as_dt
from lacak.wiring import services
from tests.support import (
    FIXTURES,
    ROOT,
    Api,
    Backend,
    Server,
    advance,
    create_merchant,
    create_order,
    free_port,
    fresh_backend,
    require_postgres,
    wait_until,
)

SCALE = 1000.0  # 5 s → 5 ms, 5 min → 0.3 s, the 60 s floor → 60 ms
TIMEOUT = 2.0  # the request timeout; generous, so a busy machine never fakes a timeout
PACKAGES = (("standardwebhooks", StandardWebhook), ("svix", SvixWebhook))
DRIVER = {"driver_name": "Tono", "driver_phone": "081200000001"}
LIFECYCLE = ["driver_assigned", "picked_up", "in_transit", "delivered"]  # after finding_driver
EVENTS = 1 + len(LIFECYCLE)  # deliveries per order: the creation's finding_driver, then each step
SLACK = 0.002  # s: wall clock (attempt start) and perf counter (duration) are different clocks
FIXTURE_2024 = json.loads((FIXTURES / "webhook_update_instant_packages_2024.json").read_text())
FIXTURE_2025 = json.loads((FIXTURES / "webhook_shipped_packages_2025.json").read_text())
OURS = {"seq", "event_id"}  # the two keys both dialects add to the per-order object

T = TypeVar("T")


def hub_env(**extra: str) -> dict[str, str]:
    return {
        "LACAK_RUN_WEBHOOKS": "1",
        "LACAK_RUN_TASKS": "0",  # orders move only when a test moves them
        "LACAK_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on 127.0.0.1
        "LACAK_WEBHOOK_RETRY_SCALE": str(SCALE),
        "LACAK_WEBHOOK_TIMEOUT": str(TIMEOUT),
        **extra,
    }


# -- the receiver process -----------------------------------------------------------------


class ReceiverProcess:
    """tests/webhook_receiver.py in a child process on a loopback port."""

    def __init__(self, where: Path, *, secrets: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.log = where / f"receiver-{self.port}.jsonl"
        self.secrets = list(secrets)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, closed: bool = False) -> ReceiverProcess:
        """Start the process; with `closed` it keeps its port closed until `open()`."""
        args = ["-m", "tests.webhook_receiver", "--port", str(self.port), "--log", str(self.log)]
        for secret in self.secrets:
            args += ["--secret", secret]
        if closed:
            args += ["--listen-when", str(self.log.with_suffix(".open"))]
        with self.log.with_suffix(".out").open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        if closed:
            wait_until("the receiver to start", lambda: "armed" in self._output(), timeout=60)
        else:
            self.open()
        return self

    def _output(self) -> str:
        assert self.proc is not None
        out = self.log.with_suffix(".out").read_text()
        if self.proc.poll() is not None:
            raise RuntimeError(out[-2000:])
        return out

    def open(self) -> None:
        self.log.with_suffix(".open").touch()
        wait_until("the receiver to listen", self._listening, timeout=60)

    def _listening(self) -> bool:
        self._output()  # fails if the process died
        try:
            return httpx.get(f"{self.root}/_control", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def control(self, **change: Any) -> None:
        r = httpx.post(f"{self.root}/_control", json=change, timeout=10)
        assert r.status_code == 200, r.text

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


class Hook:
    """One test's endpoint: a path of its own on a receiver process, with its own plan."""

    def __init__(self, receiver: ReceiverProcess, mode: str = "200") -> None:
        self.receiver = receiver
        self.path = f"/hook/{uuid.uuid4().hex[:12]}"
        self.url = f"{receiver.root}{self.path}"
        self.mode = mode
        if receiver.proc is not None:
            receiver.control(path=self.path, mode=mode)

    def control(self, *, mode: str | None = None, secrets: list[str] | None = None) -> None:
        change: dict[str, Any] = {"path": self.path}
        if mode is not None:
            change["mode"] = mode
        if secrets is not None:
            change["secrets"] = secrets
        if self.receiver.proc is None:  # not started yet: its command line sets the defaults
            self.receiver.secrets = secrets or self.receiver.secrets
            return
        self.receiver.control(**change)

    def requests(self) -> list[dict[str, Any]]:
        """What arrived on this hook's path, in arrival order."""
        return [e for e in self.receiver.entries() if e["path"] == self.path]

    def redirected(self) -> list[dict[str, Any]]:
        """What arrived at the Location its 301 answers point to."""
        return [e for e in self.receiver.entries() if e["path"] == self.path + "/moved"]


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """One receiver process for the module: starting one (svix imported) takes seconds."""
    proc = ReceiverProcess(tmp_path_factory.mktemp("receiver")).start()
    yield proc
    proc.stop()


@pytest.fixture()
def hooks(receiver: ReceiverProcess) -> Callable[..., Hook]:
    return lambda mode="200": Hook(receiver, mode)


# -- databases and servers ----------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        require_postgres()
    name: str = request.param
    return name


@dataclass(frozen=True, slots=True)
class Site:
    """A database and the one server that dispatches its webhooks."""

    db: Backend
    server: Server

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def merchant(self, hook: Hook) -> tuple[Api, str]:
        """A new merchant whose callback is `hook`; its signing secret (handed to `hook` too)."""
        api = create_merchant(self.base_url)
        body = api.post("/api/mitra/set_callback", {"url": hook.url}).json()
        assert body["status"] is True, body
        secret: str = body["result"]["webhook_secret"]
        hook.control(secrets=[secret])
        return api, secret

    def advance(self, api: Api, order_id: str, state: str) -> None:
        extra = DRIVER if state == "driver_assigned" else {}
        body = advance(self.base_url, order_id, state, merchant=str(api.merchant_id), **extra)
        assert body["status"] is True and body["result"]["outcome"] == "applied", (state, body)

    def deliveries(self, merchant_id: int) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT d.id, d.event_id, d.seq, d.state, d.status, d.attempts, o.order_id"
            " FROM deliveries d JOIN orders o ON o.id = d.order_pk WHERE d.merchant_id = $1 ORDER BY d.id",
            merchant_id,
        )

    def attempts(self, merchant_id: int) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT d.event_id, a.attempt, a.trigger, a.started_at, a.duration_ms, a.status_code,"
            " a.error_class, a.error, a.outcome FROM delivery_attempts a"
            " JOIN deliveries d ON d.id = a.delivery_id WHERE d.merchant_id = $1 ORDER BY a.id",
            merchant_id,
        )

    def endpoint(self, merchant_id: int) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT disabled_at, disabled_reason, failing_since FROM webhook_endpoints"
            " WHERE merchant_id = $1",
            merchant_id,
        )
        assert len(rows) == 1, rows
        return rows[0]

    def delivered(self, merchant_id: int, count: int) -> Callable[[], list[dict[str, Any]] | None]:
        """A check: the merchant's deliveries once `count` exist and all are delivered."""

        def check() -> list[dict[str, Any]] | None:
            rows = self.deliveries(merchant_id)
            done = len(rows) == count and all(r["status"] == "delivered" for r in rows)
            return rows if done else None

        return check


@contextmanager
def site(kind: str, where: Path, **env: str) -> Iterator[Site]:
    with fresh_backend(kind, where) as db:
        srv = Server(db.env(**hub_env(**env)), where / "server.log").start()
        try:
            yield Site(db, srv)
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def hub(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Private targets allowed, compressed retries: the server most tests share."""
    with site(kind, tmp_path_factory.mktemp(f"hub-{kind}")) as s:
        yield s


@pytest.fixture(scope="module")
def guarded(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The production default: private targets refused, at set_callback and at send time."""
    with site(kind, tmp_path_factory.mktemp(f"guarded-{kind}"), LACAK_WEBHOOK_ALLOW_PRIVATE="0") as s:
        yield s


@pytest.fixture()
def own_site(kind: str, tmp_path: Path) -> Iterator[Callable[..., Site]]:
    """Start a server with delivery settings of its own, on a fresh database."""
    with ExitStack() as stack:
        yield lambda **env: stack.enter_context(site(kind, tmp_path, **env))


# -- checks ---------------------------------------------------------------------------------


def verify_both(secret: str, body: str, headers: dict[str, str]) -> None:
    for _, cls in PACKAGES:
        cls(secret).verify(body, dict(headers))


def refused_by_both(secret: str, body: str, headers: dict[str, str]) -> None:
    for name, cls in PACKAGES:
        with pytest.raises(WebhookVerificationError):
            cls(secret).verify(body, dict(headers))
            pytest.fail(f"{name} accepted it")


def verified_by_both(entry: dict[str, Any]) -> bool:
    return bool(entry["verified"] == {"standardwebhooks": True, "svix": True})


def gap(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Seconds from the end of attempt `before` to the start of attempt `after`.

    A lower bound on the delay chosen: the attempt's start is stamped before its request is
    sent, and the retry is scheduled after its answer (or timeout) came.
    """
    start, end = as_dt(before["started_at"]), as_dt(after["started_at"])
    assert start is not None and end is not None
    return (end - (start + timedelta(milliseconds=before["duration_ms"]))).total_seconds()


def summary(attempts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(a["attempt"], a["status_code"], a["error_class"], a["outcome"]) for a in attempts]


def rotate_with_overlap(db: Backend, merchant_id: int, hours: float) -> tuple[str, datetime]:
    """Rotate through the Python service with a chosen overlap (the server's own is 24 h)."""
    settings = Settings.from_env(db.env(LACAK_WEBHOOK_ROTATION_OVERLAP_HOURS=str(hours)))

    async def go() -> tuple[str, datetime]:
        async with services(settings) as s:
            return await s.hooks.service.rotate_secret(merchant_id)

    return asyncio.run(go())


def merchant_call(api: Api, path: str, json_body: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = api.post(f"/api/mitra/v4/webhooks{path}", json_body).json()
    assert body["status"] is True, body
    result: dict[str, Any] = body["result"]
    return result


# -- 1. what a receiver gets ----------------------------------------------------------------


STATUS_2024 = ["finding_driver", "driver_assigned", "picked_up", "sent", "delivered"]
METHOD_2025 = ["updated_packages", "processed_packages", "shipped_packages", "shipped_packages"]
METHOD_2025 += ["finished_packages"]
NUMERIC_2025 = [105, 105, 106, 106, 200]


def run_lifecycle(s: Site, api: Api, hook: Hook) -> tuple[str, list[dict[str, Any]]]:
    """Create an order and walk it to delivered, one webhook arriving before the next change."""
    before = len(hook.requests())
    order_id = create_order(api)["order_id"]

    def arrived(n: int) -> Callable[[], bool]:
        return lambda: len(hook.requests()) == before + n

    wait_until("the creation's webhook", arrived(1))
    for n, state in enumerate(LIFECYCLE, start=2):
        s.advance(api, order_id, state)
        wait_until(f"the {state} webhook", arrived(n))
    return order_id, hook.requests()[before:]


def check_common(entries: list[dict[str, Any]], api: Api, secret: str) -> list[dict[str, Any]]:
    """The headers every delivery carries; the parsed bodies."""
    bodies = []
    for e in entries:
        h = e["headers"]
        assert verified_by_both(e), e
        verify_both(secret, e["body"], h)  # and once more here, with the packages as shipped
        assert e["method"] == "POST"
        assert h["authorization"] == f"Bearer {api.key}"
        assert h["user-agent"] == "KiriminAja-Push-Services"
        assert h["content-type"].split(";")[0] == "application/json"
        assert h["accept"] == "application/json"
        assert h["webhook-signature"].startswith("v1,") and " " not in h["webhook-signature"]
        assert abs(int(h["webhook-timestamp"]) - e["at"]) < 60
        bodies.append(json.loads(e["body"]))
    return bodies


def test_a_lifecycle_reaches_the_receiver_signed_in_both_dialects(
    hub: Site, hooks: Callable[..., Hook]
) -> None:
    hook = hooks()
    api, secret = hub.merchant(hook)

    # kiriminaja-2024, the default.
    order_id, entries = run_lifecycle(hub, api, hook)
    bodies = check_common(entries, api, secret)
    data = [b["data"] for b in bodies]
    assert all(b["method"] == "update_instant_packages" and set(b) == {"method", "data"} for b in bodies)
    assert all(set(d) == set(FIXTURE_2024["data"]) | OURS for d in data)
    assert [e["webhook_id"] for e in entries] == [d["event_id"] for d in data]
    assert [d["order_id"] for d in data] == [order_id] * EVENTS
    assert [d["status"] for d in data] == STATUS_2024
    assert [d["seq"] for d in data] == list(range(2, 2 + EVENTS))  # increasing, no gap
    assert data[-1]["driver"]["name"] == "Tono"
    rows = hub.deliveries(api.merchant_id)
    assert [(r["event_id"], r["status"], r["attempts"]) for r in rows] == [
        (d["event_id"], "delivered", 1) for d in data
    ]

    # kiriminaja-2025, once the merchant chooses it.
    assert merchant_call(api, "/dialect", {"dialect": "kiriminaja-2025"})["dialect"] == "kiriminaja-2025"
    order_id, entries = run_lifecycle(hub, api, hook)
    bodies = check_common(entries, api, secret)
    assert all(set(b) == set(FIXTURE_2025) for b in bodies)
    assert [b["method"] for b in bodies] == METHOD_2025
    data = [b["data"] for b in bodies]
    assert all(len(d) == 1 and set(d[0]) == set(FIXTURE_2025["data"][0]) | OURS for d in data)
    assert [e["webhook_id"] for e in entries] == [d[0]["event_id"] for d in data]
    assert [d[0]["order_id"] for d in data] == [order_id] * EVENTS
    assert [d[0]["seq"] for d in data] == list(range(2, 2 + EVENTS))
    assert [b["packages"][0]["status"] for b in bodies] == NUMERIC_2025
    assert all(set(b["payment"]) == set(FIXTURE_2025["payment"]) for b in bodies)

    # A tampered body, or a replay with an old timestamp, is refused by both packages...
    last = entries[-1]
    body, headers = last["body"], last["headers"]
    tampered = body.replace(order_id, order_id + "0")
    refused_by_both(secret, tampered, headers)
    old = int(headers["webhook-timestamp"]) - 600
    replayed = {**headers, "webhook-timestamp": str(old)}
    refused_by_both(secret, body, replayed)
    # ... even when the signature is right for the old timestamp: the tolerance is what refuses.
    resigned = {**replayed, "webhook-signature": StandardWebhook(secret).sign(
        headers["webhook-id"], datetime.fromtimestamp(old, UTC), body
    )}  # fmt: skip
    refused_by_both(secret, body, resigned)
    # ... and by the receiver process, when the test re-sends those requests to it.
    for n, (content, sent) in enumerate(((tampered, headers), (body, replayed), (body, resigned))):
        sent = {k: v for k, v in sent.items() if k not in ("host", "content-length")}
        r = httpx.post(hook.url, content=content, headers={**sent, "x-replay": str(n)}, timeout=10)
        assert r.status_code == 200
    replays = [e for e in hook.requests() if "x-replay" in e["headers"]]
    assert len(replays) == 3
    assert all(e["verified"] == {"standardwebhooks": False, "svix": False} for e in replays)


# -- 2. faults ------------------------------------------------------------------------------


def test_500_then_200_is_delivered_on_the_second_attempt(hub: Site, hooks: Callable[..., Hook]) -> None:
    hook = hooks(mode="500,200")
    api, _ = hub.merchant(hook)
    create_order(api)
    rows = wait_until("delivery", hub.delivered(api.merchant_id, 1))
    attempts = hub.attempts(api.merchant_id)
    assert summary(attempts) == [(1, 500, "http", "retry"), (2, 200, None, "delivered")]
    assert all(a["trigger"] == "scheduled" for a in attempts)
    assert rows[0]["attempts"] == 2
    got = hook.requests()
    assert [e["answer"] for e in got] == ["500", "200"]
    assert {e["webhook_id"] for e in got} == {rows[0]["event_id"]}  # the same id on the retry
    assert all(verified_by_both(e) for e in got)
    assert gap(attempts[0], attempts[1]) >= 5 * 0.8 / SCALE - SLACK  # the first retry: 5 s ± 20 %


def test_a_slow_answer_within_the_timeout_is_a_success(hub: Site, hooks: Callable[..., Hook]) -> None:
    hook = hooks(mode=f"slow:{TIMEOUT / 2:g}")
    api, _ = hub.merchant(hook)
    create_order(api)
    wait_until("delivery", hub.delivered(api.merchant_id, 1))
    attempts = hub.attempts(api.merchant_id)
    assert summary(attempts) == [(1, 200, None, "delivered")]
    assert attempts[0]["duration_ms"] >= TIMEOUT / 2 * 1000
    assert len(hook.requests()) == 1


def test_a_timeout_backs_off_at_least_sixty_seconds(hub: Site, hooks: Callable[..., Hook]) -> None:
    hook = hooks(mode=f"hang:{TIMEOUT + 3:g},200")
    api, _ = hub.merchant(hook)
    create_order(api)
    wait_until("delivery", hub.delivered(api.merchant_id, 1))
    attempts = hub.attempts(api.merchant_id)
    assert summary(attempts) == [(1, None, "timeout", "retry"), (2, 200, None, "delivered")]
    assert attempts[0]["duration_ms"] >= TIMEOUT * 1000 * 0.9
    # Without the floor the retry would follow 5 s (scaled: ~5 ms) later.
    assert gap(attempts[0], attempts[1]) >= 60 / SCALE - SLACK
    assert [e["answer"] for e in hook.requests()] == [f"hang:{TIMEOUT + 3:g}", "200"]


def test_a_refused_connection_is_retried_until_the_receiver_is_up(hub: Site, tmp_path: Path) -> None:
    late = ReceiverProcess(tmp_path)
    hook = Hook(late)
    api, _ = hub.merchant(hook)  # the secret, before the process starts with it
    try:
        late.start(closed=True)  # running, but nothing listens on its port yet
        create_order(api)
        wait_until("two refused attempts", lambda: len(hub.attempts(api.merchant_id)) >= 2)
        late.open()
        # The next retries are due 0.3 s, 1.8 s, 7.2 s… (scaled) after the one before.
        rows = wait_until("delivery", hub.delivered(api.merchant_id, 1), timeout=60)
    finally:
        late.stop()
    attempts = hub.attempts(api.merchant_id)
    *refused, last = summary(attempts)
    assert len(refused) >= 2
    assert refused == [(n, None, "connect", "retry") for n in range(1, len(refused) + 1)]
    assert last == (len(refused) + 1, 200, None, "delivered")
    got = hook.requests()
    assert [e["webhook_id"] for e in got] == [rows[0]["event_id"]] and verified_by_both(got[0])


def test_410_disables_the_endpoint_at_once_and_later_events_wait_paused(
    hub: Site, hooks: Callable[..., Hook]
) -> None:
    hook = hooks(mode="410")
    api, _ = hub.merchant(hook)
    first = create_order(api)["order_id"]
    wait_until("the endpoint to be disabled", lambda: hub.endpoint(api.merchant_id)["disabled_at"])
    assert "410" in hub.endpoint(api.merchant_id)["disabled_reason"]
    assert summary(hub.attempts(api.merchant_id)) == [(1, 410, "http", "disabled")]
    assert [r["status"] for r in hub.deliveries(api.merchant_id)] == ["paused"]

    # Later changes are stored, paused, and not sent.
    second = create_order(api)["order_id"]
    hub.advance(api, second, "driver_assigned")
    rows = hub.deliveries(api.merchant_id)
    assert [(r["order_id"], r["status"], r["attempts"]) for r in rows] == [
        (first, "paused", 1),
        (second, "paused", 0),
        (second, "paused", 0),
    ]
    # A fixed wait is the only way to see that nothing happens: 100 first-retry delays.
    time.sleep(100 * 5 / SCALE)
    assert len(hook.requests()) == 1
    assert len(hub.attempts(api.merchant_id)) == 1

    # Nothing was lost: re-enabling sends every paused event, once.
    hook.control(mode="200")
    assert merchant_call(api, "/enable")["resumed"] == 3
    rows = wait_until("the paused events", hub.delivered(api.merchant_id, 3))
    ids = [e["webhook_id"] for e in hook.requests()]
    assert sorted(ids) == sorted([rows[0]["event_id"], *(r["event_id"] for r in rows)])
    resumed = hub.attempts(api.merchant_id)[1:]
    assert [(a["trigger"], a["status_code"], a["outcome"]) for a in resumed] == [
        ("manual", 200, "delivered")
    ] * 3
    assert hub.endpoint(api.merchant_id)["disabled_at"] is None


def test_429_retry_after_is_honoured(hub: Site, hooks: Callable[..., Hook]) -> None:
    hook = hooks(mode="429:120,200")
    api, _ = hub.merchant(hook)
    create_order(api)
    wait_until("delivery", hub.delivered(api.merchant_id, 1))
    attempts = hub.attempts(api.merchant_id)
    assert summary(attempts) == [(1, 429, "http", "retry"), (2, 200, None, "delivered")]
    # Retry-After: 120 beats both the 5 s schedule and the 60 s floor of a 429.
    assert gap(attempts[0], attempts[1]) >= 120 / SCALE - SLACK


def test_a_redirect_is_a_failure_and_is_not_followed(hub: Site, hooks: Callable[..., Hook]) -> None:
    hook = hooks(mode="301*2,200")
    api, _ = hub.merchant(hook)
    create_order(api)
    wait_until("delivery", hub.delivered(api.merchant_id, 1))
    attempts = hub.attempts(api.merchant_id)
    assert summary(attempts) == [
        (1, 301, "http", "retry"),
        (2, 301, "http", "retry"),
        (3, 200, None, "delivered"),
    ]
    assert [e["answer"] for e in hook.requests()] == ["301", "301", "200"]
    assert hook.redirected() == []  # the Location was never hit


def test_retries_stop_after_eight_attempts(own_site: Callable[..., Site], hooks: Callable[..., Hook]) -> None:
    # The whole ~27.6 h schedule in about a second. The disable window is scaled too: keep it
    # far beyond the schedule so that the attempt limit is what stops the retries.
    s = own_site(LACAK_WEBHOOK_RETRY_SCALE="100000", LACAK_WEBHOOK_DISABLE_AFTER_HOURS="1000")
    hook = hooks(mode="500")
    api, _ = s.merchant(hook)
    create_order(api)
    wait_until(
        "the delivery to fail", lambda: [r["status"] for r in s.deliveries(api.merchant_id)] == ["failed"]
    )
    attempts = s.attempts(api.merchant_id)
    assert summary(attempts) == [(n, 500, "http", "retry") for n in range(1, 8)] + [
        (8, 500, "http", "failed")
    ]
    assert len(hook.requests()) == 8
    assert len({e["webhook_id"] for e in hook.requests()}) == 1
    assert s.endpoint(api.merchant_id)["disabled_at"] is None  # failed, not disabled
    # The schedule's delays, scaled, as lower bounds: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    for n, base in enumerate((5, 300, 1800, 7200, 18000, 36000, 36000)):
        assert gap(attempts[n], attempts[n + 1]) >= base * 0.8 / 100000 - SLACK, n


def test_an_endpoint_failing_past_the_disable_window_is_disabled(
    own_site: Callable[..., Site], hooks: Callable[..., Hook]
) -> None:
    # The window is scaled like every delay: 0.1 h / 1000 = 0.36 s, reached by the 3rd or 4th
    # attempt (5 ms, then 0.3 s ± 20 %, then 1.8 s apart).
    s = own_site(LACAK_WEBHOOK_DISABLE_AFTER_HOURS="0.1")
    hook = hooks(mode="500")
    api, _ = s.merchant(hook)
    create_order(api)
    endpoint = wait_until(
        "the endpoint to be disabled", lambda: (e := s.endpoint(api.merchant_id))["disabled_at"] and e
    )
    assert "failing continuously" in endpoint["disabled_reason"]
    attempts = s.attempts(api.merchant_id)
    assert 2 <= len(attempts) < 8
    *retried, last = summary(attempts)
    assert retried == [(n, 500, "http", "retry") for n in range(1, len(attempts))]
    assert last == (len(attempts), 500, "http", "disabled")
    # Not before the window: from the first failure to the disabling, at least 0.36 s went by.
    failing, disabled = as_dt(endpoint["failing_since"]), as_dt(endpoint["disabled_at"])
    assert failing is not None and disabled is not None
    assert failing == as_dt(attempts[0]["started_at"])
    assert (disabled - failing).total_seconds() >= 0.1 * 3600 / SCALE
    assert [r["status"] for r in s.deliveries(api.merchant_id)] == ["paused"]
    assert len(hook.requests()) == len(attempts)


# -- 3. secret rotation ---------------------------------------------------------------------


def test_a_rotated_secret_signs_next_to_the_old_one_during_the_overlap(
    hub: Site, hooks: Callable[..., Hook]
) -> None:
    hook = hooks()
    api, first = hub.merchant(hook)
    order_id = create_order(api)["order_id"]
    wait_until("the first webhook", lambda: len(hook.requests()) == 1)

    # Through the API: the server's overlap (24 h) keeps the old secret signing.
    rotated = merchant_call(api, "/secret/rotate")
    second = rotated["webhook_secret"]
    assert second.startswith("whsec_") and second != first
    hook.control(secrets=[first, second])
    hub.advance(api, order_id, "driver_assigned")
    during = wait_until("the webhook during the overlap", lambda: hook.requests()[1:2])[0]
    assert len(during["headers"]["webhook-signature"].split(" ")) == 2
    both = {"standardwebhooks": True, "svix": True}
    assert during["verified_by"] == [both, both]  # the old secret and the new one, each alone
    verify_both(first, during["body"], during["headers"])
    verify_both(second, during["body"], during["headers"])

    # Once the overlap is over only the newest secret signs (a tiny overlap, then wait it out).
    third, until = rotate_with_overlap(hub.db, api.merchant_id, 0.0002)  # 0.72 s
    hook.control(secrets=[first, second, third])
    wait_until("the overlap to end", lambda: datetime.now(UTC) > until + timedelta(seconds=0.1))
    hub.advance(api, order_id, "picked_up")
    after = wait_until("the webhook after the overlap", lambda: hook.requests()[2:3])[0]
    assert len(after["headers"]["webhook-signature"].split(" ")) == 1
    none = {"standardwebhooks": False, "svix": False}
    assert after["verified_by"] == [none, none, both]
    verify_both(third, after["body"], after["headers"])
    refused_by_both(second, after["body"], after["headers"])


# -- 4. SSRF ----------------------------------------------------------------------------------


PRIVATE_URLS = [
    "http://127.0.0.1:{port}/",
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]:{port}/",
    "http://localhost:{port}/",
]


@pytest.mark.parametrize("template", PRIVATE_URLS)
def test_set_callback_refuses_private_targets(guarded: Site, template: str) -> None:
    api = create_merchant(guarded.base_url)
    url = template.format(port=free_port())
    body = api.post("/api/mitra/set_callback", {"url": url}).json()
    assert body["status"] is False and body["code"] == 2 and body["result"] is None, body
    assert isinstance(body["text"], str) and body["text"]
    rows = guarded.db.query("SELECT callback_url FROM merchants WHERE id = $1", api.merchant_id)
    assert rows == [{"callback_url": None}]
    endpoints = guarded.db.query("SELECT 1 FROM webhook_endpoints WHERE merchant_id = $1", api.merchant_id)
    assert endpoints == []
    create_order(api)
    assert [r["status"] for r in guarded.deliveries(api.merchant_id)] == ["no_endpoint"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # an IP literal; a name resolving inside
def test_a_private_target_stored_earlier_is_blocked_at_send_time(
    guarded: Site, hooks: Callable[..., Hook], host: str
) -> None:
    hook = hooks()
    api = create_merchant(guarded.base_url)
    # As if set while the operator allowed private targets: set_callback would refuse it now.
    url = hook.url.replace("127.0.0.1", host)
    guarded.db.query("UPDATE merchants SET callback_url = $2 WHERE id = $1", api.merchant_id, url)
    create_order(api)
    attempts = wait_until("two attempts", lambda: (a := guarded.attempts(api.merchant_id))[1:] and a)
    assert [(a["status_code"], a["error_class"], a["outcome"]) for a in attempts[:2]] == [
        (None, "ssrf-blocked", "retry")
    ] * 2
    assert hook.requests() == []  # the receiver, listening all along, got nothing


# -- 5. no change without its webhook -------------------------------------------------------


def test_every_change_of_many_orders_arrives_exactly_once(hub: Site, hooks: Callable[..., Hook]) -> None:
    orders = 8
    hook = hooks()
    api, secret = hub.merchant(hook)
    ids = [create_order(api)["order_id"] for _ in range(orders)]
    for state in LIFECYCLE:  # interleaved, without waiting: bursts for the dispatcher
        for order_id in ids:
            hub.advance(api, order_id, state)
    rows = wait_until("every delivery", hub.delivered(api.merchant_id, orders * EVENTS), timeout=60)
    got = hook.requests()
    assert len(got) == len(rows) == orders * EVENTS  # once each: no retry, no duplicate
    assert {e["webhook_id"] for e in got} == {r["event_id"] for r in rows}
    assert all(r["attempts"] == 1 for r in rows)
    assert all(verified_by_both(e) for e in got)
    per_order: dict[str, list[int]] = {}
    for e in got:
        data = json.loads(e["body"])["data"]
        assert data["event_id"] == e["webhook_id"]
        per_order.setdefault(data["order_id"], []).append(data["seq"])
    assert {k: sorted(v) for k, v in per_order.items()} == {o: list(range(2, 2 + EVENTS)) for o in ids}
    verify_both(secret, got[0]["body"], got[0]["headers"])


def metric(text: str, name: str) -> float:
    """The sum of a metric's samples in Prometheus text (0 when absent)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_delivery_metrics(hub: Site, hooks: Callable[..., Hook]) -> None:
    before = httpx.get(f"{hub.base_url}/metrics").text
    hook = hooks(mode="500,200")
    api, _ = hub.merchant(hook)
    create_order(api)
    wait_until("delivery", hub.delivered(api.merchant_id, 1))
    text = httpx.get(f"{hub.base_url}/metrics").text
    for name in (
        'lacak_webhook_attempts_total{outcome="delivered"}',
        'lacak_webhook_attempts_total{outcome="retry"}',
    ):
        assert metric(text, name) - metric(before, name) >= 1, name
    count = "lacak_webhook_attempt_seconds_count"
    assert metric(text, count) - metric(before, count) >= 2
    for gauge in (
        "lacak_webhook_queue_depth",
        "lacak_webhook_oldest_pending_seconds",
        "lacak_webhook_disabled_endpoints",
    ):
        assert f"\n{gauge} " in text, gauge
