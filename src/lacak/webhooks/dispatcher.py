"""The loop that sends due webhook deliveries.

One claimer keeps up to `concurrency` sends in flight, at most `per_endpoint` per merchant, so a
slow or dead endpoint holds a few slots and never the whole worker. Finished attempts are queued
and written by one recorder in batches (group commit), so the database sees one transaction per
batch, not per event. A state change in this process wakes the claimer directly (`wake`); on
PostgreSQL, changes made by other processes wake it through LISTEN/NOTIFY; otherwise it looks
again when the next retry is due, and at least every `idle` seconds.

Nothing here is needed for correctness after a crash: a claimed row whose result was never
written becomes due again when its lease ends, and is sent again (at least once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import msgspec

from lacak.crypto import SecretBox
from lacak.errors import StorageError
from lacak.metrics import Metrics
from lacak.orders.models import Order
from lacak.storage.db import Database
from lacak.webhooks import dialects, signing, store
from lacak.webhooks.breaker import Breaker
from lacak.webhooks.models import Job
from lacak.webhooks.schedule import Decision, Policy, Result, Verdict
from lacak.webhooks.store import Outcome
from lacak.webhooks.transport import Reply, Transport, TransportError

log = logging.getLogger("lacak.webhooks")

USER_AGENT = "KiriminAja-Push-Services"
KEY_CONTEXT = b"api-key"
SECRET_CONTEXT = b"webhook-secret"
_decode_order = msgspec.json.Decoder(Order).decode


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    concurrency: int = 100
    per_endpoint: int = 10
    batch: int = 100
    lease: float = 60.0  # longer than the request timeout: a live send is never taken over
    idle: float = 1.0


class Secrets:
    """Opens sealed API keys and signing secrets, remembering the plaintext per sealed value."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box
        self._open: dict[tuple[str, bytes], str] = {}

    def open(self, sealed: str, context: bytes) -> str:
        key = (sealed, context)
        plain = self._open.get(key)
        if plain is None:
            if len(self._open) > 10_000:
                self._open.clear()
            plain = self._open[key] = self.box.open(sealed, context=context)
        return plain


class Dispatcher:
    def __init__(
        self,
        db: Database,
        transport: Transport,
        secrets: Secrets,
        policy: Policy,
        metrics: Metrics,
        clock: Callable[[], datetime],
        config: DispatchConfig,
        breaker: Breaker | None = None,
    ) -> None:
        self.db = db
        self.transport = transport
        self.secrets = secrets
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self.config = config
        self.breaker = breaker or Breaker(time.monotonic, scale=policy.scale)
        self._wake = asyncio.Event()
        self._busy: dict[int, int] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._results: list[Outcome] = []
        self._have_results = asyncio.Event()
        self._closing = False
        self._refill = max(1, min(config.batch, config.concurrency) // 4)
        self._last_claim = 0.0
        self._drained = False  # the last claim found less than it could take

    def wake(self) -> None:
        self._wake.set()

    # -- the claimer -----------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        recorder = asyncio.create_task(self._record_forever(), name="lacak-webhook-recorder")
        gauges = asyncio.create_task(self._gauges_forever(), name="lacak-webhook-gauges")
        try:
            while not stop.is_set():
                # Cleared before looking, not before sleeping: a wake that comes while a claim
                # is under way (a send finishing, a NOTIFY) must cut the next sleep short.
                self._wake.clear()
                wait = await self._claim_and_start()
                if wait > 0:
                    await self._sleep(stop, wait)
                else:
                    # SQLite runs every query inline: without this yield a run of claims would
                    # keep the loop (and the sends and requests waiting on it) from running.
                    await asyncio.sleep(0)
        finally:
            if self._inflight:
                await asyncio.wait(self._inflight)
            gauges.cancel()
            # The recorder is told to finish, not cancelled: a cancel in the middle of writing
            # a batch would drop results that were already sent (and send them again later).
            self._closing = True
            self._have_results.set()
            await recorder

    async def run_once(self) -> int:
        """Claim what is due, send it, record the results; the number sent (for tests and tools)."""
        started = await self._claim()
        if self._inflight:
            await asyncio.wait(self._inflight)
        await self._flush()
        return started

    async def _claim_and_start(self) -> float:
        """Start what is due; seconds to wait before looking again (0: look again now)."""
        free = self.config.concurrency - len(self._inflight)
        recent = time.monotonic() - self._last_claim < self.config.idle
        if free <= 0 or (self._inflight and free < self._refill and recent):
            # Every finishing send wakes us: claiming for each one alone would cost a claim
            # query per delivery. Waiting until a quarter of the slots are free keeps claims
            # batched while the pipe stays three quarters full; after `idle` without a claim
            # (sends hanging until their timeout) whatever is free is used.
            return self.config.idle
        limit = min(free, self.config.batch)
        try:
            if self._drained:
                # A cheap read first: most wake-ups after a drained claim come from state
                # changes that enqueued nothing to send (merchants without a callback URL), and
                # a claim is a write transaction, which on SQLite holds up every other writer.
                wait = await self._until_next_due()
                if wait > 0:
                    return wait
            self._last_claim = time.monotonic()
            started = await self._claim(limit)
            self._drained = started < limit
            if started >= limit:
                return 0.0
            # Also after a partial claim: rows past a capped merchant's backlog may be due.
            return await self._until_next_due()
        except StorageError:
            log.exception("webhook dispatch: database error")
            return self.config.idle

    async def _claim(self, limit: int | None = None) -> int:
        now = self.clock()
        jobs = await store.claim(
            self.db,
            now,
            now + timedelta(seconds=self.config.lease),
            limit or self.config.batch,
            busy=self._busy,
            per_endpoint=self.config.per_endpoint,
            holds=self.breaker.holds(),
        )
        for job in jobs:
            self._busy[job.merchant_id] = self._busy.get(job.merchant_id, 0) + 1
            task = asyncio.create_task(self._deliver(job))
            self._inflight.add(task)
            task.add_done_callback(self._finished)
        return len(jobs)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()  # a slot is free

    async def _until_next_due(self) -> float:
        # Merchants at their cap are left out: their due rows cannot be claimed until one of
        # their sends finishes, which wakes the claimer. Counting them made a slow endpoint's
        # backlog "due now" for ever, and the claimer spun on the database.
        # A held-back merchant's due rows count (the next claim puts them aside) unless even a
        # manual one could not go now.
        holds = self.breaker.holds()
        cap = self.config.per_endpoint
        room = {m: min(cap, h.allows(True)) for m, h in holds.items()}
        full = [m for m, n in self._busy.items() if n >= room.get(m, cap)]
        nxt = await store.next_due(self.db, skip=full)
        # An endpoint held back by the breaker is looked at again when its cooldown ends.
        wait = min(self.config.idle, self.breaker.next_change() or self.config.idle)
        if nxt is None:
            return wait
        return max(0.0, min(wait, (nxt - self.clock()).total_seconds()))

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        # Let a burst of changes (or of finished sends) gather into one claim.
        await asyncio.sleep(0.002)

    # -- one delivery ----------------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        started = time.monotonic()
        try:
            outcome = await self._attempt(job)
        except Exception as exc:  # one broken delivery must not stop the others
            log.exception("webhook delivery crashed", extra={"event_id": job.event_id})
            outcome = self._crashed(job, exc)
        else:
            if outcome.attempted:  # "http" (an answer, any status) closes the breaker
                outcome = self._breaker_saw(job, outcome, started)
        finally:
            left = self._busy.get(job.merchant_id, 1) - 1
            if left:
                self._busy[job.merchant_id] = left
            else:
                self._busy.pop(job.merchant_id, None)
        self._results.append(outcome)
        self._have_results.set()

    def _breaker_saw(self, job: Job, outcome: Outcome, started: float) -> Outcome:
        """Tell the breaker; a hold that begins or ends here goes to the database with the
        result (`store._holds`), so that new events are scheduled after it."""
        was_held = self.breaker.holding(job.merchant_id)
        cooldown = self.breaker.record(job.merchant_id, outcome.error_class, started)
        if cooldown is not None:  # opened, or a failed probe reopened it for longer
            return replace(outcome, held_until=self.clock() + timedelta(seconds=cooldown))
        if was_held and not self.breaker.holding(job.merchant_id):  # answered: new events go now
            return replace(outcome, held_until=self.clock())
        return outcome

    async def _attempt(self, job: Job) -> Outcome:
        now = self.clock()
        if job.disabled:
            return Outcome(
                job, Decision(Verdict.DISABLED, reason="the endpoint is disabled"), now, attempted=False
            )
        if not job.url:  # resent while the merchant has no callback URL: nothing to send to
            return Outcome(
                job, Decision(Verdict.FAILED, reason="the merchant has no callback URL"), now, attempted=False
            )
        body = self._body(job)
        headers = await self._headers(job, body)
        started = time.perf_counter()
        try:
            reply = await self.transport.post(job.url, body, headers)
        except TransportError as exc:
            elapsed = time.perf_counter() - started
            result = Result(error_class=exc.kind, permanent=exc.permanent)
            return self._outcome(job, now, elapsed, result, error=str(exc))
        return self._reply_outcome(job, now, reply)

    def _reply_outcome(self, job: Job, now: datetime, reply: Reply) -> Outcome:
        result = Result(status=reply.status, retry_after=reply.retry_after)
        text = reply.body.decode("utf-8", "replace")
        error = None if result.ok else f"HTTP {reply.status}"
        return self._outcome(job, now, reply.elapsed, result, error=error, body=text)

    def _outcome(
        self,
        job: Job,
        now: datetime,
        elapsed: float,
        result: Result,
        *,
        error: str | None,
        body: str | None = None,
    ) -> Outcome:
        decision = self.policy.decide(result, job.attempt, self.clock(), job.failing_since)
        self.metrics.webhook_attempts.labels(decision.verdict.value).inc()
        self.metrics.webhook_latency.observe(elapsed)
        error_class = None if result.ok else (result.error_class or "http")
        return Outcome(
            job,
            decision,
            now,
            duration_ms=round(elapsed * 1000, 3),
            status_code=result.status,
            error_class=error_class,
            error=error,
            response_body=body,
        )

    def _crashed(self, job: Job, exc: Exception) -> Outcome:
        result = Result(error_class="connect")
        decision = self.policy.decide(result, job.attempt, self.clock(), job.failing_since)
        return Outcome(job, decision, self.clock(), error=f"internal error: {type(exc).__name__}")

    def _body(self, job: Job) -> bytes:
        order = _decode_order(job.payload)
        return dialects.render(
            dialects.Dialect(job.dialect),
            order,
            event_id=job.event_id,
            event_time=job.created_at,
            payment=job.payment,
        )

    async def _headers(self, job: Job, body: bytes) -> dict[str, str]:
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if job.key_enc:
            headers["Authorization"] = "Bearer " + self.secrets.open(job.key_enc, KEY_CONTEXT)
        headers.update(
            signing.headers(await self._signing_secrets(job), job.event_id, int(time.time()), body)
        )
        return headers

    async def _signing_secrets(self, job: Job) -> list[str]:
        if job.secret_enc is None:
            # A callback set before signing existed, or by hand in the database: sign anyway.
            sealed = self.secrets.box.seal(signing.new_secret(), context=SECRET_CONTEXT)
            async with self.db.transaction() as tx:
                await store.ensure_secret(tx, job.merchant_id, sealed, self.clock())
            found = await store.endpoint(self.db, job.merchant_id)
            assert found is not None and found[1] is not None
            return [self.secrets.open(found[1], SECRET_CONTEXT)]
        out = [self.secrets.open(job.secret_enc, SECRET_CONTEXT)]
        if job.old_secret_enc and job.old_secret_until and job.old_secret_until > self.clock():
            out.append(self.secrets.open(job.old_secret_enc, SECRET_CONTEXT))
        return out

    async def _gauges_forever(self, every: float = 5.0) -> None:
        while True:
            try:
                depth, oldest, disabled = await store.counts(self.db)
            except StorageError:
                log.warning("webhook gauges: database error")
            else:
                age = 0.0 if oldest is None else max(0.0, (self.clock() - oldest).total_seconds())
                self.metrics.webhook_queue_depth.set(depth)
                self.metrics.webhook_oldest_pending.set(age)
                self.metrics.webhook_disabled_endpoints.set(disabled)
            await asyncio.sleep(every)

    # -- the recorder ----------------------------------------------------------------------

    async def _record_forever(self) -> None:
        while not (self._closing and not self._results):
            await self._have_results.wait()
            self._have_results.clear()
            await self._flush()

    async def _flush(self) -> None:
        batch, self._results = self._results, []
        if not batch:
            return
        for attempt in range(5):
            try:
                await store.record(self.db, batch, self.clock())
                return
            except StorageError:
                # The sends happened; if their results cannot be written, the leases run out
                # and the events go again (a duplicate, never a loss).
                log.exception("webhook results not recorded", extra={"try": attempt + 1, "size": len(batch)})
                await asyncio.sleep(1.0)
