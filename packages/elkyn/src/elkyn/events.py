"""Change events for watchers: which subscribers a committed change concerns, and as what.

A change is a log entry: ``put`` (value at a path) or ``patch`` (values at paths relative to a
path). A subscriber at ``S`` gets, as Firebase streams do, events with paths relative to ``S``:
a change at or below ``S`` arrives as it was made; a change above ``S`` arrives as a ``put`` of
the part of the new value that lies at ``S``. Changes elsewhere are not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .paths import Path, is_prefix, path_str
from .storage import LogEntry

__all__ = [
    "MAX_PENDING",
    "MAX_PENDING_BYTES",
    "OVERFLOW",
    "Event",
    "EventQueue",
    "Hub",
    "Subscription",
    "events_for",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """One stream event: ``put`` or ``patch`` (or ``cancel``/``auth_revoked``) at ``path``."""

    kind: str
    path: str
    data: Any
    seq: int = 0
    ts: int = 0
    """Commit time of the change in ms since the epoch (0 for a snapshot)."""
    size: int = field(default=0, compare=False)
    """Bytes of the change it comes from (an upper bound of its own): a queue's cost of it."""


def _extract(value: Any, rel: Path) -> Any:
    for key in rel:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def events_for(sub: Path, entry: LogEntry) -> list[Event]:
    """The events a subscriber at ``sub`` receives for ``entry`` (stored-form data)."""
    p = entry.path
    if entry.kind not in ("put", "patch"):
        return []  # a rules change, not a data change
    seq, ts, size = entry.seq, entry.ts, entry.nbytes()
    if entry.kind == "put":
        if is_prefix(sub, p):
            return [Event("put", path_str(p[len(sub) :]), entry.data, seq, ts, size)]
        if is_prefix(p, sub):
            return [Event("put", "/", _extract(entry.data, sub[len(p) :]), seq, ts, size)]
        return []
    # patch: entry.data maps "a/b" (relative to p) to the new value there
    if is_prefix(sub, p):
        return [Event("patch", path_str(p[len(sub) :]), entry.data, seq, ts, size)]
    if not is_prefix(p, sub):
        return []
    out: list[Event] = []
    for rel_text, value in entry.data.items():
        target = p + tuple(k for k in rel_text.split("/") if k)
        if is_prefix(sub, target):
            out.append(Event("put", path_str(target[len(sub) :]), value, seq, ts, size))
        elif is_prefix(target, sub):
            out.append(Event("put", "/", _extract(value, sub[len(target) :]), seq, ts, size))
    return out


class Subscription:
    """A watcher at ``path``: a callback, or an asyncio queue fed from the writer's thread."""

    def __init__(
        self,
        hub: Hub,
        path: Path,
        callback: Callable[[Event], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        queue_: asyncio.Queue[Event] | None = None,
    ) -> None:
        self.hub = hub
        self.path = path
        self.callback = callback
        self.loop = loop
        self.queue = queue_
        self.closed = False

    def close(self) -> None:
        """Stop receiving events."""
        if not self.closed:
            self.closed = True
            self.hub.remove(self)


class Hub:
    """Delivers committed changes to subscribers on a dispatcher thread, in commit order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[Path, set[Subscription]] = {}
        self._queue: queue.SimpleQueue[list[LogEntry] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="elkyn-events", daemon=True)
        self._thread.start()
        self.delivered = 0

    def add(self, sub: Subscription) -> None:
        with self._lock:
            self._by_path.setdefault(sub.path, set()).add(sub)

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._by_path.get(sub.path)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_path[sub.path]

    def count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._by_path.values())

    def publish(self, entries: list[LogEntry]) -> None:
        if entries:
            self._queue.put(entries)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            entries = self._queue.get()
            if entries is None:
                return
            try:
                self._dispatch(entries)
            except Exception:  # a bad subscriber must not stop delivery to the others
                log.exception("event dispatch failed")

    def _dispatch(self, entries: list[LogEntry]) -> None:
        with self._lock:
            groups = [(path, list(subs)) for path, subs in self._by_path.items()]
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Event], Event]]] = {}
        for path, subs in groups:
            events = [ev for entry in entries for ev in events_for(path, entry)]
            if not events:
                continue
            for sub in subs:
                if sub.closed:
                    continue
                for ev in events:
                    if sub.callback is not None:
                        try:
                            sub.callback(ev)
                        except Exception:
                            log.exception("watch callback at %s failed", path_str(path))
                    elif sub.loop is not None and sub.queue is not None:
                        per_loop.setdefault(sub.loop, []).append((sub.queue, ev))
                    self.delivered += 1
        for loop, items in per_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: its subscribers are gone
                loop.call_soon_threadsafe(_feed, items)


MAX_PENDING = 10_000
"""Default number of events queued for one asyncio watcher before it counts as stalled."""

OVERFLOW = Event("overflow", "", None)
"""Queued (once) instead of further events when a watcher stopped reading: it must end and
watch again (an SSE client resumes with Last-Event-ID), so memory stays bounded."""


MAX_PENDING_BYTES = 8 << 20
"""Default bytes of changes queued for one asyncio watcher before it counts as stalled."""


class EventQueue(asyncio.Queue[Event]):
    """A watcher's queue, bounded in events (``maxsize``) and in the bytes of its changes.

    ``bytes`` counts the ``size`` of the events in it; ``_put``/``_get`` are asyncio.Queue's
    documented subclass hooks (as PriorityQueue uses them), so every way in and out counts.
    """

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        super().__init__(maxsize)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.overflowed = False
        self.discard_on_overflow = False
        self.direct: Callable[[Event], bool] | None = None
        """Delivers a change at once, bypassing the queue (an SSE stream handing it to its
        response's ASGI ``send`` while it is caught up); False: queue it as usual."""
        """Drop the queued events when it overflows (an SSE stream whose client stopped
        reading: it resumes by Last-Event-ID, so what it was never sent need not be kept)."""

    def _put(self, item: Event) -> None:
        self.bytes += item.size
        super()._put(item)

    def _get(self) -> Event:
        item: Event = super()._get()
        self.bytes -= item.size
        return item

    def accepts(self, ev: Event) -> bool:
        """Room for ``ev``: under both bounds (one event alone may exceed the byte bound)."""
        if self.qsize() >= self.maxsize - 1:  # the last slot is for OVERFLOW
            return False
        return self.bytes == 0 or self.bytes + ev.size <= self.max_bytes


def _feed(items: list[tuple[asyncio.Queue[Event], Event]]) -> None:
    for q, ev in items:
        if isinstance(q, EventQueue):
            if q.overflowed:
                continue
            if q.direct is not None and not q.qsize() and q.direct(ev):
                continue
            if q.accepts(ev):
                q.put_nowait(ev)
            else:
                q.overflowed = True
                if q.discard_on_overflow:
                    while not q.empty():  # free what a stalled client pinned
                        q.get_nowait()
                q.put_nowait(OVERFLOW)  # the marker, then nothing more
            continue
        # a plain queue holds its limit of events plus room for one OVERFLOW marker
        size, limit = q.qsize(), q.maxsize - 1
        if size < limit:
            q.put_nowait(ev)
        elif size == limit:
            q.put_nowait(OVERFLOW)  # the marker, then nothing more
