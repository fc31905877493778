"""A webhook receiver process for the end-to-end webhook tests, with fault injection.

    python -m tests.webhook_receiver --port N --secret whsec_… --log FILE --mode 500*2,200

Every POST is checked with the `standardwebhooks` and the `svix` packages exactly as a merchant
would use them (`Webhook(secret).verify(body, headers)`, unmodified), against each configured
secret, and one JSON line is appended to the log as soon as the request arrives (before any
injected delay, so that a request the sender gave up on is on record too): path, webhook-id,
verification results, headers, body, and the answer given.

`--mode` is a plan: comma-separated steps, each `ANSWER` or `ANSWER*N` (N requests); the last
step repeats for ever. Answers:

    200, 500, 410, …   that status
    hang[:S]           sleep S seconds (default `--hang`, longer than the sender's timeout), then 200
    slow:S             sleep S seconds, then 200
    429:S              429 with `Retry-After: S`
    301                301 with `Location:` the request's path + `/moved` on this receiver (hits
                       there are logged too, so a test can tell whether the redirect was followed)

One process serves many tests (starting Python with `svix` imported takes seconds): `POST
/_control` with JSON `{"path": "/hook/x", "mode": "...", "secrets": [...]}` gives a path a plan
and secrets of its own (starting its plan afresh); without `path` it changes the defaults, which
the command line sets and every other path uses. `GET /_control` answers 200 once listening.

`--listen-when FILE` keeps the port closed (connections refused) until FILE exists, printing
`armed` once started up, so that the port opens within milliseconds of the test asking.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

MOVED = "/moved"
CONTROL = "/_control"


@dataclass(frozen=True, slots=True)
class Step:
    answer: str  # as written in the plan: "200", "hang", "slow:0.5", "429:120", "301"
    times: int | None  # None: for ever (the last step)


def parse_plan(spec: str) -> list[Step]:
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("the mode is empty")
    steps = []
    for i, part in enumerate(parts):
        answer, _, count = part.partition("*")
        _check_answer(answer)
        last = i == len(parts) - 1
        steps.append(Step(answer, None if last else int(count or "1")))
    return steps


def _check_answer(answer: str) -> None:
    kind, _, arg = answer.partition(":")
    if kind in ("hang", "slow", "429") and (arg or kind == "hang"):
        if arg:
            float(arg)
        return
    if kind.isdigit() and not arg:
        return
    raise ValueError(f"unknown answer {answer!r}")


class Plan:
    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.served = 0  # requests answered under this plan

    def next(self) -> str:
        n = self.served
        self.served += 1
        for step in self.steps:
            if step.times is None or n < step.times:
                return step.answer
            n -= step.times
        return self.steps[-1].answer


@dataclass(slots=True)
class Hook:
    """What one path answers, and the secrets its requests are checked with."""

    plan: Plan
    secrets: list[str]


def verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> list[dict[str, bool]]:
    """Per secret: does each package accept the request?"""
    out = []
    for secret in secrets:
        result = {}
        for name, cls in (("standardwebhooks", StandardWebhook), ("svix", SvixWebhook)):
            try:
                cls(secret).verify(body, dict(headers))
            except Exception:  # any refusal (bad signature, old timestamp, missing header)
                result[name] = False
            else:
                result[name] = True
        out.append(result)
    return out


class Receiver:
    def __init__(self, port: int, log: Path, default: Hook, hang: float) -> None:
        self.port = port
        self.log = log
        self.default = default
        self.hooks: dict[str, Hook] = {}
        self.hang = hang

    def record(self, entry: dict[str, Any]) -> None:
        with self.log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    async def hook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        moved = request.path.endswith(MOVED)
        hook = self.hooks.get(request.path.removesuffix(MOVED) if moved else request.path, self.default)
        answer = "200" if moved else hook.plan.next()
        checks = verify(hook.secrets, body, headers)
        self.record(
            {
                "at": time.time(),
                "path": request.path,
                "method": request.method,
                "webhook_id": headers.get("webhook-id"),
                # Verified with at least one of the path's secrets, per package.
                "verified": {name: any(c[name] for c in checks) for name in ("standardwebhooks", "svix")},
                "verified_by": checks,  # per secret, in the order configured
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
                "answer": answer,
            }
        )
        return await self.respond(answer, request.path)

    async def respond(self, answer: str, path: str) -> web.StreamResponse:
        kind, _, arg = answer.partition(":")
        if kind == "hang":
            await asyncio.sleep(float(arg) if arg else self.hang)
            return web.Response(text="late")
        if kind == "slow":
            await asyncio.sleep(float(arg))
            return web.Response(text="ok")
        if kind == "429" and arg:
            return web.Response(status=429, text="slow down", headers={"Retry-After": arg})
        status = int(kind)
        if 300 <= status < 400:
            location = f"http://127.0.0.1:{self.port}{path}{MOVED}"
            return web.Response(status=status, text="moved", headers={"Location": location})
        return web.Response(status=status, text=f"answer {status}")

    async def control(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            change = await request.json()
            path = change.get("path")
            current = self.default if path is None else self.hooks.get(path)
            plan = Plan(parse_plan(change["mode"])) if "mode" in change else None
            secrets = list(change["secrets"]) if "secrets" in change else None
            if current is None:
                assert path is not None
                current = self.hooks[path] = Hook(plan or Plan(parse_plan("200")), secrets or [])
            else:
                current.plan = plan or current.plan
                current.secrets = current.secrets if secrets is None else secrets
        return web.json_response({"paths": len(self.hooks)})


def app(receiver: Receiver) -> web.Application:
    application = web.Application()
    application.router.add_route("*", CONTROL, receiver.control)
    application.router.add_route("*", "/{tail:.*}", receiver.hook)
    return application


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", action="append", default=[], help="whsec_ secret (repeatable)")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--mode", default="200")
    parser.add_argument("--hang", type=float, default=30.0, help="seconds a `hang` answer takes")
    parser.add_argument(
        "--listen-when",
        type=Path,
        help="bind the port only once this file exists (a refusing port that opens fast)",
    )
    args = parser.parse_args(argv)
    if args.listen_when is not None:
        print("armed", flush=True)  # started up: the port opens as soon as the file appears
        while not args.listen_when.exists():
            time.sleep(0.01)
    default = Hook(Plan(parse_plan(args.mode)), args.secret)
    receiver = Receiver(args.port, args.log, default, args.hang)
    # A short shutdown: a hung request is not worth waiting for when the test is over.
    web.run_app(
        app(receiver), host="127.0.0.1", port=args.port, print=None, access_log=None, shutdown_timeout=0.5
    )


if __name__ == "__main__":
    main()
