"""What a provider module may use, handed over once at start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lacak.settings import Settings
from lacak.storage.db import Database
from lacak.storage.store import Store


@dataclass(frozen=True, slots=True)
class CourierDeps:
    settings: Settings
    db: Database
    store: Store
    clock: Callable[[], datetime]
