"""Streaming conversion of an uploaded CSV, JSONL or Parquet file into Parquet chunks.

The file is read in blocks (the platform's CSV reader, which reads as DuckDB's ``read_csv``;
pyarrow's streaming JSON reader; Parquet row-group batches),
batches are buffered up to a row-group size and written to the open chunk; a chunk is closed
when the next row group would take it past the target size, so chunks hold whole rows and stay
near the target. Memory stays within the ingest budget: one reader block, one row group and
the writer's buffers. Each finished chunk is hashed and moved into the chunk store.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from platform_core import BadInputError, FieldType, Schema, infer_schema
from platform_core.csv import CsvError, read_csv_batches

from ..errors import IngestError
from .chunks import ChunkStore
from .manifest import ChunkRef

__all__ = ["FORMATS", "ConvertResult", "convert_file", "detect_format"]

log = logging.getLogger(__name__)

FORMATS = ("csv", "jsonl", "parquet")

# The system allocator gives freed memory back, so a conversion's footprint ends with it;
# mimalloc/jemalloc keep arenas that count against the ingest budget long after.
POOL = pa.system_memory_pool()
_SUFFIX = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_SUFFIX |= {".parquet": "parquet", ".pq": "parquet"}


def detect_format(filename: str, given: str | None = None) -> str:
    """The format named by the caller, else by the file's suffix."""
    if given:
        fmt = {"ndjson": "jsonl", "json": "jsonl"}.get(given.lower(), given.lower())
        if fmt not in FORMATS:
            raise BadInputError(f"format {given!r} is not supported; use one of {FORMATS}")
        return fmt
    found = _SUFFIX.get(Path(filename).suffix.lower())
    if found is None:
        raise BadInputError(
            f"cannot tell the format of {filename!r} from its suffix; pass format= "
            f"(one of {FORMATS})"
        )
    return found


@dataclass(frozen=True)
class ConvertResult:
    schema: Schema
    chunks: tuple[ChunkRef, ...]
    rows: int


def _json_value(value: Any) -> Any:
    """A Parquet statistic as a JSON value (None when it has no faithful JSON form)."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")  # never '1E-18', which a DECIMAL cast refuses
    return None


def _stats(path: Path) -> dict[str, tuple[Any, Any]]:
    """Per-column (min, max) of a chunk from its Parquet footer."""
    meta = pq.ParquetFile(path).metadata
    out: dict[str, tuple[Any, Any]] = {}
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    for j, name in enumerate(names):
        lo: Any = None
        hi: Any = None
        usable = "." not in name
        for i in range(meta.num_row_groups):
            column = meta.row_group(i).column(j)
            st = column.statistics
            if st is not None and not st.has_min_max and st.null_count == column.num_values:
                continue  # all nulls in this row group: no bounds needed
            if st is None or not st.has_min_max:
                usable = False
                break
            try:
                a, b = st.min, st.max
            except (OverflowError, ValueError):  # a date past year 9999 or before year 1
                usable = False
                break
            if _json_value(a) is None or _json_value(b) is None:
                usable = False
                break
            # compared as values: a decimal's or a time's JSON text does not sort as it does
            lo = a if lo is None or a < lo else lo
            hi = b if hi is None or b > hi else hi
        if usable and lo is not None:
            out[name] = (_json_value(lo), _json_value(hi))
    return out


def _stats_columns(schema: pa.Schema) -> list[str]:
    """The columns whose Parquet statistics a chunk carries: not floating-point ones, whose
    min and max leave NaN out while DuckDB orders NaN above every number, so it skipped row
    groups holding a NaN that ``f > 3`` keeps (found from outside); not nested ones either,
    which the manifest takes no bounds of."""
    return [
        f.name
        for f in schema
        if not pa.types.is_floating(f.type) and not pa.types.is_nested(f.type)
    ]


class _ChunkWriter:
    """Writes batches into Parquet chunks of about ``target`` bytes."""

    def __init__(
        self,
        store: ChunkStore,
        schema: pa.Schema,
        target: int,
        row_group_bytes: int,
        hold: Callable[[str], None],
        compression: str = "snappy",
    ) -> None:
        self.store, self.schema, self.target = store, schema, target
        self.compression = compression
        self.row_group_bytes = row_group_bytes
        self.hold = hold
        self.chunks: list[ChunkRef] = []
        self.rows = 0
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._sink: Any = None
        self._tmp: Path | None = None
        self._chunk_rows = 0
        self._bytes_per_row = 0.0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._buffer.append(batch)
        self._buffered += batch.nbytes
        if self._buffered >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        self._buffer, self._buffered = [], 0
        while table.num_rows:
            if self._writer is None:
                self._open()
            assert self._sink is not None
            assert self._writer is not None
            written = self._sink.tell()
            room = self.target - written
            # Estimate how many rows fit from what this chunk (or the last) cost per row.
            per_row = self._bytes_per_row or max(table.nbytes / max(table.num_rows, 1) / 3, 1)
            fit = int(room * 0.9 / per_row)
            if fit <= 0 and self._chunk_rows > 0:
                self._close()
                continue
            take = max(min(table.num_rows, fit), 1)
            part, table = table.slice(0, take), table.slice(take)
            self._writer.write_table(part, row_group_size=max(part.num_rows, 1))
            self._chunk_rows += part.num_rows
            size = self._sink.tell()
            self._bytes_per_row = size / self._chunk_rows
            if size >= self.target * 0.9:
                self._close()

    def _open(self) -> None:
        self._tmp = self.store.temp_path()
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = pq.ParquetWriter(
            self._sink,
            self.schema,
            compression=self.compression,  # pyarrow's lz4 is Parquet's LZ4_RAW
            write_statistics=_stats_columns(self.schema),
            # a decimal of up to 18 digits as an INT32/INT64, as the Parquet spec advises:
            # smaller and faster to read than a fixed-length byte array
            store_decimal_as_integer=True,
            memory_pool=POOL,
        )
        self._chunk_rows = 0

    def _close(self) -> None:
        if self._writer is None:
            return
        assert self._tmp is not None
        self._writer.close()
        self._sink.close()
        stats = _stats(self._tmp)
        sha, size = self.store.adopt(self._tmp, hold=self.hold)
        self.chunks.append(ChunkRef(sha, self._chunk_rows, size, stats))
        self.rows += self._chunk_rows
        self._writer = None
        self._sink = None
        self._tmp = None

    def finish(self) -> None:
        self._flush()
        self._close()

    def discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
                self._sink.close()
            finally:
                if self._tmp is not None:
                    self._tmp.unlink(missing_ok=True)
        self._writer = None


def _csv_batches(path: Path, schema: pa.Schema, block: int) -> Iterator[pa.RecordBatch]:
    # The platform's one CSV reader: values as DuckDB's read_csv reads them, rows that cross
    # blocks (quoted newlines) included.
    yield from read_csv_batches(path, schema, block_bytes=block, use_threads=True, memory_pool=POOL)


def _jsonl_batches(path: Path, schema: pa.Schema, block: int) -> Iterator[pa.RecordBatch]:
    # Arrow's JSON parser reads dates and decimals only from strings it was told are strings;
    # read those columns as text and cast them to the target type afterwards.
    textual = (pa.types.is_date, pa.types.is_decimal)
    read_schema = pa.schema(
        [pa.field(f.name, pa.string()) if any(t(f.type) for t in textual) else f for f in schema]
    )
    reader = pa_json.open_json(
        path,
        memory_pool=POOL,
        read_options=pa_json.ReadOptions(block_size=block, use_threads=True),
        parse_options=pa_json.ParseOptions(
            explicit_schema=read_schema, unexpected_field_behavior="ignore"
        ),
    )
    for batch in reader:
        yield batch.cast(schema) if read_schema != schema else batch


def _parquet_batches(path: Path, schema: pa.Schema, block: int) -> Iterator[pa.RecordBatch]:
    pf = pq.ParquetFile(path, memory_map=False)
    meta = pf.metadata
    row_bytes = 64
    if meta.num_row_groups and meta.row_group(0).num_rows:
        row_bytes = max(meta.row_group(0).total_byte_size // meta.row_group(0).num_rows, 1)
    rows = max(1024, block // row_bytes)
    for batch in pf.iter_batches(batch_size=rows, columns=schema.names):
        yield batch.cast(schema) if batch.schema != schema else batch


_READERS = {"csv": _csv_batches, "jsonl": _jsonl_batches, "parquet": _parquet_batches}


def convert_file(
    path: Path,
    fmt: str,
    store: ChunkStore,
    *,
    chunk_bytes: int,
    memory_bytes: int,
    overrides: Mapping[str, str | FieldType] | None = None,
    hold: Callable[[str], None] = lambda sha: None,
    progress: Callable[[int], None] | None = None,
    compression: str = "snappy",
) -> ConvertResult:
    """Convert the file at ``path`` to chunks in ``store`` (Parquet with ``compression``, one
    of ``LakeSettings.chunk_compression``); nothing is kept if it fails."""
    try:
        schema = infer_schema(path, format=fmt, overrides=overrides)
    except BadInputError as exc:
        # Never show the node's internal path; say which line when the reader knows it.
        message = re.sub(r'cannot read "[^"]*" as \w+: ', "", exc.message)
        row = re.search(r"line (\d+) is (.*)", message, re.S)
        if fmt == "csv" and row:
            raise IngestError(
                f"malformed CSV at line {row.group(1)}: {row.group(2)} (fix the line and upload "
                "again)"
            ) from exc
        raise IngestError(
            f"cannot read the uploaded {fmt} file: {_hide_path(message, path)}"
        ) from exc
    arrow_schema = schema.to_arrow()
    _check_case_collisions(arrow_schema.names, fmt)
    block = int(min(max(memory_bytes // 64, 64 << 10), 4 << 20))
    row_group = int(min(max(min(chunk_bytes // 4, memory_bytes // 16), 16 << 10), 32 << 20))
    writer = _ChunkWriter(store, arrow_schema, chunk_bytes, row_group, hold, compression)
    rows_before = 0
    try:
        for batch in _READERS[fmt](path, arrow_schema, block):
            writer.add(batch)
            rows_before += batch.num_rows
            if progress is not None:
                progress(rows_before)
        writer.finish()
    except CsvError as exc:
        writer.discard()
        line = exc.details.get("line")
        if line is not None:
            what = re.sub(r"^line \d+(: | is )", "", exc.message)
            raise IngestError(
                f"malformed CSV at line {line}: {what} (fix the line and upload again)"
            ) from exc
        raise IngestError(f"malformed CSV after data row {rows_before}: {exc.message}") from exc
    except pa.ArrowInvalid as exc:
        writer.discard()
        raise IngestError(_hide_path(_explain(path, fmt, str(exc), rows_before), path)) from exc
    except Exception:
        writer.discard()
        raise
    return ConvertResult(schema, tuple(writer.chunks), writer.rows)


def _hide_path(message: str, path: Path) -> str:
    """``message`` without the node's internal path of the upload (a client sees it)."""
    return message.replace(f'"{path}"', "the file").replace(str(path), "the file")


def _check_case_collisions(names: list[str], fmt: str) -> None:
    """Refuse columns whose names differ only in case: SQL (DuckDB) cannot tell them apart, so
    ``a`` and ``A`` would show in the schema while a query reads ``a`` twice or ``A_1``."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise IngestError(
                f"the {fmt} file has columns {other!r} and {name!r}, which differ only in case; "
                "SQL cannot tell them apart: rename one and upload again"
            )


def _explain(path: Path, fmt: str, message: str, rows_before: int) -> str:
    if fmt == "csv":
        return f"malformed CSV after data row {rows_before}: {message}"
    if fmt == "jsonl":
        m = re.search(r"in row (\d+)", message)
        if m:
            line = rows_before + int(m.group(1)) + 1
            return f"malformed JSON lines at line {line}: {message} (fix the line and upload again)"
        return f"malformed JSON lines after line {rows_before}: {message}"
    return f"cannot read the Parquet file: {message}"
