"""The hub between order changes and open live pages, one per server process.

Every open event stream is a `Watch` on one order. The hub keeps one entry per watched order:
its snapshot, already encoded as the stream's frames, so a change is read and encoded once
however many pages show it. Three things move an entry:

- a state change: `changed(pk)`, from PostgreSQL's NOTIFY (any process's change) or, on
  SQLite, from this process's own commits; the entry is reloaded at once;
- a look every `poll` seconds at all watched orders in one query: positions (so a page gets
  at most one every `POSITION_EVERY` seconds, and position writes notify nobody), and any
  state change a notification missed (another process on SQLite, a LISTEN reconnect);
- time: a finished order's link expires, and its pages are told `gone`.

A watch holds flags, not a queue: a slow page skips to the newest state instead of piling up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import msgspec

from lacak.live import views
from lacak.live.links import expires_at
from lacak.live.store import Found, LiveStore
from lacak.positions.store import Point

log = logging.getLogger("lacak.live")
POSITION_EVERY = 2.0  # seconds: the most often a page gets the driver's position
POSITION_SPREAD = 1.0  # seconds over which one look's position events leave, page by page
_encode = msgspec.json.Encoder().encode


def state_frame(snapshot: dict[str, Any]) -> bytes:
    return b"id: %d\nevent: state\ndata: %s\n\n" % (snapshot["seq"], _encode(snapshot))


def position_frame(position: dict[str, Any] | None) -> bytes:
    return b"" if position is None else b"event: position\ndata: %s\n\n" % _encode(position)


GONE_FRAME = b"event: gone\ndata: {}\n\n"


class Watch:
    """One open stream: what it has not sent yet."""

    __slots__ = ("_event", "closed", "gone", "pk", "position", "state")

    def __init__(self, pk: int) -> None:
        self.pk = pk
        self.state = False
        self.position = False
        self.gone = False
        self.closed = False  # the page went away
        self._event = asyncio.Event()

    def mark(self, *, state: bool = False, position: bool = False, gone: bool = False) -> None:
        self.state |= state
        self.position |= position
        self.gone |= gone
        self._event.set()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    async def wait(self, quiet: float) -> bool:
        """True when something is to be sent, False after `quiet` seconds (heartbeat time)."""
        # asyncio.timeout cancels this task itself: no helper task per wait, as wait_for makes.
        try:
            async with asyncio.timeout(quiet):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


@dataclass(slots=True)
class Entry:
    snapshot: dict[str, Any]
    state: bytes
    seq: int
    expires: datetime | None
    point: Point | None = None
    position: bytes = b""
    sent_at: float = 0.0  # loop time of the last position pushed
    watches: set[Watch] = field(default_factory=set)


class LiveHub:
    def __init__(
        self,
        live: LiveStore,
        ttl_hours: float,
        poll: float,
        clock: Callable[[], datetime],
        *,
        own_origin: str = "",
    ) -> None:
        self.live = live
        self.own_origin = own_origin  # lacak's public URL: its own photo links become paths
        self.ttl_hours = ttl_hours
        self.poll = poll
        self.clock = clock
        self._entries: dict[int, Entry] = {}
        self._dirty: set[int] = set()
        self._pending: set[int] = set()  # changed by this process, not yet committed
        self._wake = asyncio.Event()
        self._loading: dict[int, asyncio.Future[Entry | None]] = {}
        self._look_now = False

    # -- what pages see -----------------------------------------------------------------------

    @property
    def streams(self) -> int:
        return sum(len(e.watches) for e in self._entries.values())

    async def snapshot(self, pk: int, found: Found | None = None) -> dict[str, Any] | None:
        """The order's snapshot: the watched copy, or a fresh one for an order nobody watches."""
        entry = self._entries.get(pk) or await self._load(pk, found)
        return None if entry is None else entry.snapshot

    async def subscribe(self, pk: int, found: Found | None = None) -> tuple[Watch, Entry] | None:
        entry = self._entries.get(pk)
        if entry is None:
            entry = await self._load(pk, found)
            if entry is None:
                return None
            # Two pages may open the same order at once: the first to finish loading is kept.
            if pk not in self._entries:
                # A change announced while it loaded found no entry to mark: look again now.
                self._dirty.add(pk)
                self._wake.set()
            entry = self._entries.setdefault(pk, entry)
        watch = Watch(pk)
        entry.watches.add(watch)
        return watch, entry

    def unsubscribe(self, watch: Watch) -> None:
        entry = self._entries.get(watch.pk)
        if entry is None:
            return
        entry.watches.discard(watch)
        if not entry.watches:
            del self._entries[watch.pk]

    def entry(self, pk: int) -> Entry | None:
        return self._entries.get(pk)

    # -- what changes arrive from -------------------------------------------------------------

    def changed(self, pk: int) -> None:
        if pk in self._entries:
            self._dirty.add(pk)
            self._wake.set()

    def wake(self) -> None:
        """Run the loop now (a change, or a stop that must not wait for the next look)."""
        self._wake.set()

    def changed_all(self) -> None:
        """Notifications may have been missed (a LISTEN reconnect): look at every order now
        (one query compares every seq; only the changed ones are read again)."""
        self._look_now = True
        self._wake.set()

    def pending(self, pk: int) -> None:
        """A change inside an open transaction of this process; `committed` makes it count."""
        self._pending.add(pk)

    def committed(self) -> None:
        # A rolled-back change may be in here too: reloading finds the same seq and sends nothing.
        for pk in self._pending:
            self.changed(pk)
        self._pending.clear()

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_look = loop.time()
        while not stop.is_set():
            timeout = max(0.0, next_look - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self._refresh()
                if self._look_now or loop.time() >= next_look:
                    self._look_now = False
                    next_look = loop.time() + self.poll
                    await self._look(loop.time())
                    self._expire()
            except Exception:  # the database may be down for a while: pages keep their last view
                log.exception("live update failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll)

    async def _refresh(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for pk in dirty:
            if pk in self._entries:
                await self._reload(pk)

    async def _look(self, now: float) -> None:
        seen = await self.live.look(list(self._entries))
        for pk, s in seen.items():
            entry = self._entries.get(pk)
            if entry is None:
                continue
            if s.seq != entry.seq:
                await self._reload(pk)
            elif s.position != entry.point and now - entry.sent_at >= POSITION_EVERY - 0.05:
                self._move(entry, s.position, now)

    def _expire(self) -> None:
        now = self.clock()
        for entry in self._entries.values():
            if entry.expires is not None and now >= entry.expires:
                for w in entry.watches:
                    w.mark(gone=True)

    async def _reload(self, pk: int) -> None:
        fresh = await self._load(pk)
        entry = self._entries.get(pk)
        if entry is None:
            return
        if fresh is None:  # the order is gone from the database: nothing more to show
            for w in entry.watches:
                w.mark(gone=True)
            return
        if fresh.seq == entry.seq:
            return
        entry.snapshot, entry.state, entry.seq, entry.expires = (
            fresh.snapshot,
            fresh.state,
            fresh.seq,
            fresh.expires,
        )
        # The state event carries the position; the next position event keeps its own pace.
        entry.point, entry.position = fresh.point, fresh.position
        for w in entry.watches:
            w.mark(state=True)

    def _move(self, entry: Entry, point: Point | None, now: float) -> None:
        entry.point = point
        if entry.snapshot["terminal"] or point is None:
            return
        clock = views.Clock(entry.snapshot["origin"]["long"])
        position = views.position(point, clock)
        entry.snapshot = {**entry.snapshot, "position": position}
        # A page opened from now on gets the new position with its first state event.
        entry.state = state_frame(entry.snapshot)
        entry.position = position_frame(position)
        entry.sent_at = now
        for w in entry.watches:
            w.mark(position=True)

    async def _load(self, pk: int, found: Found | None = None) -> Entry | None:
        # Concurrent loads of one order (a burst of pages, a change) share one read. It runs as
        # a task of its own: a caller cancelled while waiting (a page that went away) must not
        # hand its cancellation to the others, the hub's loop among them.
        running = self._loading.get(pk)
        if running is None:
            running = asyncio.ensure_future(self._read(pk, found))
            self._loading[pk] = running
            running.add_done_callback(partial(self._loaded, pk))
        return await asyncio.shield(running)

    def _loaded(self, pk: int, _task: asyncio.Future[Entry | None]) -> None:
        self._loading.pop(pk, None)

    async def _read(self, pk: int, found: Found | None) -> Entry | None:
        loaded = await self.live.load(pk, found)
        if loaded is None:
            return None
        snap = views.snapshot(
            loaded.order, loaded.plate, loaded.events, loaded.position, self.ttl_hours, self.own_origin
        )
        return Entry(
            snapshot=snap,
            state=state_frame(snap),
            seq=loaded.order.seq,
            expires=expires_at(loaded.order, self.ttl_hours),
            point=loaded.position,
            position=position_frame(snap["position"]),
            # The snapshot carries the position: the next one waits its turn from now.
            sent_at=asyncio.get_running_loop().time(),
        )
