"""A stored result served in pages: JSON (one bounded page), or an Arrow IPC or CSV stream.

Every form reads the stored batches that hold rows ``offset`` to ``offset + limit`` one at a
time (``StoredResult.batches``) and sends each as it is encoded, so the gateway holds one
batch of a result, never all of it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from platform_core import BadInputError, json_rows, write_csv_bytes

from .resultstore import StoredResult

__all__ = ["arrow_stream", "csv_stream", "json_page"]


JSON_PAGE_BYTES = 16 << 20
"""A JSON page holds rows up to this many bytes of Arrow data (at least one row): a page of
wide rows is shorter, and its ``next_offset`` says where the next one starts. The JSON text
is a few times the Arrow bytes, so one page costs the gateway tens of MiB at most."""


def json_page(result: StoredResult, offset: int, limit: int) -> bytes:
    """Rows ``offset`` .. ``offset + limit`` (fewer if they pass ``JSON_PAGE_BYTES``) as
    ``{columns, rows, offset, limit, total_rows, next_offset, truncated}``; ``next_offset`` is
    None on the last page."""
    schema = result.schema()
    batches: list[pa.RecordBatch] = []
    held = 0
    for batch in result.batches(offset, limit):
        room = JSON_PAGE_BYTES - held
        if batch.nbytes > room:
            # the rows that fit by their average width, at least one if the page is empty
            width = max(batch.nbytes // max(batch.num_rows, 1), 1)
            take = max(room // width, 0 if batches else 1)
            if take:
                batches.append(batch.slice(0, take))
            break
        batches.append(batch)
        held += batch.nbytes
    table = pa.Table.from_batches(batches, schema=schema)
    end = offset + table.num_rows
    more = end < result.num_rows
    body: dict[str, Any] = {
        "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
        "rows": json_rows(table),
        "offset": offset,
        "limit": limit,
        "total_rows": result.num_rows,
        "next_offset": end if more else None,
        "truncated": more,
    }
    return json.dumps(body, allow_nan=False).encode()


def _drain(buf: io.BytesIO) -> bytes:
    out = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return out


def arrow_stream(result: StoredResult, offset: int, limit: int | None) -> Iterator[bytes]:
    """The rows as an Arrow IPC stream, sent batch by batch."""
    buf = io.BytesIO()
    with pa.ipc.new_stream(buf, result.schema()) as writer:
        yield _drain(buf)
        for batch in result.batches(offset, limit):
            writer.write_batch(batch)
            yield _drain(buf)
    yield _drain(buf)  # the end-of-stream marker


def check_csv(result: StoredResult) -> None:
    """``BadInputError`` now (before a response starts) if CSV cannot hold the columns.
    Binary columns are refused whatever they hold: bytes that are not UTF-8 would break the
    stream half-way, after its 200."""
    schema = result.schema()
    binary = [
        f.name
        for f in schema
        if pa.types.is_binary(f.type)
        or pa.types.is_large_binary(f.type)
        or pa.types.is_fixed_size_binary(f.type)
    ]
    if binary:
        raise BadInputError(
            f"CSV cannot hold the binary column(s) {binary}; ask for format=arrow or json"
        )
    write_csv_bytes(schema.empty_table(), instead="ask for json or arrow")


def csv_stream(result: StoredResult, offset: int, limit: int | None) -> Iterator[bytes]:
    """The rows as CSV with a header, sent batch by batch (call ``check_csv`` first)."""
    buf = io.BytesIO()
    with pcsv.CSVWriter(buf, result.schema()) as writer:
        yield _drain(buf)
        for batch in result.batches(offset, limit):
            writer.write_batch(batch)
            yield _drain(buf)
    yield _drain(buf)
