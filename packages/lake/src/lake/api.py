"""The HTTP API of a lake node (mounted at ``/api/lake`` by the gateway and by ``lake node``).

Routes are user routes (the gateway, or ``lake node``, puts its token check in front of the
router). The node is looked up per request from a :class:`NodeHolder`, because the router is
built before the lifespan that opens the node.
"""

# No `from __future__ import annotations`: FastAPI must see the local NodeDep alias.

import asyncio
import datetime as dt
import decimal
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from platform_core import UnavailableError

from .errors import TooLargeError
from .manifest import Manifest
from .names import check_dataset_name, check_query_id
from .node import LakeNode

__all__ = ["NodeHolder", "make_router"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class NodeHolder:
    """Where the running node is kept between the router's creation and its lifespan."""

    def __init__(self, node: LakeNode | None = None) -> None:
        self.node = node

    def __call__(self) -> LakeNode:
        if self.node is None:
            raise UnavailableError("the lake node is not running (starting or stopping)")
        return self.node


# --- models -------------------------------------------------------------------------------


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
    state: str
    error: str | None = None
    version: int | None = None
    rows: int | None = None
    chunks: int | None = None
    status_url: str


class QueryModel(BaseModel):
    sql: str = Field(description="One SELECT, SHOW TABLES, DESCRIBE or EXPLAIN statement.")
    format: Literal["json", "csv", "arrow"] = "json"
    timeout: float | None = Field(
        None, gt=0, description="Seconds; default LAKE_QUERY_TIMEOUT_SECONDS."
    )
    query_id: str | None = Field(None, description="An id to cancel the query with.")


class QueryResultModel(BaseModel):
    query_id: str
    kind: str
    columns: list[ColumnModel]
    rows: list[list[Any]]
    row_count: int
    seconds: float
    reads: list[dict[str, Any]] = Field(default_factory=list)


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
            {"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in m.schema.fields
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
        "columns": cols,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        # Whole numbers (DuckDB's HUGEINT sums arrive as decimal(38, 0)) stay JSON numbers.
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def table_rows(table: pa.Table) -> list[list[Any]]:
    """Rows of a result as JSON-ready lists (column-wise conversion, then transposed)."""
    columns = [col.to_pylist() for col in table.columns]
    return [list(r) for r in zip(*columns, strict=True)] if columns else []


def _columns(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def _upload(node: LakeNode, upload_id: str, base: str) -> dict[str, Any]:
    info = node.uploads.get(upload_id)
    return {
        "id": info.id,
        "name": info.name,
        "format": info.format,
        "size": info.size,
        "part_size": info.part_size,
        "parts": info.parts,
        "received": node.uploads.received(upload_id),
        "state": info.state,
        "error": info.error,
        "version": info.version,
        "rows": info.rows,
        "chunks": info.chunks,
        "status_url": f"{base}/uploads/{info.id}",
    }


# --- router -------------------------------------------------------------------------------


def make_router(holder: NodeHolder, prefix: str = "/api/lake") -> APIRouter:
    """The lake's routes, relative to ``prefix`` (used only to build status URLs)."""
    router = APIRouter()
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
    def preview(
        node: NodeDep, name: str, limit: Annotated[int, Query(ge=1, le=1000)] = 20
    ) -> dict[str, Any]:
        """The first rows of the dataset."""
        check_dataset_name(name)
        result = node.engine.run(f'SELECT * FROM "{name}" LIMIT {int(limit)}')
        return _json_result(result)

    @router.delete("/datasets/{name}", status_code=200)
    def delete_dataset(node: NodeDep, name: str) -> dict[str, Any]:
        """Tombstone the dataset; its chunks are collected after the retention period."""
        m = node.catalog.delete(check_dataset_name(name))
        return {"name": name, "version": m.version, "deleted": True}

    @router.post("/uploads", status_code=201, response_model=UploadModel)
    def start_upload(node: NodeDep, body: UploadStartModel) -> dict[str, Any]:
        """Start an upload; then PUT its parts, then POST .../complete."""
        info = node.uploads.start(
            body.name,
            body.size,
            filename=body.filename,
            format=body.format,
            part_size=body.part_size,
            overrides=body.overrides,
            append=body.append,
        )
        return _upload(node, info.id, prefix)

    @router.put("/uploads/{upload_id}/parts/{n}")
    async def put_part(
        node: NodeDep,
        request: Request,
        upload_id: str,
        n: int,
        sha256: Annotated[
            str, Header(alias="x-content-sha256", description="Hex SHA-256 of the part.")
        ],
    ) -> dict[str, Any]:
        """Store part ``n`` (0-based) if its bytes match ``X-Content-SHA256``; safe to retry."""
        node.uploads._check_part(upload_id, n, sha256)
        limit = node.settings.max_part_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise TooLargeError(
                f"part of {declared} bytes is over the limit of {limit} bytes (LAKE_MAX_PART_BYTES)"
            )
        # Pieces are written as they arrive (hashing on the way), never buffered whole.
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

    @router.get("/uploads/{upload_id}", response_model=UploadModel)
    def upload_status(node: NodeDep, upload_id: str) -> dict[str, Any]:
        """State of an upload and the parts received (to resume, send the others)."""
        return _upload(node, upload_id, prefix)

    @router.post("/uploads/{upload_id}/complete", status_code=202, response_model=UploadModel)
    def complete_upload(node: NodeDep, upload_id: str) -> dict[str, Any]:
        """Start converting; poll ``status_url`` until ``committed`` (or ``failed``)."""
        node.uploads.complete(upload_id)
        return _upload(node, upload_id, prefix)

    @router.delete("/uploads/{upload_id}")
    def abort_upload(node: NodeDep, upload_id: str) -> dict[str, Any]:
        node.uploads.abort(upload_id)
        return {"id": upload_id, "aborted": True}

    @router.post(
        "/query",
        response_model=QueryResultModel,
        responses={200: {"content": {"text/csv": {}, ARROW_STREAM: {}}}},
    )
    async def query(node: NodeDep, body: QueryModel) -> Response:
        """Run one read-only statement; JSON (default), CSV or an Arrow IPC stream."""
        if body.query_id is not None:
            check_query_id(body.query_id)
        max_rows = None if body.format == "arrow" else node.settings.max_result_rows
        result = await run_in_threadpool(
            lambda: node.engine.run(
                body.sql, timeout=body.timeout, query_id=body.query_id, max_rows=max_rows
            )
        )
        headers = {"x-query-id": result.query_id}
        if body.format == "csv":
            out = io.BytesIO()
            pa_csv.write_csv(result.table, out)
            return Response(out.getvalue(), media_type="text/csv", headers=headers)
        if body.format == "arrow":
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, result.table.schema) as writer:
                writer.write_table(result.table)
            return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM, headers=headers)
        text = json.dumps(_json_result(result), default=_jsonable, allow_nan=False)
        return Response(text, media_type="application/json", headers=headers)

    @router.delete("/query/{query_id}")
    def cancel_query(node: NodeDep, query_id: str) -> dict[str, Any]:
        """Interrupt a running query started with this ``query_id``."""
        check_query_id(query_id)
        return {"query_id": query_id, "cancelled": node.engine.cancel(query_id)}

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
    def node_self(node: NodeDep) -> dict[str, Any]:
        return node.state()

    @router.post("/gc")
    def gc(node: NodeDep) -> dict[str, int]:
        """Collect superseded versions, unreferenced chunks and stale uploads now."""
        return node.gc()

    return router


def _json_result(result: Any) -> dict[str, Any]:
    table = result.table
    return {
        "query_id": result.query_id,
        "kind": result.kind,
        "columns": _columns(table.schema),
        "rows": table_rows(table),
        "row_count": table.num_rows,
        "seconds": result.seconds,
        "reads": result.reads,
    }
