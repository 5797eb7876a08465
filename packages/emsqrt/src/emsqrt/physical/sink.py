"""Sinks: CSV, JSONL and Parquet, written to a temporary file renamed into place at the end.

On any failure (or interruption) the temporary file is removed, so no partial output is ever
left under the destination name. JSONL lines are built with vectorised string kernels.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from .. import plan as lp
from ..context import ExecContext
from ..errors import EmsqrtError
from .base import PhysicalOp

__all__ = ["SinkOp", "jsonl_lines"]


def _json_string(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    s = pc.cast(arr, pa.string())
    for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        s = pc.replace_substring(s, old, new)
    # Remaining control characters as \u00XX.
    if pc.any(pc.match_substring_regex(s, "[\\x00-\\x1f]")).as_py():
        for code in [*range(0, 9), 11, 12, *range(14, 32)]:
            s = pc.replace_substring(s, chr(code), f"\\u{code:04x}")
    return pc.binary_join_element_wise('"', s, '"', "")


def _json_value(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_boolean(t):
        text = pc.if_else(arr, "true", "false")
    elif pa.types.is_integer(t):
        text = pc.cast(arr, pa.string())
    elif pa.types.is_floating(t):
        finite = pc.is_finite(arr)
        text = pc.if_else(finite, pc.cast(arr, pa.string()), pa.scalar(None, pa.string()))
    elif pa.types.is_decimal(t):
        text = pc.cast(arr, pa.string())
    else:
        text = _json_string(arr)
    return pc.fill_null(text, "null")


def jsonl_lines(batch: pa.RecordBatch) -> bytes:
    """The batch as JSON Lines (one object per row), built column-wise."""
    if batch.num_rows == 0:
        return b""
    pieces: list[Any] = []
    for i, name in enumerate(batch.schema.names):
        key = ("{" if i == 0 else ",") + _json_string(pa.array([name])).to_pylist()[0] + ":"
        pieces += [key, _json_value(batch.column(i))]
    pieces.append("}\n")
    lines = pc.binary_join_element_wise(*pieces, "")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return bytes(memoryview(lines.buffers()[2])[start:end])


class SinkOp(PhysicalOp):
    name = "sink"

    def __init__(self, ctx: ExecContext, node: lp.Sink, child: PhysicalOp) -> None:
        super().__init__(ctx, [child], child.schema)
        self.node = node
        self.detail = f"{node.format} {node.path}"
        self.rows_written = 0

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        dest = Path(self.node.path)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmsqrtError(f"cannot create the output directory {dest.parent}: {exc}") from exc
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self._write(tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return
        yield  # a generator that produces no batches

    def _write(self, tmp: Path) -> None:
        fmt = self.node.format
        schema = self.children[0].schema
        batches = self.children[0].batches()
        if fmt == "csv":
            with pcsv.CSVWriter(tmp, schema) as writer:
                for b in batches:
                    writer.write_batch(b)
                    self.rows_written += b.num_rows
        elif fmt == "jsonl":
            with open(tmp, "wb") as f:
                for b in batches:
                    f.write(jsonl_lines(b))
                    self.rows_written += b.num_rows
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetWriter(tmp, schema) as writer:
                for b in batches:
                    writer.write_batch(b)
                    self.rows_written += b.num_rows
        else:
            raise EmsqrtError(f"unknown sink format {fmt!r} (known: csv, jsonl, parquet)")
