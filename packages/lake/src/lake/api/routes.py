"""The HTTP API of a lake node (mounted at ``/api/lake`` by the gateway and by ``lake node``).

Routes are user routes (the gateway, or ``lake node``, puts its token check in front of the
router). The node is looked up per request (a :class:`NodeHolder`, or the gateway's services),
because the router is built before the lifespan that opens the node.
"""

# No `from __future__ import annotations`: FastAPI must see each route group's NodeDep alias.

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, TypeVar

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from platform_core import (
    BadInputError,
    ForbiddenError,
    PlatformError,
    UnauthorizedError,
    json_rows,
    new_id,
    type_name,
)
from platform_core.auth import Claims

from ..errors import QueryTimeoutError, TooLargeError, TooManyQueriesError
from ..names import check_backup_name, check_dataset_name, check_query_id
from ..node import LakeNode
from ..sql.admission import Ticket
from ..sql.engine import ResultStream
from ..sql.routing import open_query
from ..storage.manifest import Manifest
from . import duckdb_errors as _duckdb_errors  # noqa: F401  (registers DuckDB's translations)
from .holder import NodeHolder
from .roles import require_admin, require_owner

__all__ = ["NodeHolder", "make_router"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
MEDIA = {"arrow": ARROW_STREAM, "csv": "text/csv", "parquet": PARQUET}

log = logging.getLogger(__name__)

T = TypeVar("T")


# --- models -------------------------------------------------------------------------------


class BackupRequest(BaseModel):
    target: str = Field(max_length=128, description="a name under LAKE_BACKUP_DIR")
    all_versions: bool = Field(False, strict=True)  # a JSON boolean, not "yes" or 1


class BackupResultModel(BaseModel):
    target: str
    node_id: str
    datasets: dict[str, list[int]]
    chunks: int
    bytes: int
    repaired: list[str]


class ColumnModel(BaseModel):
    name: str
    type: str
    nullable: bool


class ChunkModel(BaseModel):
    sha256: str
    rows: int
    bytes: int
    stats: dict[str, list[Any]] = Field(default_factory=dict)


class DatasetModel(BaseModel):
    name: str
    version: int
    rows: int
    bytes: int
    chunks: int
    created: float
    origin: str
    owner: str | None = Field(None, description="Who uploaded it (null: recorded before owners).")
    columns: list[ColumnModel]


class DatasetDetailModel(DatasetModel):
    chunk_list: list[ChunkModel]


class UploadStartModel(BaseModel):
    name: str = Field(description="Dataset name (also its SQL table name).")
    size: int = Field(gt=0, description="Size of the whole file in bytes.")
    filename: str = Field("", description="Original file name; its suffix gives the format.")
    format: Literal["csv", "jsonl", "parquet"] | None = None
    part_size: int | None = Field(None, description="Bytes per part (the last may be shorter).")
    overrides: dict[str, str] = Field(
        default_factory=dict, description="Column types that replace inferred ones."
    )
    append: bool = Field(False, description="Add the rows to the dataset's current version.")


class UploadModel(BaseModel):
    id: str
    name: str
    format: str
    size: int
    part_size: int
    parts: int
    received: list[int]
    received_sha256: list[str] = Field(
        default_factory=list,
        description="The SHA-256 (hex) of each part in `received`, in the same order: a client "
        "resuming with a file it was given again checks that file's parts against them.",
    )
    received_bytes: int = Field(0, description="Bytes of the parts received so far.")
    created: float = Field(0.0, description="When the upload started (Unix seconds).")
    owner: str | None = Field(None, description="Who started it.")
    state: str
    error: str | None = None
    version: int | None = None
    rows: int | None = None
    chunks: int | None = None
    status_url: str


class QueryModel(BaseModel):
    sql: str = Field(description="One SELECT, SHOW TABLES, DESCRIBE or EXPLAIN statement.")
    format: Literal["json", "csv", "arrow", "parquet"] = Field(
        "json",
        description="json: capped (LAKE_MAX_RESULT_ROWS, LAKE_MAX_JSON_BYTES); csv, arrow "
        "(an Arrow IPC stream) and parquet (a Parquet file, a row group per batch) stream "
        "results of any size, up to LAKE_MAX_STREAM_BYTES.",
    )
    timeout: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        strict=True,
        description="Seconds, at most LAKE_MAX_QUERY_TIMEOUT_SECONDS; default "
        "LAKE_QUERY_TIMEOUT_SECONDS. It also bounds how long a csv/arrow stream runs.",
    )
    query_id: str | None = Field(
        None, description="An id to cancel the query with (letters, digits, '.', '_', ':', '-')."
    )


class QueryResultModel(BaseModel):
    query_id: str
    kind: str
    columns: list[ColumnModel]
    rows: list[list[Any]]
    row_count: int
    seconds: float
    reads: list[dict[str, Any]] = Field(default_factory=list)
    plan: dict[str, Any] | None = Field(
        None,
        description="EXPLAIN only. engine: which engine ran it (`elytra`: the platform's "
        "stages, when elytra is installed; `lake`: this node's planner) and why (what elytra "
        "declined). Elytra: stages (each with its tasks, where they ran, its joins: broadcast), "
        "exchanges (hash exchanges between stages), merge (the gather into the driver) and, "
        "for EXPLAIN ANALYZE, each one's rows, bytes and seconds. Lake, distributed: kind "
        "(the plan), fragments (per dataset, the SQL each node ran over its chunks), final "
        "(what the coordinator ran over them), pushdown (per dataset: the columns and filter "
        "sent to the nodes, and notes on what was not pushed and why) and moved (as the field "
        "below).",
    )
    moved: dict[str, Any] | None = Field(
        None,
        description="A distributed query only: what reached the coordinator, per dataset "
        "(datasets) and in total: rows, bytes (over the network from other nodes) and "
        "gathered_bytes (everything it held, its own fragments' results included).",
    )


class MemberModel(BaseModel):
    id: str
    http: str
    flight: str
    incarnation: int
    state: Literal["alive", "suspect", "dead"]
    chunks: int | None = None


class NodeModel(BaseModel):
    node_id: str
    datasets: int
    chunks: int
    data_dir: str
    members: list[MemberModel] = Field(default_factory=list)
    stats: dict[str, int] = Field(default_factory=dict)


class ClusterModel(BaseModel):
    replication_factor: int
    chunks: int
    under_replicated: int
    members: list[MemberModel]


# --- helpers ------------------------------------------------------------------------------


def _dataset(m: Manifest) -> dict[str, Any]:
    cols = (
        []
        if m.schema is None
        else [
            {"name": f.name, "type": type_name(f.type), "nullable": f.nullable}
            for f in m.schema.fields
        ]
    )
    return {
        "name": m.name,
        "version": m.version,
        "rows": m.rows,
        "bytes": m.size,
        "chunks": len(m.chunks),
        "created": m.created,
        "origin": m.origin,
        "owner": m.owner,
        "columns": cols,
    }


def _columns(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": type_name(f.type), "nullable": f.nullable} for f in schema]


def _own_upload(node: LakeNode, who: Claims, upload_id: str) -> None:
    require_owner(who, node.uploads.get(upload_id).owner, f"upload {upload_id}")


def _upload(node: LakeNode, upload_id: str, base: str) -> dict[str, Any]:
    info = node.uploads.get(upload_id)
    received = node.uploads.received(upload_id)
    return {
        "id": info.id,
        "name": info.name,
        "format": info.format,
        "size": info.size,
        "part_size": info.part_size,
        "parts": info.parts,
        "received": received,
        "received_sha256": node.uploads.received_sha256(upload_id, received),
        "received_bytes": sum(info.part_length(n) for n in received),
        "created": info.created,
        "owner": info.owner,
        "state": info.state,
        "error": info.error,
        "version": info.version,
        "rows": info.rows,
        "chunks": info.chunks,
        "status_url": f"{base}/uploads/{info.id}",
    }


def caller(request: Request) -> Claims:
    """The claims the front (the gateway or ``lake node``) verified for this request."""
    claims = getattr(request.state, "claims", None)
    if not isinstance(claims, Claims):
        raise UnauthorizedError("this route needs a token: send 'Authorization: Bearer <token>'")
    return claims


CallerDep = Annotated[Claims, Depends(caller)]
"""The caller's claims, as a route parameter's type."""


# --- queries ------------------------------------------------------------------------------


async def _answer(
    node: LakeNode,
    request: Request,
    who: Claims,
    sql: str,
    fmt: str,
    timeout: float | None,
    query_id: str | None,
) -> Response:
    """Admit, run on the query pool, and answer a query in ``fmt`` (json capped, else streamed)."""
    query_id = check_query_id(query_id) if query_id is not None else new_id()
    limit = node.engine.check_timeout(timeout)
    try:
        ticket = node.queries.admit(who.sub, query_id)
    except TooManyQueriesError as exc:
        return JSONResponse(
            exc.to_dict(), exc.status, headers={"Retry-After": str(exc.retry_after)}
        )
    headers = {"x-query-id": query_id}
    try:
        stream = await _in_pool(
            node,
            ticket,
            request,
            lambda: open_query(
                node.engine,
                node.sql_executor,
                sql,
                user=who.sub,
                timeout=limit,
                query_id=query_id,
                cancelled=ticket.cancelled,
            ),
        )
    except BaseException:
        node.queries.release(ticket)
        raise
    headers["x-query-engine"] = stream.engine
    if fmt == "json":
        try:
            text = await _in_pool(node, ticket, request, lambda: _json_text(node, stream))
        finally:
            stream.close()
            node.queries.release(ticket)
        return Response(text, media_type="application/json", headers=headers)
    media = MEDIA[fmt]
    if fmt == "parquet":
        headers["content-disposition"] = f'attachment; filename="{query_id}.parquet"'
    try:
        body = _ResultBody(node, ticket, stream, fmt)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        stream.close()
        node.queries.release(ticket)
        raise BadInputError(
            f"the result cannot be written as {fmt}: {exc}; ask for format 'arrow' or 'json' "
            "(CSV holds no list, struct or map columns)"
        ) from None
    await body.prime()  # an error before the first batch is an answer, not a cut stream
    return StreamingResponse(body, media_type=media, headers=headers)


async def _in_pool(node: LakeNode, ticket: Ticket, request: Request, fn: Callable[[], T]) -> T:
    """``fn`` on the query pool; if the client goes away meanwhile, the query is cancelled."""
    job = asyncio.wrap_future(node.queries.submit(ticket, fn))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        waiting: set[asyncio.Future[Any]] = {job, gone}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not job.done():
        log.info("client left; cancelling query %s", ticket.query_id)
        ticket.cancelled.set()
        node.engine.cancel(ticket.query_id)
        with contextlib.suppress(Exception):
            late = await job
            if isinstance(late, ResultStream):
                late.close()
        raise QueryTimeoutError(
            f"query {ticket.query_id} was cancelled: the client disconnected",
            query_id=ticket.query_id,
        )
    return job.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone (the body was read already, so only that can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _json_text(node: LakeNode, stream: ResultStream) -> str:
    """The JSON answer, refused past LAKE_MAX_RESULT_ROWS or LAKE_MAX_JSON_BYTES."""
    max_rows, max_bytes = node.settings.max_result_rows, node.settings.max_json_bytes
    advice = "ask for format 'arrow' or 'csv', which stream results of any size, or add a LIMIT"
    batches, rows, size = [], 0, 0
    while (batch := stream.next_batch()) is not None:
        rows += batch.num_rows
        size += batch.nbytes
        if rows > max_rows:
            raise TooLargeError(
                f"the result has over {max_rows} rows, the limit for JSON "
                f"(LAKE_MAX_RESULT_ROWS); {advice}"
            )
        if size > max_bytes:
            raise TooLargeError(
                f"the result is over {max_bytes} bytes, the limit for JSON "
                f"(LAKE_MAX_JSON_BYTES); {advice}"
            )
        batches.append(batch)
    table = pa.Table.from_batches(batches, stream.schema)
    body = {
        "query_id": stream.query_id,
        "kind": stream.kind,
        "columns": _columns(table.schema),
        "rows": json_rows(table),
        "row_count": table.num_rows,
        "seconds": stream.seconds,
        "reads": stream.reads,
    }
    if stream.plan is not None:
        body["plan"] = stream.plan
    if stream.moved is not None:
        body["moved"] = stream.moved
    text = json.dumps(body, allow_nan=False)
    if len(text) > max_bytes:
        raise TooLargeError(
            f"the result is {len(text)} bytes as JSON, over the limit of {max_bytes} "
            f"(LAKE_MAX_JSON_BYTES); {advice}"
        )
    return text


class _Spool:
    """A write-only file that hands its bytes out as they come, yet counts every byte.

    The Parquet writer asks the sink for its position to record where each row group starts,
    so the buffer of a streamed Parquet body cannot simply be rewound like the CSV/Arrow one.
    """

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        """The bytes written since the last call."""
        data, self._parts = b"".join(self._parts), []
        return data


class _ResultBody:
    """An Arrow IPC, CSV or Parquet body made batch by batch on the query pool as the client
    reads (Parquet: one row group per batch, the footer last).

    Bounded by the query's timeout (it covers the stream) and LAKE_MAX_STREAM_BYTES; past
    either, or on an error, the body stops with an exception, so the server aborts the
    connection and the client sees an incomplete response. The query and the user's slot are
    released when the body ends, fails, or is dropped (client gone).
    """

    def __init__(self, node: LakeNode, ticket: Ticket, stream: ResultStream, fmt: str) -> None:
        self.node = node
        self.ticket = ticket
        self.stream = stream
        self.limit = node.settings.max_stream_bytes
        self.sent = 0
        self._buf = _Spool()
        self._writer: Any
        if fmt == "arrow":
            self._writer = pa.ipc.new_stream(self._buf, stream.schema)
        elif fmt == "parquet":
            self._writer = pq.ParquetWriter(pa.PythonFile(self._buf, mode="w"), stream.schema)
        else:
            self._writer = pa_csv.CSVWriter(self._buf, stream.schema)
        self._ended = False
        self._first: bytes | None = None

    def __aiter__(self) -> "_ResultBody":
        return self

    async def prime(self) -> None:
        """Make the first chunk before the answer's headers go out, so a query that fails or
        times out before its first batch answers a clean error, not a cut-off stream."""
        try:
            self._first = await asyncio.wrap_future(self.node.queries.pool.submit(self._produce))
        except BaseException:
            self.close()
            raise

    async def __anext__(self) -> bytes:
        if self._first is None and self._ended:
            raise StopAsyncIteration
        try:
            if self._first is not None:
                chunk, self._first = self._first, None
            else:
                chunk = await asyncio.wrap_future(self.node.queries.pool.submit(self._produce))
            self.sent += len(chunk)
            if self.sent > self.limit:
                raise TooLargeError(
                    f"query {self.ticket.query_id}: the stream passed {self.limit} bytes "
                    "(LAKE_MAX_STREAM_BYTES); it was cut off"
                )
        except BaseException as exc:
            log.warning("query %s: stream cut off: %s", self.ticket.query_id, exc)
            self.close()
            raise
        if self._ended:
            self.close()
        if not chunk and self._ended:
            raise StopAsyncIteration
        return chunk

    def _produce(self) -> bytes:
        """The next batch serialized (the first chunk carries the schema or CSV header)."""
        batch = self.stream.next_batch()
        if batch is None:
            self._writer.close()
            self._ended = True
        elif batch.num_rows:
            self._writer.write_batch(batch)
        return self._buf.take()

    def close(self) -> None:
        self._ended = True
        self.stream.close()
        self.node.queries.release(self.ticket)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # best effort when dropped at shutdown
            self.close()


# --- upload parts -------------------------------------------------------------------------


async def _receive_part(
    node: LakeNode, request: Request, upload_id: str, n: int, sha256: str
) -> dict[str, Any]:
    """Write the request body as part ``n`` while it arrives (hashed on the way, never buffered
    whole): the body is fed to the upload's writer thread about 1 MiB at a time, and cut off
    past LAKE_MAX_PART_BYTES."""
    limit = node.settings.max_part_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(
            f"part of {declared} bytes is over the limit of {limit} bytes (LAKE_MAX_PART_BYTES)"
        )
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
    loop = asyncio.get_running_loop()

    def pieces() -> Iterator[bytes]:
        while True:
            piece = asyncio.run_coroutine_threadsafe(queue.get(), loop).result()
            if piece is None:
                return
            yield piece

    async def offer(item: bytes | None) -> bool:
        """Queue a piece unless the writer has already stopped (it failed early)."""
        put = asyncio.ensure_future(queue.put(item))
        done, _ = await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
        if put not in done:
            put.cancel()
            return False
        return True

    async def feed() -> None:
        total = 0
        buffer = bytearray()
        try:
            async for piece in request.stream():
                total += len(piece)
                if total > limit:
                    raise TooLargeError(
                        f"part is over the limit of {limit} bytes (LAKE_MAX_PART_BYTES)"
                    )
                buffer += piece
                # Hand over ~1 MiB at a time: one thread hop per MiB, not per socket read.
                if len(buffer) >= 1 << 20:
                    if not await offer(bytes(buffer)):
                        return
                    buffer.clear()
            if buffer and not await offer(bytes(buffer)):
                return
        finally:
            await offer(None)

    writer = asyncio.ensure_future(
        run_in_threadpool(node.uploads.put_part_stream, upload_id, n, pieces(), sha256)
    )
    try:
        await feed()
    except BaseException:
        writer.cancel()
        raise
    return await writer


# --- router -------------------------------------------------------------------------------


def make_router(holder: Callable[[], LakeNode], prefix: str = "/api/lake") -> APIRouter:
    """The lake's routes, relative to ``prefix`` (used only to build status URLs); ``holder()``
    is the running node (``UnavailableError`` while there is none)."""
    router = APIRouter()
    _dataset_routes(router, holder)
    _upload_routes(router, holder, prefix)
    _upload_control_routes(router, holder, prefix)
    _query_routes(router, holder)
    _node_routes(router, holder)
    return router


def _dataset_routes(router: APIRouter, holder: Callable[[], LakeNode]) -> None:
    """Listing, reading, previewing and deleting datasets."""
    NodeDep = Annotated[LakeNode, Depends(holder)]

    @router.get("/datasets", response_model=list[DatasetModel])
    def list_datasets(node: NodeDep) -> list[dict[str, Any]]:
        """Live datasets with their current version, size and columns."""
        return [_dataset(node.catalog.get(n)) for n in node.catalog.names()]

    @router.get("/datasets/{name}", response_model=DatasetDetailModel)
    def get_dataset(
        node: NodeDep, name: str, version: Annotated[int | None, Query(ge=1)] = None
    ) -> dict[str, Any]:
        """One dataset version (default: current), with its chunks."""
        m = node.catalog.get(check_dataset_name(name), version)
        return {**_dataset(m), "chunk_list": [c.to_dict() for c in m.chunks]}

    @router.get("/datasets/{name}/versions", response_model=list[DatasetModel])
    def versions(node: NodeDep, name: str) -> list[dict[str, Any]]:
        """Versions still kept (older ones go after the retention period)."""
        node.catalog.get(check_dataset_name(name))
        return [_dataset(node.catalog.read(name, v)) for v in node.catalog.versions(name)]

    @router.get("/datasets/{name}/schema", response_model=list[ColumnModel])
    def schema(node: NodeDep, name: str) -> list[dict[str, Any]]:
        return _dataset(node.catalog.get(check_dataset_name(name)))["columns"]  # type: ignore[no-any-return]

    @router.get("/datasets/{name}/preview", response_model=QueryResultModel)
    async def preview(
        node: NodeDep,
        request: Request,
        who: CallerDep,
        name: str,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> Response:
        """The first rows of the dataset (a query: it counts against the user's limit)."""
        check_dataset_name(name)
        sql = f'SELECT * FROM "{name}" LIMIT {int(limit)}'
        return await _answer(node, request, who, sql, "json", None, None)

    @router.delete("/datasets/{name}", status_code=200)
    def delete_dataset(node: NodeDep, who: CallerDep, name: str) -> dict[str, Any]:
        """Tombstone the dataset; its chunks are collected after the retention period.

        Role: the dataset's owner (its uploader) or an admin.
        """
        current = node.catalog.get(check_dataset_name(name))
        require_owner(who, current.owner, f"dataset {name!r}")
        m = node.catalog.delete(name)
        return {"name": name, "version": m.version, "deleted": True}


def _upload_routes(router: APIRouter, holder: Callable[[], LakeNode], prefix: str) -> None:
    """The resumable upload protocol's sending half: start an upload, send its parts."""
    NodeDep = Annotated[LakeNode, Depends(holder)]

    @router.post("/uploads", status_code=201, response_model=UploadModel)
    def start_upload(node: NodeDep, who: CallerDep, body: UploadStartModel) -> dict[str, Any]:
        """Start an upload; then PUT its parts, then POST .../complete.

        Role: any user for a new dataset (they become its owner); the owner or an admin to
        add a version to an existing one.
        """
        head = node.catalog.head(check_dataset_name(body.name))
        if head is not None and not head.deleted:
            require_owner(who, head.owner, f"dataset {body.name!r}")
        info = node.uploads.start(
            body.name,
            body.size,
            filename=body.filename,
            format=body.format,
            part_size=body.part_size,
            overrides=body.overrides,
            append=body.append,
            owner=who.sub,
            admin=who.admin,
        )
        return _upload(node, info.id, prefix)

    @router.put("/uploads/{upload_id}/parts/{n}")
    async def put_part(
        node: NodeDep,
        who: CallerDep,
        request: Request,
        upload_id: str,
        n: int,
        sha256: Annotated[
            str, Header(alias="x-content-sha256", description="Hex SHA-256 of the part.")
        ],
    ) -> dict[str, Any]:
        """Store part ``n`` (0-based) if its bytes match ``X-Content-SHA256``; safe to retry.

        Role: the upload's starter or an admin.
        """
        _own_upload(node, who, upload_id)
        node.uploads._check_part(upload_id, n, sha256)
        return await _receive_part(node, request, upload_id, n, sha256)


def _upload_control_routes(router: APIRouter, holder: Callable[[], LakeNode], prefix: str) -> None:
    """The rest of the upload protocol: list uploads, see one's parts, complete or abort it."""
    NodeDep = Annotated[LakeNode, Depends(holder)]

    @router.get("/uploads", response_model=list[UploadModel])
    def list_uploads(node: NodeDep, who: CallerDep) -> list[dict[str, Any]]:
        """The uploads this node keeps, oldest first: the caller's own (an admin sees all).

        Role: any user (each sees only the uploads they started; an admin sees every one).
        """
        out = []
        for info in node.uploads.list():
            if who.admin or (info.owner is not None and info.owner == who.sub):
                with contextlib.suppress(PlatformError):  # removed meanwhile
                    out.append(_upload(node, info.id, prefix))
        return out

    @router.get("/uploads/{upload_id}", response_model=UploadModel)
    def upload_status(node: NodeDep, who: CallerDep, upload_id: str) -> dict[str, Any]:
        """State of an upload and the parts received (to resume, send the others).

        Role: the upload's starter or an admin.
        """
        _own_upload(node, who, upload_id)
        return _upload(node, upload_id, prefix)

    @router.post("/uploads/{upload_id}/complete", status_code=202, response_model=UploadModel)
    def complete_upload(node: NodeDep, who: CallerDep, upload_id: str) -> dict[str, Any]:
        """Start converting; poll ``status_url`` until ``committed`` (or ``failed``).

        Role: the upload's starter or an admin.
        """
        _own_upload(node, who, upload_id)
        node.uploads.complete(upload_id)
        return _upload(node, upload_id, prefix)

    @router.delete("/uploads/{upload_id}")
    def abort_upload(node: NodeDep, who: CallerDep, upload_id: str) -> dict[str, Any]:
        """Abort an upload and remove its parts. Role: the upload's starter or an admin."""
        _own_upload(node, who, upload_id)
        node.uploads.abort(upload_id)
        return {"id": upload_id, "aborted": True}


def _query_routes(router: APIRouter, holder: Callable[[], LakeNode]) -> None:
    """Running a read-only statement, and cancelling one."""
    NodeDep = Annotated[LakeNode, Depends(holder)]

    @router.post(
        "/query",
        response_model=QueryResultModel,
        responses={
            200: {"content": {"text/csv": {}, ARROW_STREAM: {}, PARQUET: {}}},
            413: {"description": "A JSON result over its limits (use csv or arrow)."},
            422: {"description": "A timeout that is not finite, > 0 and within the limit."},
            429: {"description": "Too many queries of this user at once (see Retry-After)."},
        },
    )
    async def query(node: NodeDep, request: Request, who: CallerDep, body: QueryModel) -> Response:
        """Run one read-only statement; JSON (default, capped), CSV or an Arrow IPC stream.

        CSV and Arrow are produced batch by batch as the client reads; a stream that fails
        midway (timeout, cancel, LAKE_MAX_STREAM_BYTES) is cut off, so the client sees an
        incomplete body, never a short result that looks whole.
        """
        return await _answer(node, request, who, body.sql, body.format, body.timeout, body.query_id)

    @router.delete("/query/{query_id}")
    async def cancel_query(node: NodeDep, who: CallerDep, query_id: str) -> dict[str, Any]:
        """Interrupt a running or waiting query started with this ``query_id``.

        Answered on the event loop, never behind the query pool. Role: the query's submitter
        or an admin.
        """
        check_query_id(query_id)
        ticket = node.queries.get(query_id)
        if ticket is None and not who.admin:
            return {"query_id": query_id, "cancelled": False}
        if ticket is not None and ticket.user != who.sub and not who.admin:
            raise ForbiddenError(
                f"query {query_id} was started by {ticket.user!r}; only they or an admin may "
                "cancel it"
            )
        if ticket is not None:
            ticket.cancelled.set()
        cancelled = node.engine.cancel(query_id) or ticket is not None
        return {"query_id": query_id, "cancelled": cancelled}


def _node_routes(router: APIRouter, holder: Callable[[], LakeNode]) -> None:
    """The members and this node, and the admin's backup and garbage collection."""
    NodeDep = Annotated[LakeNode, Depends(holder)]

    @router.get("/nodes", response_model=ClusterModel)
    def nodes(node: NodeDep) -> dict[str, Any]:
        """Members with state and chunk counts, and replication health of the live chunks."""
        if node.cluster is None:
            me = {"id": node.node_id, "http": "", "flight": "", "incarnation": 0, "state": "alive"}
            live = {c.sha256 for m in node.catalog.heads() if not m.deleted for c in m.chunks}
            return {
                "replication_factor": 1,
                "chunks": len(live),
                "under_replicated": len(live - set(node.chunks.all())),
                "members": [{**me, "chunks": len(node.chunks.all())}],
            }
        return node.cluster.health()

    @router.get("/nodes/self", response_model=NodeModel)
    def node_self(node: NodeDep, who: CallerDep) -> dict[str, Any]:
        """This node: its id, counts, members, and stats (with queries running and waiting).

        Role: admin (it shows the node's data directory).
        """
        require_admin(who, "GET /nodes/self")
        state = node.state()
        state["stats"] = {**state["stats"], **node.queries.counts()}
        return state

    @router.post("/admin/backup", response_model=BackupResultModel)
    def backup(node: NodeDep, who: CallerDep, body: BackupRequest) -> dict[str, Any]:
        """Back up this node's live datasets (every kept version with ``all_versions``) into
        ``LAKE_BACKUP_DIR/<target>`` while it serves; see the README, "Backup and restore".

        Role: admin. ``target`` is a plain name (never a path); an existing non-empty backup
        of that name is refused (400 ``bad_input``).
        """
        require_admin(who, "POST /admin/backup")
        target = node.settings.backups() / check_backup_name(body.target)
        return node.backup(target, all_versions=body.all_versions).to_dict()

    @router.post("/gc")
    def gc(node: NodeDep, who: CallerDep) -> dict[str, int]:
        """Collect superseded versions, unreferenced chunks and stale uploads now. Role: admin."""
        require_admin(who, "POST /gc")
        return node.gc()
