"""A task: one piece of due work (a courier booking, a simulator step, …)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Task(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: str
    order_pk: int | None
    due_at: datetime
    lease_until: datetime
    attempts: int
    payload: dict[str, Any]
