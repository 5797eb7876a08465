"""``/internal/elytra``: a platform runs tasks its peers send (cluster tokens only).

``POST /tasks`` takes a task's JSON (see :class:`~elytra.task.Task`), checks that it reads
only lake chunks and holds no Python function (:func:`~elytra.chunkrefs.check_peer_task`),
runs it on this platform's own pool under this platform's task cap, in a job directory of its
own (locked, removed after, swept if the process was killed), and answers the rows as an
Arrow IPC stream with the task's figures in ``x-elytra-stats``. A task error answers 422 with
``{"task_error": ...}`` (whether another attempt may help rides along); more tasks at once
than ``peer_max_running`` answer 503, and so does a platform still starting. A sender that
goes away cancels its task. ``GET /workers`` says how many tasks its pool runs at once for
peers (``ELYTRA_WORKERS``, at most ``peer_max_running``; ``backends.peerslots``: placement
weighs each peer by it).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pyarrow as pa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from platform_core import (
    BadInputError,
    PlatformError,
    UnauthorizedError,
    UnavailableError,
    new_id,
)
from platform_core.auth import TokenSigner, bearer_token
from platform_core.http import platform_error_response

from .backends.base import Backend, describe_error
from .backends.cluster import ChunkCluster
from .chunkrefs import check_peer_task, resolve_chunks
from .errors import ElytraError
from .settings import ElytraSettings
from .spilldirs import JobDir
from .task import Task

__all__ = ["MAX_TASK_BYTES", "make_peer_app"]

MAX_TASK_BYTES = 4 << 20
"""A task's JSON is its plan and file names: a few KiB; anything near this is not a task."""

_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,160}")
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def make_peer_app(
    ready: Callable[[], tuple[Backend, ChunkCluster | None, ElytraSettings]],
    signer: Callable[[], TokenSigner],
    counters: dict[str, int] | Callable[[], dict[str, int]] | None = None,
) -> Starlette:
    """The peer routes; ``ready()`` gives this platform's own pool (never the cluster
    backend: a peer's task is not sent on), its lake cluster and its settings, or raises
    ``UnavailableError`` while the platform starts or stops. ``counters`` (or ``counters()``,
    asked per request after ``ready()``) counts the tasks ``running``, ``served`` and
    ``failed`` for peers (``platform status`` shows them)."""
    fixed: dict[str, int] = {} if counters is None or callable(counters) else counters
    lock = threading.Lock()

    def counts() -> dict[str, int]:
        found = counters() if callable(counters) else fixed
        for key in ("running", "served", "failed"):
            found.setdefault(key, 0)
        return found

    async def read_task(request: Request) -> Task:
        raw = bytearray()
        async for piece in request.stream():
            raw += piece
            if len(raw) > MAX_TASK_BYTES:
                raise BadInputError(f"a task's JSON is at most {MAX_TASK_BYTES} bytes")
        task = _task_of(bytes(raw))
        check_peer_task(task)
        return task

    async def tasks(request: Request) -> Response:
        token = bearer_token(request.headers.get("authorization"))
        if not token:
            raise UnauthorizedError("the peer routes need a cluster token")
        signer().verify_cluster(token)
        task = await read_task(request)
        backend, cluster, settings = ready()
        tally = counts()
        with lock:
            if tally["running"] >= settings.peer_max_running:
                raise UnavailableError(
                    f"this platform runs {settings.peer_max_running} peer tasks already "
                    "(ELYTRA_PEER_MAX_RUNNING); run it elsewhere"
                )
            tally["running"] += 1
        try:
            response = await _run(request, task, backend, cluster, settings)
        finally:
            with lock:
                tally["running"] -= 1
        with lock:
            tally["served" if response.status_code == 200 else "failed"] += 1
        return response

    async def workers(request: Request) -> Response:
        """How many tasks this platform's pool runs at once (peers weigh placement by it)."""
        token = bearer_token(request.headers.get("authorization"))
        if not token:
            raise UnauthorizedError("the peer routes need a cluster token")
        signer().verify_cluster(token)
        _, _, settings = ready()
        # what it takes from peers at once: past ``peer_max_running`` it answers 503
        return JSONResponse({"workers": min(settings.workers, settings.peer_max_running)})

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PlatformError)
        return platform_error_response(exc)

    return Starlette(
        routes=[
            Route("/tasks", tasks, methods=["POST"]),
            Route("/workers", workers, methods=["GET"]),
        ],
        exception_handlers={PlatformError: on_error},
    )


_FIELDS: dict[str, type] = {
    "id": str,
    "stage": int,
    "plan": str,
    "mem_cap": int,
    "spill_dir": str,
    "attempt": int,
    "files": list,
    "bytes_in": int,
    "exchange": str,
}


def _task_of(raw: bytes) -> Task:
    """A task from its JSON, every field of its type (a one-line 400 otherwise)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError; RecursionError: too deep
        raise BadInputError("the body is not a task's JSON (or nests too deep)") from None
    if not isinstance(data, dict):
        raise BadInputError("a task is a JSON object")
    for name, kind in _FIELDS.items():
        value = data.get(name)
        if name in ("attempt", "files", "bytes_in", "exchange") and name not in data:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadInputError(f"a task's {name!r} is a {kind.__name__}")
    extra = sorted(set(data) - set(_FIELDS))
    if extra:
        raise BadInputError(f"a task has no field {extra[0]!r}")
    if data.get("exchange"):  # it names a directory to write: a peer writes none
        raise BadInputError("a peer's task does not partition its result ('exchange' is empty)")
    files = data.get("files", [])
    if not all(isinstance(f, str) for f in files):
        raise BadInputError("a task's 'files' are strings (lake-chunk:<sha256>)")
    if not _TASK_ID.fullmatch(data["id"]):
        raise BadInputError("a task id is 1-160 letters, digits, '_' or '-'")
    if min(data["stage"], data.get("attempt", 1) - 1, data.get("bytes_in", 0)) < 0:
        raise BadInputError("a task's stage, attempt and bytes_in are not negative")
    return Task(**{**data, "files": tuple(files)})


async def _run(
    request: Request,
    task: Task,
    backend: Backend,
    cluster: ChunkCluster | None,
    settings: ElytraSettings,
) -> Response:
    job = JobDir(settings.resolved_spill_dir(), new_id())
    cancel = threading.Event()

    def work() -> tuple[pa.Table, dict[str, Any]]:
        where = job.acquire()
        try:
            mine = replace(task, mem_cap=settings.worker_mem_cap, spill_dir=str(where / "spill"))
            locate = cluster.locate if cluster is not None else (lambda sha: None)
            fetch = cluster.fetch if cluster is not None else None
            mine = resolve_chunks(mine, locate, fetch, where / "chunks")
            results = list(backend.run([mine], cancel))
            return results[0].table, results[0].stats
        finally:
            job.release()

    future = asyncio.ensure_future(asyncio.to_thread(work))
    while not future.done():
        done, _ = await asyncio.wait({future}, timeout=0.5)
        if not done and await request.is_disconnected():
            cancel.set()  # the sender gave up (cancelled, or its lease passed)
    try:
        table, stats = future.result()
    except (ElytraError, PlatformError, pa.ArrowException, OSError) as exc:
        return JSONResponse({"task_error": describe_error(exc)}, status_code=422)
    limit = int(settings.peer_max_result_bytes)
    if table.nbytes > limit:  # its rows must not cross the network: the sender runs it
        error = BadInputError(f"the task's result is over {limit} bytes; run it where it was made")
        return JSONResponse({"error": error.message}, status_code=413)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(
        sink.getvalue().to_pybytes(),
        media_type=ARROW_STREAM,
        headers={"x-elytra-stats": json.dumps(_plain(stats), separators=(",", ":"))},
    )


def _plain(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool)}
