"""Streaming a location as Firebase does, over Server-Sent Events.

The first event is a ``put`` at ``/`` with the snapshot; then ``put``/``patch`` with paths
relative to the streamed location; ``keep-alive`` when idle; ``cancel`` (and close) when the
rules no longer let the caller read it; ``auth_revoked`` (and close) when the token expires.
Each change carries ``id: <seq>``: a client reconnecting with ``Last-Event-ID`` gets the
changes it missed from the operation log instead of a new snapshot, when the log still has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from ..events import Event, events_for
from ..paths import Path
from ..storage import Tree
from ..store import Caller
from ..values import to_wire
from .http import Request, Send

if TYPE_CHECKING:
    from .app import ElkynApp

__all__ = ["stream"]

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def _wire(ev: Event) -> Any:
    if ev.kind == "patch":
        return {k: to_wire(v) for k, v in ev.data.items()}
    return to_wire(ev.data)


def frame(ev: Event) -> bytes:
    body = json.dumps({"path": ev.path, "data": _wire(ev)}, separators=(",", ":"))
    head = f"event: {ev.kind}\n"
    if ev.seq:
        head += f"id: {ev.seq}\n"
    return (head + f"data: {body}\n\n").encode()


def _control(kind: str, data: str) -> bytes:
    return f"event: {kind}\ndata: {data}\n\n".encode()


def _may_read(app: ElkynApp, caller: Caller, keys: Path) -> bool:
    if caller.admin:
        return True
    store = app._store()
    with store.env.read() as txn:
        tree = Tree(store.env, txn)
        return store.rules.can_read(caller.auth, keys, tree.read)


async def stream(app: ElkynApp, req: Request, send: Send, keys: Path, caller: Caller) -> None:
    """Serve one SSE stream of ``keys`` until the client leaves, or access ends."""
    store = app._store()
    sub, first = store.subscribe(keys, caller)  # refuses before any byte when denied
    queue = sub.queue
    assert queue is not None
    try:
        floor = first.seq
        opening = [frame(Event("put", "/", first.data, 0))]
        last_id = req.headers.get("last-event-id", "")
        if last_id.isdigit() and int(last_id) <= first.seq:
            oldest, entries = store.log_since(int(last_id))
            if oldest <= int(last_id) + 1 and (not entries or entries[-1].seq >= first.seq):
                opening = [frame(ev) for e in entries for ev in events_for(keys, e)]
                floor = max([int(last_id), *(e.seq for e in entries)])
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": b"".join(opening), "more_body": True})
        app.metrics.streams_open += 1
        try:
            await _pump(app, req, send, keys, caller, queue, floor)
        finally:
            app.metrics.streams_open -= 1
    finally:
        sub.close()


async def _pump(
    app: ElkynApp,
    req: Request,
    send: Send,
    keys: Path,
    caller: Caller,
    queue: asyncio.Queue[Event],
    floor: int,
) -> None:
    keepalive = app.settings.keepalive_seconds
    rules = app._store().rules
    disconnected = asyncio.ensure_future(_wait_disconnect(req))
    try:
        while True:
            wait = keepalive
            if caller.exp is not None:
                wait = min(wait, max(0.0, caller.exp - time.time()))
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, disconnected}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            if disconnected in done:
                getter.cancel()
                return
            if caller.exp is not None and time.time() >= caller.exp:
                getter.cancel()
                await _final(send, _control("auth_revoked", '"credential is no longer valid"'))
                return
            chunks: list[bytes] = []
            if getter in done:
                batch = [getter.result()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                if not caller.admin or app._store().rules is not rules:
                    rules = app._store().rules
                    if not _may_read(app, caller, keys):
                        await _final(send, _control("cancel", "null"))
                        return
                for ev in batch:
                    if ev.seq and ev.seq <= floor:
                        continue
                    chunks.append(frame(ev))
                    app.metrics.record_lag(ev.ts)
                app.metrics.events_sent += len(chunks)
            else:
                getter.cancel()
                if app._store().rules is not rules:
                    rules = app._store().rules
                    if not _may_read(app, caller, keys):
                        await _final(send, _control("cancel", "null"))
                        return
                chunks.append(_control("keep-alive", "null"))
            if chunks:
                await send(
                    {"type": "http.response.body", "body": b"".join(chunks), "more_body": True}
                )
    finally:
        disconnected.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await disconnected


async def _final(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": False})


async def _wait_disconnect(req: Request) -> None:
    while True:
        message = await req.receive()
        if message["type"] == "http.disconnect":
            return
