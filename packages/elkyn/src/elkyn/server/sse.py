"""Streaming a location as Firebase does, over Server-Sent Events.

The first event is a ``put`` at ``/`` with the snapshot; then ``put``/``patch`` with paths
relative to the streamed location; ``keep-alive`` every few seconds; ``cancel`` (and close)
when the rules no longer let the caller read it; ``auth_revoked`` (and close) when the token
expires or is revoked (re-checked every second). Each change carries a signed resume id
(``resume.ResumeIds``): a client reconnecting with ``Last-Event-ID`` gets the changes it
missed from the operation log instead of a new snapshot, but only with an id issued to the
same caller for the same path and database, when the log still reaches back, no rules change
lies in between, and the read rules do not look at data or the clock (then what the caller
could see in between is not known: a fresh snapshot).

Each stream is one coroutine blocked on its queue: changes, keep-alive ticks, rules changes,
token expiry and the client leaving all arrive as items in that queue, so an idle stream costs
nothing and a change costs one wake-up. A change's frame is encoded once for all its streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Generator
from typing import Any, Protocol

from platform_core import PlatformError, auth

from ..errors import TooManyStreamsError
from ..events import OVERFLOW, Event, EventQueue, events_for
from ..paths import Path
from ..settings import ElkynSettings
from ..storage import Tree
from ..store import Caller, Store
from ..values import to_wire
from .http import Request, Send
from .metrics import Metrics
from .resume import ResumeIds


class StreamHost(Protocol):
    """What streaming needs from the server that hosts it (``ElkynApp`` is one)."""

    @property
    def settings(self) -> ElkynSettings: ...  # stream limits and the keep-alive period
    @property
    def metrics(self) -> Metrics: ...  # open-stream and sent-event counters
    @property
    def streams(self) -> Streams: ...  # the open streams of this server

    def current_store(self) -> Store:
        """The open store (raises while it is not open)."""
        ...

    def resume_secret(self) -> bytes:
        """The key of the signed resume ids."""
        ...


__all__ = ["Streams", "stream"]

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
KEEPALIVE = Event("keep-alive", "", None)
RULES_CHANGED = Event("rules", "", None)
EXPIRED = Event("auth_revoked", "", None)
REVOCATION_RECHECK_SECONDS = 1.0
"""How often an open stream re-checks its token against the platform's revocations (an
in-memory lookup): a signed-out or removed user's stream ends within this and the cache's
refresh period (README, "Users and tokens")."""
RESET = Event("reset", "", None)


def _wire(ev: Event) -> Any:
    if ev.kind == "patch":
        return {k: to_wire(v) for k, v in ev.data.items()}
    return to_wire(ev.data)


def frame(ev: Event) -> bytes:
    """The SSE frame of a change, encoded once per event however many streams send it.

    The ``id:`` line is per stream (it is signed for the stream's caller and path), so it is
    not part of the shared frame: the stream puts ``ResumeIds.line`` in front.
    """
    cached: bytes | None = ev.__dict__.get("_frame")
    if cached is not None:
        return cached
    body = json.dumps({"path": ev.path, "data": _wire(ev)}, separators=(",", ":"))
    out = f"event: {ev.kind}\ndata: {body}\n\n".encode()
    object.__setattr__(ev, "_frame", out)  # frozen dataclass: a private cache slot
    return out


def _change(ev: Event, ids: ResumeIds) -> bytes:
    """A change's frame with its ``id:`` line, built once per event for all the streams whose
    ids are the same (same caller and path: a thousand anonymous readers of one feed)."""
    pieces: dict[bytes, bytes] | None = ev.__dict__.get("_pieces")
    if pieces is None:
        pieces = {}
        object.__setattr__(ev, "_pieces", pieces)  # frozen dataclass: a private cache slot
    piece = pieces.get(ids.scope)
    if piece is None:
        piece = pieces[ids.scope] = ids.line(ev.seq) + frame(ev)
    return piece


_KEEPALIVE_FRAME = b"event: keep-alive\ndata: null\n\n"
_CANCEL_FRAME = b"event: cancel\ndata: null\n\n"
_REVOKED_FRAME = b'event: auth_revoked\ndata: "credential is no longer valid"\n\n'


def _offer(queue: asyncio.Queue[Event], item: Event) -> bool:
    """Queue a control item unless the queue is (nearly) full: the last slot is for OVERFLOW."""
    if queue.maxsize and queue.qsize() >= queue.maxsize - 1:
        return False
    queue.put_nowait(item)
    return True


class _Handle:
    """A stream's task, and whether the server itself chose to end it."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.ended = False

    def end(self) -> None:
        self.ended = True
        self.task.cancel()


class Streams:
    """The open streams of one app: keep-alive ticks and rules changes reach all of them."""

    def __init__(self, app: StreamHost) -> None:
        self.app = app
        self.queues: dict[asyncio.Queue[Event], _Handle] = {}
        self.held: Counter[str] = Counter()
        """Open streams per caller (``uid:...``, ``ip:...``; the admin is ``admin``)."""
        self.total = 0
        self._ticker: asyncio.Task[None] | None = None
        self._listening = False

    def admit(self, who: str) -> None:
        """Count a new stream of ``who``, or refuse it past the per-caller or total limit."""
        settings = self.app.settings
        if self.total >= settings.max_streams:
            raise TooManyStreamsError(
                f"the server holds its limit of {settings.max_streams} open streams "
                "(ELKYN_MAX_STREAMS); retry later"
            )
        if who != "admin" and self.held[who] >= settings.max_streams_per_user:
            raise TooManyStreamsError(
                f"you hold {self.held[who]} open streams, the limit per user "
                "(ELKYN_MAX_STREAMS_PER_USER); close one before opening another"
            )
        self.held[who] += 1
        self.total += 1

    def release(self, who: str) -> None:
        self.held[who] -= 1
        self.total -= 1
        if self.held[who] <= 0:
            del self.held[who]

    def add(self, queue: asyncio.Queue[Event], handle: _Handle) -> None:
        self.queues[queue] = handle
        loop = asyncio.get_running_loop()
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._tick())
        if not self._listening:
            store = self.app.current_store()

            def on_rules(_: Any) -> None:
                loop.call_soon_threadsafe(self._broadcast, RULES_CHANGED)

            def on_reset() -> None:
                loop.call_soon_threadsafe(self._end_all)

            store.on_rules_change(on_rules)
            store.on_reset(on_reset)
            self._listening = True

    def _end_all(self) -> None:
        """End every stream: the database started over (its resume ids no longer match)."""
        for q, handle in list(self.queues.items()):
            if not _offer(q, RESET):
                handle.end()  # stalled: no room to end it cleanly

    def remove(self, queue: asyncio.Queue[Event]) -> None:
        self.queues.pop(queue, None)

    def _broadcast(self, ev: Event) -> None:
        for q, handle in list(self.queues.items()):
            if not _offer(q, ev) and ev is RULES_CHANGED:
                handle.end()  # a stalled stream cannot be told: end it (it may resume later)

    async def _tick(self) -> None:
        while self.queues:
            await asyncio.sleep(self.app.settings.keepalive_seconds)
            self._broadcast(KEEPALIVE)


def _may_read(app: StreamHost, caller: Caller, keys: Path) -> bool:
    if caller.admin:
        return True
    store = app.current_store()
    with store.env.read() as txn:
        tree = Tree(store.env, txn)
        return store.rules.can_read(caller.auth, keys, tree.read)


async def stream(app: StreamHost, req: Request, send: Send, keys: Path, caller: Caller) -> None:
    """Serve one SSE stream of ``keys`` until the client leaves, or access ends."""
    store = app.current_store()
    streams: Streams = app.streams
    who = _holder(caller, req)
    streams.admit(who)  # a 429 before any byte past the caller's or the server's limit
    try:
        sub, first = store.subscribe(keys, caller)  # refuses before any byte when denied
    except BaseException:
        streams.release(who)
        raise
    queue = sub.queue
    assert queue is not None
    if isinstance(queue, EventQueue):
        # a stream blocked sending to a client that stopped reading never gets to take the
        # OVERFLOW marker: without this, each stalled stream kept its whole backlog pinned
        queue.discard_on_overflow = True
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    handle = _Handle(me)
    watcher = loop.create_task(_watch_disconnect(req, handle))

    def expire() -> None:
        if not _offer(queue, EXPIRED):
            handle.end()  # stalled: no room to say auth_revoked, so just end the stream

    expiry = None
    if caller.exp is not None:
        expiry = loop.call_at(loop.time() + max(0.0, caller.exp - time.time()), expire)
    recheck: asyncio.TimerHandle | None = None
    if caller.claims is not None:  # a revoked token (sign-out, user removed) ends the stream

        def still_valid() -> None:
            nonlocal recheck
            try:
                auth.check_not_revoked(caller.claims)
            except PlatformError:
                expire()
                return
            recheck = loop.call_later(REVOCATION_RECHECK_SECONDS, still_valid)

        recheck = loop.call_later(REVOCATION_RECHECK_SECONDS, still_valid)
    streams.add(queue, handle)
    app.metrics.streams_open += 1
    try:
        await _serve(app, req, send, keys, caller, queue, first)
    except asyncio.CancelledError:
        if not handle.ended:
            raise  # the server is shutting down: let the cancellation through
        me.uncancel()
    finally:
        app.metrics.streams_open -= 1
        streams.remove(queue)
        if expiry is not None:
            expiry.cancel()
        if recheck is not None:
            recheck.cancel()
        watcher.cancel()
        sub.close()
        streams.release(who)


def _holder(caller: Caller, req: Request) -> str:
    """Whose stream this is, for the per-user limit: the token's uid, else the client address."""
    if caller.admin:
        return "admin"
    uid = caller.auth.get("uid") if caller.auth else None
    return f"uid:{uid}" if isinstance(uid, str) and uid else f"ip:{req.client}"


async def _serve(
    app: StreamHost,
    req: Request,
    send: Send,
    keys: Path,
    caller: Caller,
    queue: asyncio.Queue[Event],
    first: Event,
) -> None:
    store = app.current_store()
    ids = ResumeIds(app.resume_secret(), store.database_id, caller, keys)
    floor = first.seq
    opening = [frame(Event("put", "/", first.data, 0))]
    resume = ids.check(req.headers.get("last-event-id", ""))
    if resume is not None and resume <= first.seq and _may_replay(app, caller, keys):
        oldest, entries = store.log_since(resume)
        if (
            oldest <= resume + 1
            and (not entries or entries[-1].seq >= first.seq)
            and not any(e.kind == "rules" for e in entries)
            # a client that missed more than a stream may hold gets a snapshot, not a replay
            and sum(e.nbytes() for e in entries) <= store.max_pending_bytes
        ):
            opening = [ids.line(ev.seq) + frame(ev) for e in entries for ev in events_for(keys, e)]
            floor = max([resume, *(e.seq for e in entries)])
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b"".join(opening), "more_body": True})
    await _pump(app, req, send, keys, caller, queue, floor, ids)


def _may_replay(app: StreamHost, caller: Caller, keys: Path) -> bool:
    """Whether the log may be replayed to this caller: its read access cannot have changed.

    When the read rules look at data or the clock, the caller may have lacked access for part
    of the gap (or the data was deleted before access was granted), so it gets a snapshot.
    """
    return caller.admin or not app.current_store().rules.read_depends_on_state(keys)


class _Unfinished:
    """A ``send`` the broadcaster started for a caught-up stream that could not finish at once
    (the server's buffer for that client was full): awaiting this finishes it, in the stream's
    own task, by resuming the same awaitable (as ``yield from`` would after its first step)."""

    __slots__ = ("step", "waiting")

    def __init__(self, step: Generator[Any, Any, Any], waiting: Any) -> None:
        self.step = step
        self.waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        step, waiting = self.step, self.waiting
        while True:
            try:
                value = yield waiting
            except BaseException as exc:  # cancelled while waiting: into the send it goes
                try:
                    waiting = step.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = step.send(value)
                except StopIteration:
                    return

    def close(self) -> None:
        close = getattr(self.step, "close", None)
        if close is not None:
            close()


class _Failed:
    """A ``send`` the broadcaster started that raised: the stream's task raises it in turn."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __await__(self) -> Generator[Any, Any, None]:
        raise self.exc
        yield  # a generator: awaiting it raises

    def close(self) -> None:
        pass


IN_FLIGHT = Event("in-flight", "", None)
"""Queued after a change the broadcaster handed to ``send`` when that send has to wait: the
stream's task finishes it before anything later (the order of the changes is kept)."""


def send_now(send: Send, message: dict[str, Any]) -> _Unfinished | _Failed | None:
    """Run the ASGI ``send(message)`` as far as it goes without waiting.

    None: it finished (a server's send of a body piece under its buffer's high-water mark
    writes and returns without ever suspending: uvicorn's, granian's). Otherwise what to await,
    in the stream's own task, to finish it (or to raise what it raised).
    """
    step = send(message).__await__()
    try:
        waiting = step.send(None)
    except StopIteration:
        return None
    except Exception as exc:
        return _Failed(exc)
    return _Unfinished(step, waiting)


async def _pump(
    app: StreamHost,
    req: Request,
    send: Send,
    keys: Path,
    caller: Caller,
    queue: asyncio.Queue[Event],
    floor: int,
    ids: ResumeIds,
) -> None:
    """Send the stream's changes until it ends.

    A change that finds the stream caught up (this task waiting on an empty queue, no access
    re-check needed) is handed to the response's ASGI ``send`` by the broadcaster itself: one
    frame encoded once, one ``send`` per stream, no task wake-up. A send that cannot finish at
    once (the server's buffer for that client is full) is finished by this task, before
    anything later, behind an ``IN_FLIGHT`` marker in the queue. Everything else (control
    items, a backlog) comes through the queue as before, so the bounds and the order are the
    queue's.
    """
    pump = _Pump(app, send, keys, caller, queue, floor, ids)
    fast = isinstance(queue, EventQueue)
    if fast:
        queue.direct = pump.direct  # type: ignore[attr-defined]
    try:
        await pump.run()
    finally:
        if fast:
            queue.direct = None  # type: ignore[attr-defined]
        if pump.unfinished is not None:  # the stream ended with a send still waiting
            pump.unfinished.close()


class _Pump:
    """One stream's sender: its loop over the queue and the broadcaster's direct sends, and
    the state they share (whether the loop waits, a send still to finish, the rules)."""

    def __init__(
        self,
        app: StreamHost,
        send: Send,
        keys: Path,
        caller: Caller,
        queue: asyncio.Queue[Event],
        floor: int,
        ids: ResumeIds,
    ) -> None:
        self.app, self.send, self.keys, self.caller = app, send, keys, caller
        self.queue, self.floor, self.ids = queue, floor, ids
        self.metrics = app.metrics
        self.recheck = False
        self.read_rules()
        # One send carries at most this many bytes of changes: a backlog is not joined whole.
        self.batch_bytes = app.current_store().max_pending_bytes
        self.idle = False
        self.unfinished: _Unfinished | _Failed | None = None

    def read_rules(self) -> None:
        rules = self.app.current_store().rules
        # Re-check access on a change only when the read rules look at data or the clock.
        self.recheck = not self.caller.admin and rules.read_depends_on_state(self.keys)

    def direct(self, ev: Event) -> bool:
        """Send ``ev`` from the broadcaster if the stream is caught up; False: queue it."""
        if not self.idle or self.recheck or ev.seq <= self.floor or self.unfinished is not None:
            return False
        body = _change(ev, self.ids)
        self.unfinished = send_now(
            self.send, {"type": "http.response.body", "body": body, "more_body": True}
        )
        if self.unfinished is not None:
            self.queue.put_nowait(IN_FLIGHT)  # the queue is empty: ``direct`` runs only then
        self.metrics.record_lag(ev.ts)
        self.metrics.events_sent += 1
        return True

    async def run(self) -> None:
        while True:
            batch = await self.next_batch()
            if batch is None:
                continue
            chunks, changed, ending = self.frames(batch)
            if ending is not None:
                await _final(self.send, b"".join(chunks) + ending)
                return
            # Access can end with a rules change, or with data the rules read (rules see data).
            if changed and not _may_read(self.app, self.caller, self.keys):
                await _final(self.send, _CANCEL_FRAME)
                return
            if chunks:
                await self.send(
                    {"type": "http.response.body", "body": b"".join(chunks), "more_body": True}
                )

    async def next_batch(self) -> list[Event] | None:
        """The queue's next items, up to ``batch_bytes`` (waiting for the first); None: only
        the marker of a direct send, now finished."""
        self.idle = True
        try:
            first = await self.queue.get()
        finally:
            self.idle = False
        if self.unfinished is not None:  # finish the broadcaster's send before anything later
            pending, self.unfinished = self.unfinished, None
            await pending
        if first is IN_FLIGHT:  # (an overflow may have discarded the marker: not relied on)
            return None
        batch = [first]
        taken = first.size
        while not self.queue.empty() and taken < self.batch_bytes:
            batch.append(self.queue.get_nowait())
            taken += batch[-1].size
        return batch

    def frames(self, batch: list[Event]) -> tuple[list[bytes], bool, bytes | None]:
        """The frames of ``batch``, whether access must be checked again, and (not None) the
        last frame if the batch ends the stream."""
        chunks: list[bytes] = []
        changed = False
        for ev in batch:
            if ev is OVERFLOW:  # the client stopped reading: end it; it resumes by Last-Event-ID
                return chunks, changed, b""
            if ev is RESET:  # the database started over: the client reconnects for a snapshot
                return chunks, changed, b""
            if ev is EXPIRED:
                return chunks, changed, _REVOKED_FRAME
            if ev is KEEPALIVE:
                chunks.append(_KEEPALIVE_FRAME)
            elif ev is RULES_CHANGED:
                changed = True
                self.read_rules()
            elif not ev.seq or ev.seq > self.floor:
                changed = changed or self.recheck
                chunks.append(_change(ev, self.ids) if ev.seq else frame(ev))
                self.metrics.record_lag(ev.ts)
                self.metrics.events_sent += 1
        return chunks, changed, None


async def _final(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": False})


async def _watch_disconnect(req: Request, handle: _Handle) -> None:
    """End the stream's task when the client goes away (even if it is blocked sending)."""
    while True:
        message = await req.receive()
        if message["type"] == "http.disconnect":
            handle.end()
            return
