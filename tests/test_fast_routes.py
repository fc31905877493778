"""The raw-ASGI fast path's dispatch table, and the cheap parts the hot writes rely on."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lacak.http.app import create_app
from lacak.http.routes import fast_routes
from lacak.settings import Settings
from lacak.storage.sqlite import _open
from lacak.storage.store import new_event_id
from lacak.timeutil import wire
from tests.support import SECRET_KEY


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def test_callbacks_and_tracking_are_on_the_fast_path_other_methods_are_not(tmp_path: Path) -> None:
    env = {"LACAK_DATA_DIR": str(tmp_path), "LACAK_SECRET_KEY": SECRET_KEY}
    fast = fast_routes(create_app(Settings.from_env(env)))
    for provider in ("gosend", "grab_express", "borzo"):
        path = f"/couriers/{provider}/callback"
        hit = fast._match(_scope("POST", path))
        assert hit is not None and hit.route.path == path
        for method in ("GET", "HEAD", "PUT"):
            assert fast._match(_scope(method, path)) is None  # Starlette answers: 405 envelope
    tracking = fast._match(_scope("GET", "/api/mitra/v4/instant/tracking/ABC-1"))
    assert tracking is not None and tracking.route.path.endswith("{order_id:path}")
    assert fast._match(_scope("POST", "/api/mitra/v4/instant/tracking/ABC-1")) is None
    assert fast._match(_scope("GET", "/api/mitra/v4/instant/tracking/ABC-1/history")) is None


def test_event_ids_keep_their_shape_and_sort_by_time() -> None:
    earlier = [new_event_id() for _ in range(50)]
    time.sleep(0.002)
    later = [new_event_id() for _ in range(50)]
    assert all(re.fullmatch(r"msg_[0-9a-f]{32}", i) for i in earlier + later)
    assert len(set(earlier + later)) == 100
    assert max(earlier) < min(later)  # new ids land at the end of the unique index


def test_wire_is_the_same_text_for_the_same_instant_in_any_zone() -> None:
    at = datetime(2024, 1, 19, 4, 1, 37, 5, tzinfo=UTC)
    wib = at.astimezone(timezone(timedelta(hours=7)))
    assert wire(at) == wire(wib) == "2024-01-19T04:01:37.000005Z"
    assert wire(at + timedelta(microseconds=1)) == "2024-01-19T04:01:37.000006Z"


def test_sqlite_keeps_savepoint_journals_in_memory(tmp_path: Path) -> None:
    # Every grouped write runs in a SAVEPOINT; with journals in temp files each first change to
    # a page also went through a file, a third of a courier callback's cost.
    conn = _open(str(tmp_path / "x.db"))
    try:
        assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
