"""SQL for webhook deliveries: the database is the queue.

A claim takes due `pending` rows (PostgreSQL skips rows other workers hold with `FOR UPDATE
SKIP LOCKED`; SQLite runs the same statements under its write lock), counts the attempt and
moves `next_attempt_at` to the end of the lease, so a row whose worker died simply becomes due
again. Results are written in batches (one transaction for many attempts) and fenced on the
attempt number: a worker that outlived its lease cannot overwrite the newer attempt's result.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lacak.orders.models import Payment
from lacak.storage.db import Connection, Database, Row
from lacak.storage.rows import as_dt
from lacak.webhooks.breaker import Hold
from lacak.webhooks.models import Attempt, Delivery, Endpoint, Job, Status
from lacak.webhooks.schedule import Decision, Verdict

CHANNEL = "lacak_deliveries"  # PostgreSQL NOTIFY channel: "a delivery became due"

_JOB_COLUMNS = (
    "d.id, d.event_id, d.merchant_id, d.seq, d.attempts, d.payload, d.created_at, d.manual,"
    " m.callback_url, m.webhook_dialect,"
    " (SELECT k.key_enc FROM api_keys k WHERE k.merchant_id = d.merchant_id AND k.revoked_at IS NULL"
    "  ORDER BY k.id DESC LIMIT 1),"
    " e.secret_enc, e.old_secret_enc, e.old_secret_until, e.failing_since, e.disabled_at,"
    " p.id, p.payment_id, p.amount, p.status_code, p.qr_content, p.pay_time, p.created_at"
)
_JOB_FROM = (
    " FROM deliveries d JOIN merchants m ON m.id = d.merchant_id"
    " JOIN orders o ON o.id = d.order_pk JOIN payments p ON p.id = o.payment_pk"
    " LEFT JOIN webhook_endpoints e ON e.merchant_id = d.merchant_id"
)
_DELIVERY_COLUMNS = (
    "d.event_id, d.merchant_id, o.order_id, d.seq, d.state, d.status, d.attempts, d.next_attempt_at,"
    " d.created_at, d.delivered_at, d.last_status, d.last_error"
)
_ATTEMPT_COLUMNS = (
    "attempt, trigger, started_at, duration_ms, status_code, error_class, error, response_body, outcome"
)
_ATTEMPT_FIELDS = tuple(c.strip() for c in _ATTEMPT_COLUMNS.split(","))
_ENDPOINT_COLUMNS = (
    "m.id, m.callback_url, m.webhook_dialect, e.secret_enc, e.old_secret_until, e.failing_since,"
    " e.held_until, e.disabled_at, e.disabled_reason"
)


def marks(first: int, count: int) -> str:
    """`$first, $first+1, …`: an IN list both databases accept."""
    return ", ".join(f"${i}" for i in range(first, first + count))


def _when(value: Any) -> datetime:
    out = as_dt(value)
    assert out is not None, "NOT NULL column"
    return out


def job_from_row(row: Row) -> Job:
    (id_, event_id, merchant_id, seq, attempts, payload, created_at, manual, url, dialect, key_enc,
     secret_enc, old_secret_enc, old_until, failing_since, disabled_at,
     pay_pk, payment_id, amount, status_code, qr, pay_time, pay_created) = row  # fmt: skip
    payment = Payment(
        pk=pay_pk,
        merchant_id=merchant_id,
        payment_id=payment_id,
        amount=amount,
        status_code=status_code,
        qr_content=qr,
        pay_time=as_dt(pay_time),
        created_at=_when(pay_created),
    )
    return Job(
        id=id_,
        event_id=event_id,
        merchant_id=merchant_id,
        seq=seq,
        attempt=attempts,
        payload=payload,
        created_at=_when(created_at),
        manual=bool(manual),
        url=url,
        dialect=dialect,
        key_enc=key_enc,
        secret_enc=secret_enc,
        old_secret_enc=old_secret_enc,
        old_secret_until=as_dt(old_until),
        failing_since=as_dt(failing_since),
        disabled=disabled_at is not None,
        payment=payment,
    )


# -- claiming ------------------------------------------------------------------------------


async def claim(
    db: Database,
    now: datetime,
    lease_until: datetime,
    limit: int,
    *,
    busy: dict[int, int],
    per_endpoint: int,
    holds: Mapping[int, Hold] | None = None,
) -> list[Job]:
    """Claim up to `limit` due deliveries, at most `per_endpoint` in flight per merchant.

    `busy` is what this worker already has in flight per merchant; saturated merchants are
    left out of the query so that a slow endpoint's backlog cannot fill every claim. `holds`
    are the merchants the breaker holds back (`breaker.Breaker.holds`): their scheduled
    deliveries go up to the hold's cap and the others met here are put aside for its wait
    (`defer`), out of the due range, so later claims do not scan past them; their manual ones
    go one at a time. Only `limit`
    rows are locked, so concurrent claimers skip past each other; rows over a merchant's cap in
    this batch are left as they were (their lock ends with the claim).
    """
    holds = holds or {}
    full = [m for m, n in busy.items() if n >= per_endpoint]
    skip = f" AND merchant_id NOT IN ({marks(3, len(full))})" if full else ""
    async with db.transaction() as tx:
        candidates = await tx.fetch(
            "SELECT id, merchant_id, manual FROM deliveries"
            f" WHERE status = 'pending' AND next_attempt_at <= $1{skip}"
            " ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
            *full,
        )
        taken: dict[int, int] = {}
        ids: list[int] = []
        aside: dict[int, list[int]] = {}
        for id_, merchant_id, manual in candidates:
            n = busy.get(merchant_id, 0) + taken.get(merchant_id, 0)
            hold = holds.get(merchant_id)
            cap = per_endpoint if hold is None else min(per_endpoint, hold.allows(bool(manual)))
            if n < cap and len(ids) < limit:
                taken[merchant_id] = taken.get(merchant_id, 0) + 1
                ids.append(id_)
            elif hold is not None and not manual:
                aside.setdefault(merchant_id, []).append(id_)
        for merchant_id, held in aside.items():
            await defer(tx, held, now + timedelta(seconds=holds[merchant_id].wait))
        if not ids:
            return []
        # A probe of a held-back endpoint is under way: what happens meanwhile is scheduled
        # after it (`_holds`) rather than claimed only to be put aside.
        await _holds(tx, {m: now + timedelta(seconds=holds[m].wait) for m in taken if m in holds})
        where = f"id IN ({marks(2, len(ids))})"
        await tx.execute(
            "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, lease_until = $1"
            f" WHERE {where}",
            lease_until,
            *ids,
        )
        rows = await tx.fetch(f"SELECT {_JOB_COLUMNS}{_JOB_FROM} WHERE d.id IN ({marks(1, len(ids))})", *ids)
    return sorted((job_from_row(r) for r in rows), key=lambda j: j.created_at)


async def next_due(db: Database, *, skip: Collection[int] = ()) -> datetime | None:
    """When the next pending delivery is due, leaving out the merchants in `skip`."""
    where = f" AND merchant_id NOT IN ({marks(1, len(skip))})" if skip else ""
    row = await db.fetchrow(
        f"SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'{where}", *skip
    )
    return None if row is None else as_dt(row[0])


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished attempt, or (`attempted` False) a delivery set aside without sending."""

    job: Job
    decision: Decision
    started_at: datetime
    duration_ms: float = 0.0
    status_code: int | None = None
    error_class: str | None = None
    error: str | None = None
    response_body: str | None = None
    attempted: bool = True
    # Set when this result made the breaker hold the endpoint back (`breaker.Breaker.record`),
    # or end a hold (then it is the time of the answer): see `_holds`.
    held_until: datetime | None = None

    @property
    def failed(self) -> bool:
        return self.attempted and self.decision.verdict != Verdict.DELIVERED


_SETS = {
    Verdict.DELIVERED: "status = 'delivered', delivered_at = $3",
    Verdict.RETRY: "next_attempt_at = $3",
    Verdict.FAILED: "status = 'failed', next_attempt_at = $3",
    Verdict.DISABLED: "status = 'paused', next_attempt_at = $3",
}


async def record(db: Database, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Write a batch of results in one transaction (group commit)."""
    async with db.transaction() as tx:
        attempts = [_attempt_values(o) for o in outcomes if o.attempted]
        if attempts:
            await tx.executemany(
                f"INSERT INTO delivery_attempts (delivery_id, {_ATTEMPT_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                attempts,
            )
        for verdict, sets in _SETS.items():
            rows = [_result_values(o, now) for o in outcomes if o.decision.verdict == verdict]
            if rows:
                # Fenced: only the holder of the newest attempt writes the result.
                await tx.executemany(
                    f"UPDATE deliveries SET {sets}, lease_until = NULL, last_status = $4, last_error = $5,"
                    " manual = FALSE WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                    rows,
                )
        await _endpoint_health(tx, outcomes, now)


def _attempt_values(o: Outcome) -> tuple[Any, ...]:
    trigger = "manual" if o.job.manual else "scheduled"
    return (
        o.job.id, o.job.attempt, trigger, o.started_at, o.duration_ms, o.status_code,
        o.error_class, o.error, o.response_body, o.decision.verdict.value,
    )  # fmt: skip


def _result_values(o: Outcome, now: datetime) -> tuple[Any, ...]:
    when = o.decision.next_attempt_at if o.decision.verdict == Verdict.RETRY else now
    error = o.error or o.decision.reason
    return (o.job.id, o.job.attempt, when, o.status_code, error)


async def _endpoint_health(tx: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    # In finishing order: a success after a failure (same batch) leaves the endpoint healthy.
    failing: dict[int, datetime | None] = {}
    held: dict[int, datetime] = {}
    for o in outcomes:
        if o.attempted:
            failing[o.job.merchant_id] = o.started_at if o.failed else None
        if o.held_until is not None:
            held[o.job.merchant_id] = o.held_until
    await _holds(tx, held)
    for merchant_id, since in failing.items():
        if since is None:
            await tx.execute(
                "UPDATE webhook_endpoints SET failing_since = NULL WHERE merchant_id = $1"
                " AND failing_since IS NOT NULL",
                merchant_id,
            )
        else:
            await tx.execute(
                "UPDATE webhook_endpoints SET failing_since = $2 WHERE merchant_id = $1"
                " AND failing_since IS NULL",
                merchant_id,
                since,
            )
    for o in outcomes:
        if o.decision.verdict == Verdict.DISABLED and not o.job.disabled:
            await disable(tx, o.job.merchant_id, o.decision.reason or "disabled", now)


async def _holds(tx: Connection, held: Mapping[int, datetime]) -> None:
    """Record until when endpoints are held back (a time already past: no longer). The state
    change that enqueues an event schedules it then (`Store._enqueue`) instead of making it
    due at once: a down endpoint's new events cost no claim (a write transaction) each, only to
    be put aside (`defer`). Other processes' claimers follow it too, which is what they would
    learn by failing. Written only when a breaker opens or closes, never per success."""
    if held:
        sql = "UPDATE webhook_endpoints SET held_until = $2 WHERE merchant_id = $1"
        await tx.executemany(sql, list(held.items()))


async def disable(tx: Connection, merchant_id: int, reason: str, now: datetime) -> None:
    await tx.execute(
        "UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3, updated_at = $2"
        " WHERE merchant_id = $1 AND disabled_at IS NULL",
        merchant_id,
        now,
        reason,
    )
    # Its waiting events are kept, not dropped: re-enabling the endpoint resumes them.
    await tx.execute(
        "UPDATE deliveries SET status = 'paused', lease_until = NULL WHERE merchant_id = $1"
        " AND status = 'pending'",
        merchant_id,
    )


# -- endpoints -----------------------------------------------------------------------------


async def endpoint(db: Database, merchant_id: int) -> tuple[Endpoint, str | None, str | None] | None:
    """The endpoint, its sealed secret and sealed old secret (None when not set)."""
    row = await db.fetchrow(
        f"SELECT {_ENDPOINT_COLUMNS}, e.old_secret_enc FROM merchants m"
        " LEFT JOIN webhook_endpoints e ON e.merchant_id = m.id WHERE m.id = $1",
        merchant_id,
    )
    if row is None:
        return None
    id_, url, dialect, secret_enc, old_until, failing, held, disabled_at, reason, old_enc = row
    ep = Endpoint(
        merchant_id=id_,
        url=url,
        dialect=dialect,
        has_secret=secret_enc is not None,
        rotating_until=as_dt(old_until) if old_enc else None,
        failing_since=as_dt(failing),
        held_until=as_dt(held),
        disabled_at=as_dt(disabled_at),
        disabled_reason=reason,
    )
    return ep, secret_enc, old_enc


async def ensure_secret(tx: Connection, merchant_id: int, sealed: str, now: datetime) -> bool:
    """Give the merchant a signing secret unless it has one; True if `sealed` was stored."""
    exists = await tx.fetchval("SELECT 1 FROM webhook_endpoints WHERE merchant_id = $1", merchant_id)
    if exists:
        return False
    await tx.execute(
        "INSERT INTO webhook_endpoints (merchant_id, secret_enc, updated_at) VALUES ($1, $2, $3)",
        merchant_id,
        sealed,
        now,
    )
    return True


async def rotate_secret(
    tx: Connection, merchant_id: int, sealed: str, old_until: datetime, now: datetime
) -> None:
    await tx.execute(
        "UPDATE webhook_endpoints SET old_secret_enc = secret_enc, old_secret_until = $3, secret_enc = $2,"
        " updated_at = $4 WHERE merchant_id = $1",
        merchant_id,
        sealed,
        old_until,
        now,
    )


async def enable(tx: Connection, merchant_id: int, now: datetime) -> int:
    """Switch a disabled endpoint back on; its paused deliveries are due now. Returns how many."""
    await tx.execute(
        "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL,"
        " held_until = NULL, updated_at = $2 WHERE merchant_id = $1",
        merchant_id,
        now,
    )
    rows = await tx.fetch(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, manual = TRUE"
        " WHERE merchant_id = $1 AND status = 'paused' RETURNING id",
        merchant_id,
        now,
    )
    return len(rows)


# -- listing and manual sends --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    merchant_id: int | None = None
    status: Status | None = None
    order_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(f: Filters, first: int) -> tuple[str, list[Any]]:
    parts: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("d.merchant_id = ${}", f.merchant_id),
        ("d.status = ${}", f.status.value if f.status else None),
        ("o.order_id = ${}", f.order_id),
        ("d.created_at >= ${}", f.since),
        ("d.created_at < ${}", f.until),
    ):
        if value is not None:
            args.append(value)
            parts.append(clause.format(first + len(args) - 1))
    return (" AND ".join(parts) or "TRUE"), args


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    (event_id, merchant_id, order_id, seq, state, status, attempts, next_at, created_at, delivered_at,
     last_status, last_error) = row  # fmt: skip
    waiting = status == Status.PENDING
    return Delivery(
        event_id=event_id,
        merchant_id=merchant_id,
        order_id=order_id,
        seq=seq,
        state=state,
        status=status,
        attempts=attempts,
        next_attempt_at=as_dt(next_at) if waiting else None,
        created_at=_when(created_at),
        delivered_at=as_dt(delivered_at),
        last_status=last_status,
        last_error=last_error,
    )


async def page(db: Database, f: Filters, before: int | None, limit: int) -> tuple[list[Delivery], int | None]:
    """Newest first; returns the page and the cursor of the next one (None at the end)."""
    where, args = _where(f, 3)
    rows = await db.fetch(
        f"SELECT d.id, {_DELIVERY_COLUMNS} FROM deliveries d JOIN orders o ON o.id = d.order_pk"
        f" WHERE d.id < $1 AND {where} ORDER BY d.id DESC LIMIT $2",
        before if before is not None else 2**62,
        limit + 1,
        *args,
    )
    items = [delivery_from_row(tuple(r)[1:]) for r in rows[:limit]]
    cursor = rows[limit - 1][0] if len(rows) > limit else None
    return items, cursor


async def find(db: Database, event_id: str, merchant_id: int | None) -> tuple[int, Delivery] | None:
    mine = "" if merchant_id is None else " AND d.merchant_id = $2"
    row = await db.fetchrow(
        f"SELECT d.id, {_DELIVERY_COLUMNS} FROM deliveries d JOIN orders o ON o.id = d.order_pk"
        f" WHERE d.event_id = $1{mine}",
        event_id,
        *([] if merchant_id is None else [merchant_id]),
    )
    return None if row is None else (row[0], delivery_from_row(tuple(row)[1:]))


async def attempts(db: Database, delivery_pk: int) -> list[Attempt]:
    rows = await db.fetch(
        f"SELECT {_ATTEMPT_COLUMNS} FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id", delivery_pk
    )
    return [_attempt(r) for r in rows]


def _attempt(row: Row) -> Attempt:
    fields = dict(zip(_ATTEMPT_FIELDS, row, strict=True))
    fields["started_at"] = _when(fields["started_at"])
    return Attempt(**fields)


async def resend(tx: Connection, delivery_pk: int, now: datetime) -> None:
    """Due now, as a manual attempt, whatever its status (a delivered event may be asked for again)."""
    await tx.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, lease_until = NULL, manual = TRUE"
        " WHERE id = $1",
        delivery_pk,
        now,
    )


async def failed_since(
    db: Database, merchant_id: int | None, since: datetime, after: int, limit: int
) -> list[int]:
    """Ids of failed deliveries created since `since`, in id order after `after` (for batching)."""
    mine = "" if merchant_id is None else " AND merchant_id = $4"
    rows = await db.fetch(
        "SELECT id FROM deliveries WHERE status = 'failed' AND created_at >= $1 AND id > $2"
        f"{mine} ORDER BY id LIMIT $3",
        since,
        after,
        limit,
        *([] if merchant_id is None else [merchant_id]),
    )
    return [r[0] for r in rows]


async def count_failed(db: Database, since: datetime, merchant_id: int | None) -> int:
    mine = "" if merchant_id is None else " AND merchant_id = $2"
    row = await db.fetchrow(
        f"SELECT count(*) FROM deliveries WHERE status = 'failed' AND created_at >= $1{mine}",
        since,
        *([] if merchant_id is None else [merchant_id]),
    )
    return 0 if row is None else int(row[0])


async def defer(tx: Connection, ids: Collection[int], until: datetime) -> None:
    """These deliveries (of an endpoint the breaker holds back) become due at `until`; no
    attempt is spent. Done as claims meet them, so each is touched once per hold."""
    await tx.execute(
        f"UPDATE deliveries SET next_attempt_at = $1 WHERE id IN ({marks(2, len(ids))})", until, *ids
    )


async def requeue(tx: Connection, ids: Collection[int], now: datetime) -> int:
    if not ids:
        return 0
    rows = await tx.fetch(
        f"UPDATE deliveries SET status = 'pending', next_attempt_at = $1, lease_until = NULL, manual = TRUE"
        f" WHERE status = 'failed' AND id IN ({marks(2, len(ids))}) RETURNING id",
        now,
        *ids,
    )
    return len(rows)


async def counts(db: Database) -> tuple[int, datetime | None, int]:
    """Queue depth, oldest due pending delivery, disabled endpoints (for the metrics)."""
    row = await db.fetchrow("SELECT count(*), min(created_at) FROM deliveries WHERE status = 'pending'")
    disabled = await db.fetchrow("SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL")
    depth, oldest = (row[0], as_dt(row[1])) if row is not None else (0, None)
    return depth, oldest, disabled[0] if disabled is not None else 0


async def notify(tx: Connection, dialect: str) -> None:
    """Wake idle workers in other processes when the transaction commits (PostgreSQL only)."""
    if dialect == "postgresql":
        await tx.execute(f"NOTIFY {CHANNEL}")
