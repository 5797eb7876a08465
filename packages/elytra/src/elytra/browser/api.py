"""The worker routes, ``/api/workers``: an app the gateway mounts (plugin ``workers``).

Not a plugin router: the gateway puts every plugin router behind ``require_token``, which
refuses worker tokens, so these routes check tokens themselves:

- ``POST /tokens`` (an admin's user token): mint a worker token, ``ttl_seconds`` at most
  ``MAX_WORKER_TTL_SECONDS``;
- ``GET /chunks/{task_id}?worker=<id>`` (a worker token): the rows of the lake chunk of a task
  leased now to that worker (of that token's subject), as an Arrow IPC stream, read by
  emsqrt's scan with the task's pushed-down columns; any other task is a 404;
- ``WS /ws`` (a worker token): the protocol of :mod:`elytra.browser.protocol`; the
  connection closes (1008) when the token expires or is revoked (checked every second), and
  the tasks it held are offered again.

User, admin and cluster tokens are refused on the worker routes (401; 1008 on the WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import pyarrow as pa
from fastapi import Depends, FastAPI, Query, WebSocket
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketDisconnect

from emsqrt import EngineConfig, run
from emsqrt import plan as lp
from platform_core import NotFoundError, PlatformSettings, UnauthorizedError, UnavailableError, auth
from platform_core.auth import LEEWAY_SECONDS, MAX_WORKER_TTL_SECONDS, Claims, TokenSigner
from platform_core.http import install_error_handlers, require_admin, require_worker

from .hub import Worker, WorkerHub
from .protocol import CHUNK_MEDIA_TYPE, MAX_TEXT_BYTES, PROTOCOL_VERSION

__all__ = ["WorkerTokenRequest", "make_workers_app", "read_chunk"]

HubSource = Callable[[], "WorkerHub | None"]


class WorkerTokenRequest(BaseModel):
    sub: str = Field("browser", min_length=1, max_length=128, description="The worker's name.")
    ttl_seconds: int = Field(3600, ge=1, le=MAX_WORKER_TTL_SECONDS)


class WorkerTokenResponse(BaseModel):
    token: str
    kind: str = "worker"
    expires_in: int


def read_chunk(scan: lp.Scan, mem_cap: int = 256 << 20) -> bytes:
    """The rows a task's scan reads (its pushed-down columns), as Arrow IPC stream bytes."""
    table = run(scan, EngineConfig(mem_cap_bytes=mem_cap)).table
    assert table is not None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _hub(source: HubSource) -> WorkerHub:
    hub = source()
    if hub is None:
        raise UnavailableError("no browser backend runs here (ELYTRA_BACKEND=browser)")
    return hub


def make_workers_app(settings: PlatformSettings | None, hub: HubSource) -> FastAPI:
    """The worker routes over the hub ``hub()`` returns (None: 503, the backend is not
    ``browser`` or not started)."""
    app = FastAPI(title="elytra workers", summary="Browser workers of elytra's browser backend.")
    if settings is not None:
        app.state.signer = auth.signer(settings)
    install_error_handlers(app)

    @app.post("/tokens", response_model=WorkerTokenResponse)
    async def mint(
        body: WorkerTokenRequest, _: Annotated[Claims, Depends(require_admin)]
    ) -> WorkerTokenResponse:
        """A worker token (admin only); accepted only by the worker routes."""
        signer: TokenSigner = app.state.signer
        token = signer.worker_token(body.sub, ttl_seconds=body.ttl_seconds)
        return WorkerTokenResponse(token=token, expires_in=body.ttl_seconds)

    @app.get(
        "/chunks/{task_id}",
        response_class=Response,
        responses={200: {"content": {CHUNK_MEDIA_TYPE: {}}}, 404: {"description": "Not leased."}},
    )
    async def chunk(
        task_id: str,
        claims: Annotated[Claims, Depends(require_worker)],
        worker: Annotated[str, Query(max_length=64)] = "",
    ) -> Response:
        """The rows of a task leased now to this worker, as an Arrow IPC stream."""
        task = _hub(hub).lease_of(task_id, worker, claims.sub)
        if task is None:
            raise NotFoundError(f"no task {task_id!r} is leased to worker {worker!r} now")
        data = await asyncio.to_thread(read_chunk, task.scan)
        return Response(data, media_type=CHUNK_MEDIA_TYPE)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, claims: Annotated[Claims, Depends(require_worker)]) -> None:
        source = hub()
        if source is None:
            await websocket.close(1013, "no browser backend runs here")
            return
        refused = source.connect(claims.sub)
        if refused is not None:  # refused before anything is read
            await websocket.close(1013, refused)
            return
        try:
            await websocket.accept()
            await _serve(websocket, source, claims)
        finally:
            source.disconnect(claims.sub)

    return app


async def _serve(websocket: WebSocket, hub: WorkerHub, claims: Claims) -> None:
    """One worker's connection: hello, then messages until it goes (see ``protocol``)."""
    try:
        hello = _json(await asyncio.wait_for(websocket.receive_text(), 10.0))
    except (TimeoutError, ValueError, WebSocketDisconnect, KeyError):
        with contextlib.suppress(Exception):
            await websocket.close(1008, "the first message must be a JSON hello")
        return
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        await websocket.close(1008, "the first message must be a hello")
        return
    loop = asyncio.get_running_loop()
    outbox: asyncio.Queue[dict[str, Any] | tuple[int, str]] = asyncio.Queue()

    def send(message: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(outbox.put_nowait, message)

    def close(code: int, reason: str) -> None:
        loop.call_soon_threadsafe(outbox.put_nowait, (code, reason))

    concurrency = hello.get("concurrency", 1)
    worker = hub.join(claims.sub, concurrency if isinstance(concurrency, int) else 1, send, close)
    await websocket.send_json(
        {
            "type": "welcome",
            "protocol": PROTOCOL_VERSION,
            "worker_id": worker.id,
            "concurrency": worker.concurrency,
            "heartbeat_seconds": hub.heartbeat_seconds,
            "lease_seconds": hub.lease_seconds,
            "max_result_bytes": hub.max_result_bytes,
            "chunk_path": "chunks/{task_id}?worker=" + worker.id,
        }
    )

    async def pump() -> None:
        while True:
            message = await outbox.get()
            if isinstance(message, tuple):
                await websocket.close(*message)
                return
            await websocket.send_json(message)

    sender = asyncio.create_task(pump())
    receiver = asyncio.create_task(_receive(websocket, hub, worker))
    watcher = asyncio.create_task(_watch_token(claims))
    reason = "the worker disconnected"
    try:
        done, _ = await asyncio.wait({receiver, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if receiver in done:
            reason = receiver.result()
        else:
            reason, message = watcher.result()
            with contextlib.suppress(Exception):
                await websocket.close(1008, message)
    finally:
        # the worker's leases fail this attempt: the scheduler offers its tasks again
        hub.leave(worker, reason)
        for task in (receiver, watcher, sender):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await websocket.close(1000)


TOKEN_RECHECK_SECONDS = 1.0
"""How often an open worker connection re-checks its token against the revocations."""


async def _watch_token(claims: Claims) -> tuple[str, str]:
    """Wait until the connection's token expires or is revoked (``platform token revoke``);
    returns (why the worker went, the close reason it is told). The token was checked at the
    handshake; a revocation reaches this check within the process's refresh period."""
    while True:
        left = claims.exp + LEEWAY_SECONDS - time.time()
        if left <= 0:
            return "the worker token expired", "the worker token expired; get a new one"
        try:
            auth.check_not_revoked(claims)
        except UnauthorizedError as exc:
            told = str(exc).encode()[:120].decode(errors="ignore")  # a close reason: 123 bytes
            return f"the worker token was revoked ({exc})", told
        await asyncio.sleep(min(TOKEN_RECHECK_SECONDS, left))


async def _receive(websocket: WebSocket, hub: WorkerHub, worker: Worker) -> str:
    """Handle the worker's messages until it goes; returns why it went."""
    header: dict[str, Any] | None = None
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return "the worker disconnected"
        if not worker.bucket.take():
            await websocket.close(1008, "over the message rate limit")
            return "the worker went over its message rate limit"
        data = message.get("bytes")
        if data is not None:
            if header is None:
                await websocket.close(1008, "rows without a result header")
                return "the worker broke the protocol (rows without a result header)"
            got, header = header, None
            declared = got.get("bytes")
            too_big = isinstance(declared, int) and declared > hub.max_result_bytes
            await asyncio.to_thread(hub.deliver, worker, got, None if too_big else data)
            continue
        text = message.get("text") or ""
        if len(text) > MAX_TEXT_BYTES:
            await websocket.close(1008, f"a text frame is too large (over {MAX_TEXT_BYTES})")
            return "the worker broke the protocol (a text frame too large)"
        try:
            msg = _json(text)
        except ValueError:
            await websocket.close(1008, "a text frame must be JSON")
            return "the worker broke the protocol (not JSON)"
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "heartbeat":
            hub.heartbeat(worker)
        elif kind == "result":
            header = msg
        elif kind == "error":
            attempt = msg.get("attempt")
            hub.error(
                worker,
                str(msg.get("task_id")),
                attempt if isinstance(attempt, int) else -1,  # not an attempt: stale
                str(msg.get("message"))[:2000],
            )
        else:
            await websocket.close(1008, f"unknown message type {kind!r}")
            return f"the worker broke the protocol (message {kind!r})"


def _json(text: str) -> Any:
    """``text`` parsed; ValueError if it is not JSON, too large or too deeply nested."""
    if len(text) > MAX_TEXT_BYTES:
        raise ValueError(f"a text frame over {MAX_TEXT_BYTES} characters")
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
