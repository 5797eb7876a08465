"""Sources: file scans (CSV, JSONL, Parquet) streaming in bounded batches, and given batches.

CSV is read by the platform's one reader (``platform_core.csv``: DuckDB's ``read_csv``
semantics). CSV and JSONL are read single-threaded with ``block_size`` set from the budget (Arrow's
default 1 MiB blocks and readahead were the largest scan peaks we measured); Parquet is read
batch by batch without pre-buffering. A pushed-down predicate is applied to each batch as it
is read, and only the pushed-down columns are decoded.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pjson

from platform_core import PlatformError
from platform_core.csv import CsvError, read_csv_batches
from platform_core.expr import Expr, evaluate, to_sql

from .. import plan as lp
from ..budget import Guard, format_bytes
from ..context import ExecContext
from ..errors import InputFileError
from ..resolve import arrow_scan_schema
from .base import PhysicalOp

__all__ = ["InputOp", "ScanOp", "rechunk"]


def rechunk(batches: Iterator[pa.RecordBatch], target_bytes: int) -> Iterator[pa.RecordBatch]:
    """Slice batches (zero-copy) so none is much larger than ``target_bytes``."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if batch.nbytes <= target_bytes * 1.5 or batch.num_rows == 1:
            yield batch
            continue
        rows = max(1, int(batch.num_rows * target_bytes / batch.nbytes))
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def apply_predicate(batch: pa.RecordBatch, predicate: Expr | None) -> pa.RecordBatch:
    """Rows where the predicate is TRUE (NULL drops the row, as SQL's WHERE)."""
    if predicate is None or batch.num_rows == 0:
        return batch
    mask = evaluate(predicate, batch)
    return batch.filter(mask)


def scan_detail(node: lp.Scan) -> str:
    """What ``explain`` says of a scan: the file, and what the optimizer pushed into it (the
    rows it keeps, ``where ...``, and the columns it reads), so a filter or a projection that
    disappeared from the tree is still shown where it runs."""
    parts = [f"{node.format} {node.path}"]
    if node.predicate is not None:
        parts.append(f"where {to_sql(node.predicate)}")
    if node.columns is not None:
        parts.append(f"columns {', '.join(node.columns)}")
    return ", ".join(parts)


class ScanOp(PhysicalOp):
    """Stream one file in bounded batches; ``InputFileError`` names the file (and line)."""

    name = "scan"

    def __init__(self, ctx: ExecContext, node: lp.Scan, schema: pa.Schema) -> None:
        super().__init__(ctx, [], schema)
        self.node = node
        self.detail = scan_detail(node)
        self._rg_guard: Guard | None = None

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        node = self.node
        path = Path(node.path)
        if not path.is_file():
            raise InputFileError(f"input file {node.path} does not exist or is not a file")
        full = arrow_scan_schema(node)
        # Columns the predicate needs are read too, then dropped after filtering.
        wanted = list(self.schema.names)
        if node.predicate is not None:
            from platform_core.expr import Column, walk

            for sub in walk(node.predicate):
                if isinstance(sub, Column) and sub.name not in wanted:
                    wanted.append(sub.name)
        block = max(self.ctx.batch_bytes, 1024)
        guard = self.ctx.budget.acquire(2 * block, self.label, "for its read buffers ")
        try:
            for batch in rechunk(self._read(path, full, wanted, block), self.ctx.batch_bytes):
                self.ctx.report(f"scan {path.name}", batch.num_rows)
                batch = apply_predicate(batch, node.predicate)
                if batch.num_rows:
                    yield batch.select(self.schema.names)
        finally:
            guard.release()
            if self._rg_guard is not None:
                self._rg_guard.release()
                self._rg_guard = None

    def _read(
        self, path: Path, full: pa.Schema, wanted: list[str], block: int
    ) -> Iterator[pa.RecordBatch]:
        node = self.node
        try:
            if node.format == "csv":
                yield from self._read_csv(path, full, wanted, _text_block(block))
            elif node.format == "jsonl":
                reader: Any = pjson.open_json(
                    pa.PythonFile(open(path, "rb"), mode="r"),  # noqa: SIM115 - closed with it
                    read_options=pjson.ReadOptions(use_threads=False, block_size=block),
                    parse_options=pjson.ParseOptions(
                        explicit_schema=full, unexpected_field_behavior="ignore"
                    ),
                )
                for batch in reader:
                    yield batch.select(wanted)
            else:
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=block)
                self._reserve_row_group(pf, wanted, path.name)
                width = max(1, sum(_width(f.type) for f in full if f.name in wanted))
                rows = max(64, block // width)
                md, cols = pf.metadata, _column_indices(pf.metadata, wanted)
                target = pa.schema([full.field(c) for c in wanted])
                for i in _row_groups(node, md.num_row_groups):
                    # the row group's own bytes per row bound its batches too (wide strings)
                    group = md.row_group(i)
                    nbytes = sum(group.column(j).total_uncompressed_size for j in cols)
                    per = min(rows, max(1, block * group.num_rows // max(nbytes, 1)))
                    for batch in pf.iter_batches(
                        batch_size=per, row_groups=[i], columns=wanted, use_threads=False
                    ):  # dictionaries decoded (see resolve.decoded)
                        yield batch if batch.schema.equals(target) else batch.cast(target)
        except PlatformError:
            raise
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise InputFileError(f"cannot read {node.path}: {exc}") from exc

    def _reserve_row_group(self, pf: Any, wanted: list[str], name: str) -> None:
        """Arrow decodes a Parquet row group's column chunks whole: reserve the largest one
        (2.5 times its uncompressed bytes, measured) or say which cap it needs."""
        md = pf.metadata
        cols = _column_indices(md, wanted)
        biggest = max(
            (
                sum(md.row_group(i).column(j).total_uncompressed_size for j in cols)
                for i in _row_groups(self.node, md.num_row_groups)
            ),
            default=0,
        )
        need = int(2.5 * biggest)
        if self._rg_guard is None:
            self._rg_guard = self.ctx.budget.acquire(
                need,
                self.label,
                f"to decode a {format_bytes(biggest)} Parquet row group of {name} (or write "
                "that file with smaller row groups) ",
            )

    def _read_csv(
        self, path: Path, full: pa.Schema, wanted: list[str], block: int
    ) -> Iterator[pa.RecordBatch]:
        # The platform's one CSV reader: DuckDB's read_csv semantics (only empty fields are
        # NULL, quoted newlines across blocks), read single-threaded from a Python file object.
        # Blocks are small (see _text_block); a row longer than one restarts the read with
        # blocks 4x larger, skipping the rows already given, up to DuckDB's 2 MB line limit.
        done = 0
        while True:
            try:
                skip = done
                for batch in read_csv_batches(
                    path, full, delimiter=self.node.delimiter, columns=wanted, block_bytes=block
                ):
                    if skip >= batch.num_rows:
                        skip -= batch.num_rows
                        continue
                    batch, skip = batch.slice(skip), 0
                    done += batch.num_rows
                    yield batch
                return
            except CsvError as exc:
                if exc.details.get("read_block") and block < _MAX_CSV_BLOCK:
                    block = min(4 * block, _MAX_CSV_BLOCK)
                    continue
                raise InputFileError(f"{self.node.path}: {exc.message}") from exc


# Arrow's streaming CSV reader keeps about 32 blocks read ahead, outside what the scan
# reserves: with 1 MiB blocks a scan alone grew RSS by 59 MiB while the pool held 2 MiB.
_CSV_READAHEAD_BLOCKS = 32


# The longest row a CSV scan reads (DuckDB's default max_line_size is 2,097,152 bytes).
_MAX_CSV_BLOCK = 4 * 1024 * 1024


def _text_block(batch_bytes: int) -> int:
    """The CSV read block for a scan allowed ``batch_bytes``: its read-ahead fits in that."""
    return max(64 * 1024, min(batch_bytes, 4 * batch_bytes // _CSV_READAHEAD_BLOCKS))


def _row_groups(node: lp.Scan, count: int) -> range:
    """The row groups ``node`` reads of a file that has ``count``; ``InputFileError`` when
    its ``row_groups`` name some the file does not have (the file changed since the plan)."""
    if node.row_groups is None:
        return range(count)
    start, stop = node.row_groups
    if stop > count:
        raise InputFileError(
            f"{node.path} has {count} row groups; the scan asks for row groups {start} to "
            f"{stop - 1} (was the file rewritten after the plan was made?)"
        )
    return range(start, stop)


def _column_indices(md: Any, wanted: list[str]) -> list[int]:
    """The Parquet leaf columns of the ``wanted`` top-level columns."""
    names = [md.schema.column(j).path.split(".")[0] for j in range(md.num_columns)]
    return [j for j, n in enumerate(names) if n in wanted]


def _width(t: pa.DataType) -> int:
    try:
        return max(1, int(t.bit_width) // 8)
    except ValueError:
        return 24


class InputOp(PhysicalOp):
    """Batches given by the caller (the Arrow-in API), re-sliced to the run's batch size."""

    name = "input"

    def __init__(
        self, ctx: ExecContext, node: lp.Input, schema: pa.Schema, data: list[pa.RecordBatch]
    ) -> None:
        super().__init__(ctx, [], schema)
        self.data = data
        self.detail = node.name

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        yield from rechunk(iter(self.data), self.ctx.batch_bytes)
