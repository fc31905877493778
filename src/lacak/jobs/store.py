"""SQL for tasks. Claims are one statement on both databases.

PostgreSQL skips rows other workers hold (`FOR UPDATE SKIP LOCKED`); SQLite runs the same
UPDATE atomically under its write lock (the adapter drops the locking clause). A claim sets a
lease; whoever finishes a task proves it still holds that lease (`complete` is fenced), so a
worker that stalled past its lease cannot finish a step another worker has taken over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from lacak.jobs.models import Task
from lacak.storage.db import Connection, Database, Row
from lacak.storage.rows import as_dt

_COLUMNS = "id, kind, order_pk, due_at, lease_until, attempts, payload"
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class LeaseLost(Exception):
    """The task's lease expired and another worker claimed it: roll back this attempt."""


def task_from_row(row: Row) -> Task:
    id_, kind, order_pk, due_at, lease_until, attempts, payload = row
    return Task(
        id=id_,
        kind=kind,
        order_pk=order_pk,
        due_at=_when(due_at),
        lease_until=_when(lease_until),
        attempts=attempts,
        payload=_decode(payload),
    )


def _when(value: datetime | str) -> datetime:
    out = as_dt(value)
    assert out is not None, "claimed tasks always have due_at and lease_until"
    return out


async def enqueue(
    tx: Connection, kind: str, order_pk: int | None, due_at: datetime, payload: dict[str, Any], now: datetime
) -> None:
    await tx.execute(
        "INSERT INTO tasks (kind, order_pk, due_at, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
        kind,
        order_pk,
        due_at,
        msgspec.json.encode(payload).decode(),
        now,
    )


async def claim(
    db: Database, kinds: Sequence[str], now: datetime, lease: timedelta, limit: int
) -> list[Task]:
    marks = ", ".join(f"${i}" for i in range(4, 4 + len(kinds)))
    async with db.transaction() as tx:
        rows = await tx.fetch(
            f"UPDATE tasks SET lease_until = $2, attempts = attempts + 1 WHERE id IN ("
            f" SELECT id FROM tasks WHERE done_at IS NULL AND due_at <= $1"
            f" AND (lease_until IS NULL OR lease_until < $1) AND kind IN ({marks})"
            f" ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {_COLUMNS}",
            now,
            now + lease,
            limit,
            *kinds,
        )
    return sorted((task_from_row(r) for r in rows), key=lambda t: t.due_at)


async def complete(tx: Connection, task: Task, now: datetime) -> None:
    """Mark done inside the caller's transaction, or raise LeaseLost (caller rolls back)."""
    done = await tx.fetchval(
        "UPDATE tasks SET done_at = $3 WHERE id = $1 AND lease_until = $2 AND done_at IS NULL RETURNING id",
        task.id,
        task.lease_until,
        now,
    )
    if done is None:
        raise LeaseLost(f"task {task.id} lease lost")


async def retry(db: Database, task: Task, due_at: datetime, error: str) -> None:
    async with db.transaction() as tx:
        await tx.execute(
            "UPDATE tasks SET due_at = $3, lease_until = NULL, last_error = $4"
            " WHERE id = $1 AND lease_until = $2 AND done_at IS NULL",
            task.id,
            task.lease_until,
            due_at,
            error[:2000],
        )


async def next_due(db: Database, kinds: Sequence[str]) -> datetime | None:
    marks = ", ".join(f"${i}" for i in range(1, 1 + len(kinds)))
    row = await db.fetchrow(
        f"SELECT min(due_at) FROM tasks WHERE done_at IS NULL AND kind IN ({marks})", *kinds
    )
    return None if row is None else as_dt(row[0])
