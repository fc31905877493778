"""PostgreSQL LISTEN on a dedicated connection, reconnecting for as long as the process runs.

Pooled connections never LISTEN (lacak skips the pool's per-release reset, see postgres.py),
so the listener owns one connection of its own. After every (re)connect the callback runs
once: notifications sent while the connection was down are lost, and the caller must look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger("lacak.storage")


async def listen_forever(
    url: str,
    channel: str,
    callback: Callable[[], None],
    stop: asyncio.Event,
    *,
    retry: float = 1.0,
    on_message: Callable[[str], None] | None = None,
) -> None:
    """Call `on_message(payload)` per notification (`callback()` if None), `callback()` after
    every (re)connect."""
    message = on_message or (lambda _payload: callback())
    while not stop.is_set():
        lost = asyncio.Event()
        conn: Any = None
        try:
            conn = await asyncpg.connect(url, timeout=5)
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            await conn.add_listener(channel, lambda _c, _pid, _ch, payload: message(payload))
            callback()
            waits = [asyncio.ensure_future(lost.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("listen %s: %s; retrying", channel, type(exc).__name__)
        finally:
            if conn is not None and not conn.is_closed():
                try:
                    await conn.close(timeout=2)
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    conn.terminate()  # a dead server's goodbye must not end the listening
        if not stop.is_set():
            await asyncio.sleep(retry)
