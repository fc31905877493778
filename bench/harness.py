"""The moving parts of a benchmark run: server process, wrk, /proc readings, sanity checks."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.static_app import STATIC_PATH
from lacak.http.app import create_app
from lacak.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "lookup.lua"
TRACKING = "/api/mitra/v4/instant/tracking/"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Database:
    backend: str
    url: str
    work: Path  # pairs file, static body, server logs
    pg_name: str | None = None


@contextmanager
def database(backend: str, work: Path, pg_admin: str, label: str) -> Iterator[Database]:
    """A fresh, empty database, removed afterwards: SQLite in `work`, or a `lacak_bench_*` one."""
    work.mkdir(parents=True)
    if backend == "sqlite":
        yield Database(backend, f"sqlite:///{work / 'lacak.db'}", work)
        return
    name = f"lacak_bench_{uuid.uuid4().hex[:8]}_{label}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield Database(backend, pg_admin.rsplit("/", 1)[0] + f"/{name}", work, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def save_results(name: str, info: dict[str, Any], args: Any, data: dict[str, Any], busy: str = "") -> Path:
    """Say whether the machine was busy, and write the run's JSON to bench/results/NAME-<time>.json."""
    load_now = os.getloadavg()[0]
    if info["loadavg"][0] > 0.5 or load_now > 2.5:
        print(f"NOTE: the machine was busy (load {info['loadavg'][0]:.2f} before, {load_now:.2f} after):"
              f" treat the numbers as rough{busy}.")  # fmt: skip
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    out = results / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    plain_args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    machine = info | {"loadavg_after": os.getloadavg()}
    out.write_text(json.dumps({"args": plain_args, "machine": machine, **data}, indent=2, default=str))
    print(f"results: {out}")
    return out


class BenchError(Exception):
    """The benchmark cannot produce a trustworthy number: stop and say why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now), VmHWM (peak), and RssAnon / RssFile (heap vs mapped files), in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[name] = int(value.split()[0])
    return out


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- HTTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> Reply:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def get(port: int, path: str, key: str | None = None) -> Reply:
    return request(port, "GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})


def post_json(port: int, path: str, payload: Any, headers: dict[str, str]) -> Reply:
    body = json.dumps(payload).encode()
    return request(port, "POST", path, body, {"Content-Type": "application/json", **headers})


# -- the server -----------------------------------------------------------------------------------


class Server:
    """`python -m bench.static_app`: lacak under uvicorn exactly as `lacak serve` runs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.static_app", "--port", str(self.port)],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited at start:\n{self.tail()}")
            try:
                if get(self.port, "/healthz").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"server did not answer /healthz within 60 s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"server died:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def running(env: dict[str, str], log: Path) -> Iterator[Server]:
    server = Server(env, log)
    try:
        yield server.start()
    finally:
        server.stop()


# -- wrk ------------------------------------------------------------------------------------------


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("wrk is not installed: apt-get install -y wrk")
    return found


def wrk_version() -> str:
    done = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).splitlines()[0].strip()


@dataclass
class Load:
    """One wrk run and what the machine did meanwhile."""

    mode: str
    requests: int
    seconds: float
    rps: float
    bytes_per_response: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: dict[str, int]
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core, 1.0 = 100 %
    server_cpu_us: float = 0.0  # server CPU time per request, in microseconds
    lookups: dict[str, int] = field(default_factory=dict)  # found / not_found, from /metrics

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _parse_wrk(output: str) -> dict[str, Any]:
    match = re.search(r"^BENCH_RESULT (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise BenchError(f"wrk printed no BENCH_RESULT line:\n{output[-3000:]}")
    parsed: dict[str, Any] = json.loads(match.group(1))
    return parsed


@dataclass(frozen=True)
class WrkPlan:
    duration: float
    connections: int
    threads: int
    unknown: float
    pairs: Path
    seed: int = 1


@dataclass(frozen=True)
class WrkJob:
    """One wrk process: its script, the script's arguments (after `--`), how hard, how long.

    Every script prints the `BENCH_RESULT` line of lookup.lua's `done()`.
    """

    mode: str
    script: Path
    args: tuple[str, ...]
    connections: int
    duration: float
    threads: int = 1

    def command(self, port: int) -> list[str]:
        return [
            wrk_path(), f"-t{self.threads}", f"-c{self.connections}", f"-d{self.duration:g}s",
            "--timeout", "10s", "-s", str(self.script), f"http://127.0.0.1:{port}", "--", *self.args,
        ]  # fmt: skip


def lookup_job(mode: str, plan: WrkPlan, duration: float | None = None) -> WrkJob:
    """lookup.lua in `mode` ("lookup" or "static")."""
    return WrkJob(
        mode, LUA, (mode, str(plan.pairs), f"{plan.unknown:g}", str(plan.seed)), plan.connections,
        plan.duration if duration is None else duration, plan.threads,
    )  # fmt: skip


def _load(mode: str, r: dict[str, Any]) -> Load:
    wall = r["duration_us"] / 1e6
    return Load(
        mode=mode, requests=r["requests"], seconds=wall, rps=r["requests"] / wall,
        bytes_per_response=r["bytes"] / max(r["requests"], 1),
        p50_ms=r["p50_us"] / 1000, p90_ms=r["p90_us"] / 1000, p99_ms=r["p99_us"] / 1000,
        p999_ms=r["p999_us"] / 1000, max_ms=r["max_us"] / 1000,
        errors={k.removeprefix("errors_"): int(v) for k, v in r.items() if k.startswith("errors_")},
    )  # fmt: skip


def wrk_together(port: int, jobs: Sequence[WrkJob]) -> list[Load]:
    """Run the jobs at the same time, one wrk process each, and wait for all of them."""
    procs = [subprocess.Popen(job.command(port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for job in jobs]  # fmt: skip
    try:
        outputs = [p.communicate(timeout=job.duration + 120) for p, job in zip(procs, jobs, strict=True)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    loads = []
    for job, proc, (out, err) in zip(jobs, procs, outputs, strict=True):
        if proc.returncode != 0:
            raise BenchError(f"wrk {job.mode} failed ({proc.returncode}):\n{out}\n{err}")
        loads.append(_load(job.mode, _parse_wrk(out)))
    return loads


def wrk(port: int, mode: str, plan: WrkPlan, duration: float | None = None) -> Load:
    return wrk_together(port, [lookup_job(mode, plan, duration)])[0]


# -- database-side CPU (PostgreSQL backends share the two cores with server and wrk) -------------


def pg_backend_pids(admin_url: str, database: str) -> list[int]:
    async def go() -> list[int]:
        conn = await asyncpg.connect(admin_url)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                database,
            )
        finally:
            await conn.close()
        return [int(r["pid"]) for r in rows]

    return asyncio.run(go())


def total_cpu(pids: Sequence[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds(pid)
        except OSError:
            continue  # gone since
    return out


# -- /metrics -------------------------------------------------------------------------------------

_LOOKUP = re.compile(r'^lacak_tracking_lookups_total\{result="(\w+)"\} ([0-9.e+]+)$', re.MULTILINE)


def lookup_counts(port: int) -> dict[str, int]:
    text = get(port, "/metrics").body.decode()
    return {name: int(float(value)) for name, value in _LOOKUP.findall(text)}


_COUNTER = re.compile(r"^(lacak_\w+_total)(\{[^}]*\})? ([0-9.e+]+)$", re.MULTILINE)


def counters(port: int) -> dict[str, float]:
    """Every lacak counter, keyed by name and labels as /metrics prints them."""
    text = get(port, "/metrics").body.decode()
    return {name + (labels or ""): float(value) for name, labels, value in _COUNTER.findall(text)}


# -- the typical response and the sanity check ---------------------------------------------------


def read_pairs(path: Path) -> list[tuple[str, str]]:
    with path.open() as fh:
        return [(k, o) for k, _, o in (line.rstrip("\n").partition("\t") for line in fh)]


@dataclass(frozen=True)
class Typical:
    """A seeded order whose tracking response has the median size of a random sample."""

    key: str
    order_id: str
    body: bytes
    etag: str
    sizes: tuple[int, ...]  # the sample's body sizes, sorted


async def _asgi_get(app: Any, path: str, key: str) -> Reply:
    """One GET straight through the ASGI app, no server: lacak's own code makes the bytes."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(start["status"], headers, body)


async def _responses(env: dict[str, str], sample: list[tuple[str, str]]) -> list[Reply]:
    app = create_app(Settings.from_env(env))
    async with app.router.lifespan_context(app):
        return [await _asgi_get(app, TRACKING + order_id, key) for key, order_id in sample]


def typical_response(env: dict[str, str], pairs: list[tuple[str, str]], n: int = 201) -> Typical:
    """Ask lacak itself (in process) for a sample of tracking responses; keep the median one."""
    sample = random.Random(42).sample(pairs, min(n, len(pairs)))
    replies = asyncio.run(_responses(env, sample))
    for (_, order_id), r in zip(sample, replies, strict=True):
        if r.status != 200 or r.json().get("status") is not True:
            raise BenchError(f"seeded order {order_id} does not track: HTTP {r.status} {r.body[:300]!r}")
    ranked = sorted(zip(replies, sample, strict=True), key=lambda rs: len(rs[0].body))
    reply, (key, order_id) = ranked[len(ranked) // 2]
    return Typical(key, order_id, reply.body, reply.headers.get("etag", ""),
                   tuple(len(r.body) for r, _ in ranked))  # fmt: skip


def _expect(ok: bool, what: str, reply: Reply) -> None:
    if not ok:
        raise BenchError(f"sanity check failed: {what}\n  got HTTP {reply.status}: {reply.body[:400]!r}")


def sanity(port: int, typical: Typical, pairs: list[tuple[str, str]]) -> None:
    """Before any load: every kind of request the benchmark sends answers what it should."""
    r = get(port, STATIC_PATH)
    _expect(r.status == 200 and r.body == typical.body, "static route returns the typical body", r)
    r = get(port, TRACKING + typical.order_id, typical.key)
    _expect(r.status == 200 and r.body == typical.body and r.headers.get("etag") == typical.etag,
            "the typical order's tracking response is byte-identical to the static one", r)  # fmt: skip
    for key, order_id in random.Random(7).sample(pairs, min(25, len(pairs))):
        r = get(port, TRACKING + order_id, key)
        body = r.json() if r.status == 200 else {}
        _expect(body.get("status") is True and body["result"]["order_id"] == order_id,
                f"tracking {order_id} is a 200 with status true and that order", r)  # fmt: skip
    key = pairs[0][0]
    r = get(port, TRACKING + "NX123456-1500000000", key)
    body = r.json() if r.status == 200 else {}
    _expect(body.get("status") is False and body.get("text") == "data not found",
            "an unknown order id is HTTP 200 'data not found'", r)  # fmt: skip
    r = get(port, TRACKING + pairs[0][1], "0" * 64)
    _expect(r.status == 401, "an unknown key is HTTP 401", r)


# -- py-spy collapsed stacks ----------------------------------------------------------------------

_LINE = re.compile(r":\d+\)$")


def profile_summary(path: Path, top: int = 15) -> str:
    """Top functions by self and by inclusive samples from `py-spy record -f raw` output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return "(no samples)"

    def block(title: str, counts: dict[str, int]) -> list[str]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [title, *(f"  {n / total:6.1%}  {frame}" for frame, n in ranked)]

    return "\n".join([f"{total} samples (busy only)", *block("self:", own), *block("inclusive:", inclusive)])


def sched(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds runnable but waiting for one, over the process's threads
    (/proc/PID/task/*/schedstat). The wait tells a process that is slow because other
    processes had the cores from one that is slow because it waits for I/O."""
    run = wait = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0, 0.0
    for task in tasks:
        try:
            on_cpu, queued, _ = (task / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        run, wait = run + int(on_cpu), wait + int(queued)
    return run / 1e9, wait / 1e9
