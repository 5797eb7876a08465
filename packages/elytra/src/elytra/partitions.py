"""Writing rows into ``parts`` partition files by a key expression (the exchanges' writer).

Every writer of one exchange places a row by the same DuckDB expression over its columns,
rendered once by the planner: :func:`hash_partition_sql` for a hash exchange (a join's sides,
a group-by's states), or any other expression whose value is the partition (a range
partitioning by splitters, ``CASE WHEN k < s1 THEN 0 ... END``). Two writers use it:

- :func:`write_partitions`: a task's whole kernel statement (emsqrt's one DuckDB statement for
  its fragment) runs with the partition computed in it (``SELECT *, <expr> AS __elytra_part
  FROM (...)``); its batches stream out under the task's cap and each batch's rows are
  appended to their partition's file (pyarrow's writer), never held whole and never hashed
  in Python. (``writer="copy"`` has DuckDB write the files too, ``COPY ... PARTITION_BY``:
  measured slower, see :func:`write_partitions`.)
- :func:`partition_ids` and :func:`split_table`: rows already held as Arrow (the operators'
  result where the kernel could not run, the rows the driver holds) get their partitions from
  the same expression evaluated by DuckDB over them, then are taken apart and written.

Keys are hashed as the join or group-by compares them: cast to the type both sides share
(a join's key type); DuckDB's ``hash`` already takes -0.0 as 0.0 and every NaN as one, and
NULL keys all hash alike, so equal keys meet in one partition and every row lands in exactly
one. The files are uncompressed Parquet (the cheapest encoding measured: snappy, lz4 and zstd
only cost time for files written once and read once on the same disk).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emsqrt import CapTooSmallError
from emsqrt import plan as lp
from emsqrt.planning import Fragment, StreamBroken, kernel_fragment, run_fragment, run_statement
from platform_core import types as ftypes
from platform_core.expr.render import duckdb_type, quote_identifier, quote_string

from .errors import PipelineError

__all__ = [
    "PART_COLUMN",
    "Written",
    "hash_partition_sql",
    "partition_ids",
    "split_table",
    "write_partitions",
]

PART_COLUMN = "__elytra_part"
"""The column the partition is computed into (never written into the files)."""


def sql_type(t: pa.DataType) -> str:
    """The DuckDB type a column of Arrow type ``t`` is held in."""
    try:
        return duckdb_type(ftypes.from_arrow(t))
    except Exception as exc:  # outside the platform's types: the planner never makes one
        raise PipelineError(f"a column of type {t} cannot be partitioned") from exc


def hash_partition_sql(keys: Sequence[str], types: Sequence[pa.DataType], parts: int) -> str:
    """The partition (0 to ``parts`` - 1) of a row by the hash of its ``keys``, each cast to
    the type it is compared in (``types``): the one hash every writer of an exchange uses."""
    if parts < 1:
        raise PipelineError(f"an exchange has at least one partition, not {parts}")
    cols = ", ".join(
        f"CAST({quote_identifier(k)} AS {sql_type(t)})" for k, t in zip(keys, types, strict=True)
    )
    return f"(hash({cols}) % {int(parts)})"


@dataclass
class Written:
    """What one writer wrote under ``directory``: each partition's files, rows and bytes."""

    directory: str
    files: list[list[str]]
    rows: list[int]
    bytes: list[int]

    @classmethod
    def empty(cls, directory: str | Path, parts: int) -> Written:
        return cls(str(directory), [[] for _ in range(parts)], [0] * parts, [0] * parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Written:
        return cls(str(data["directory"]), data["files"], data["rows"], data["bytes"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


# Column types DuckDB writes to Parquet and reads back as the same values (a nanosecond
# timestamp would lose digits in DuckDB's microsecond TIMESTAMP; anything else goes through
# pyarrow's writer, exactly).
def _copy_exact(t: pa.DataType) -> bool:
    types = pa.types
    if types.is_timestamp(t):
        return bool(t.unit != "ns")
    return bool(
        types.is_integer(t)
        or types.is_floating(t)
        or types.is_boolean(t)
        or types.is_string(t)
        or types.is_large_string(t)
        or types.is_binary(t)
        or types.is_large_binary(t)
        or types.is_date32(t)
        or types.is_decimal128(t)
    )


def write_partitions(
    plan: lp.Node,
    part_sql: str,
    parts: int,
    directory: str | Path,
    cap: int,
    spill_dir: str | Path,
    threads: int = 1,
    writer: str = "arrow",
) -> Written | None:
    """Run ``plan`` as one DuckDB statement whose rows go into ``parts`` Parquet files under
    ``directory`` by ``part_sql`` (an expression over the plan's output columns), under
    ``cap``; ``None`` when the kernel cannot run it (the caller runs the plan with emsqrt's
    operators and splits the rows with :func:`split_table`). ``directory`` is the writer's
    own (an attempt's): it is replaced, and removed again if the statement fails.

    ``writer``: ``"arrow"`` (DuckDB computes each row's partition in the statement and
    streams its batches out; pyarrow's writer appends each batch's rows to their partition's
    file) or ``"copy"`` (``COPY ... PARTITION_BY``: DuckDB writes the files too). Measured on
    db-benchmark q10's partial states (8 columns, 3 of them strings, one thread), DuckDB's
    Parquet writer took 2-3 times as long as the arrow path's conversion and pyarrow's writer
    together, so ``"arrow"`` is the default; both place every row alike."""
    fragment = kernel_fragment(plan, cap)
    if fragment is None:
        return None
    where = Path(directory)
    shutil.rmtree(where, ignore_errors=True)
    where.parent.mkdir(parents=True, exist_ok=True)
    if writer == "copy":
        if not all(_copy_exact(f.type) for f in _schema(fragment)):
            return None
        done = _copy(fragment, part_sql, parts, where, cap, spill_dir, threads)
    elif writer == "arrow":
        done = _stream(fragment, part_sql, parts, where, cap, spill_dir, threads)
    else:
        raise PipelineError(f"writer is 'arrow' or 'copy', not {writer!r}")
    if done is None:
        shutil.rmtree(where, ignore_errors=True)
    return done


def _stream(
    fragment: Fragment,
    part_sql: str,
    parts: int,
    where: Path,
    cap: int,
    spill_dir: str | Path,
    threads: int,
) -> Written | None:
    schema = _schema(fragment).append(pa.field(PART_COLUMN, pa.int64()))
    wrapped = Fragment(
        f"SELECT *, CAST({part_sql} AS BIGINT) AS {PART_COLUMN} FROM ({fragment.sql})",
        schema,
        fragment.tables,
        fragment.files,
        fragment.ordered,  # a partition file's rows in any order but the fragment's own
    )
    splitter = TableSplitter(where, "0", fragment.schema, parts, buffer_bytes=cap // 8)

    def put(batch: pa.RecordBatch) -> None:
        table = pa.Table.from_batches([batch])
        ids = table.column(PART_COLUMN).to_numpy()
        splitter.add(table.drop_columns([PART_COLUMN]), ids)

    try:
        done = run_fragment(wrapped, cap, spill_dir, threads, on_batch=put)
    except (StreamBroken, CapTooSmallError):
        done = None  # rows went only to this attempt's own files: the operators redo them
    written = splitter.close()
    return None if done is None else written


def _schema(fragment: Fragment) -> pa.Schema:
    """A plan's fragment's schema (only a caller's own statement has none)."""
    assert fragment.schema is not None
    return fragment.schema


def _copy(
    fragment: Fragment,
    part_sql: str,
    parts: int,
    where: Path,
    cap: int,
    spill_dir: str | Path,
    threads: int,
) -> Written | None:
    try:
        cols = ", ".join(
            f"CAST({quote_identifier(f.name)} AS {sql_type(f.type)}) AS {quote_identifier(f.name)}"
            for f in _schema(fragment)
        )
    except PipelineError:
        return None

    def wrap(sql: str) -> str:
        return (
            f"COPY (SELECT {cols}, {part_sql} AS {PART_COLUMN} FROM ({sql})) "
            f"TO {quote_string(str(where))} (FORMAT parquet, PARTITION_BY ({PART_COLUMN}), "
            "COMPRESSION uncompressed, OVERWRITE, RETURN_STATS)"
        )

    stats = run_statement(fragment, cap, spill_dir, wrap, threads)
    if stats is None:
        return None
    out = Written.empty(where, parts)
    for row in stats:  # filename, count, file_size_bytes, footer_size, column stats, keys
        name, count, size, keys = row[0], int(row[1]), int(row[2]), row[5]
        part = int(keys[PART_COLUMN])
        if count:
            out.files[part].append(str(name))
            out.rows[part] += count
            out.bytes[part] += size
    return out


_THREAD = threading.local()


def _duckdb() -> Any:
    """This thread's DuckDB for partition expressions, opened once: a connect costs 5-150 ms
    (more under load), and an exchange partitions every batch it is given (the driver's
    exchange writer spent 13 s of a 30 s TPC-H q08 connecting, one connect per batch)."""
    con = getattr(_THREAD, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect(
            ":memory:",
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
        )
        con.execute("SET threads = 1; SET TimeZone = 'UTC'")
        _THREAD.con = con
    return con


def partition_ids(table: pa.Table, part_sql: str) -> np.ndarray:
    """Each row's partition by ``part_sql``, evaluated by DuckDB over ``table`` (only the
    columns the expression names are handed to it)."""
    con = _duckdb()
    con.register("__elytra_rows", table)
    try:
        ids = con.sql(f"SELECT CAST({part_sql} AS BIGINT) AS p FROM __elytra_rows")
        got = ids.to_arrow_table().column(0)
    except BaseException:
        _THREAD.con = None  # a failed or interrupted statement: the next call opens anew
        with contextlib.suppress(Exception):
            con.close()
        raise
    finally:
        with contextlib.suppress(Exception):
            con.unregister("__elytra_rows")  # the table is the caller's: not held here
    return np.asarray(got.to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass
class TableSplitter:
    """Writes tables, piece by piece, into ``parts`` files named ``<prefix>-<part>.parquet``
    under ``directory`` (pyarrow's writer, uncompressed), by partitions given per row. Each
    partition's pieces are held until they reach about ``buffer_bytes / parts`` (at least
    256 KiB, at most 8 MiB), so its file gets row groups of that size, not one per piece."""

    directory: Path
    prefix: str
    schema: pa.Schema
    parts: int
    buffer_bytes: int = 64 << 20
    written: Written = field(init=False)
    _writers: dict[int, pq.ParquetWriter] = field(init=False, default_factory=dict)
    _held: dict[int, list[pa.Table]] = field(init=False, default_factory=dict)
    _held_bytes: dict[int, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.written = Written.empty(self.directory, self.parts)
        self._flush_at = min(max(self.buffer_bytes // max(self.parts, 1), 256 << 10), 8 << 20)

    def path(self, part: int) -> Path:
        return self.directory / f"{self.prefix}-{part}.parquet"

    def add(self, table: pa.Table, ids: np.ndarray) -> None:
        if not table.num_rows:
            return
        order = np.argsort(ids, kind="stable")
        counts = np.bincount(ids, minlength=self.parts)
        ordered = table.take(pa.array(order))
        start = 0
        for part, n in enumerate(counts.tolist()):
            if n:
                piece = ordered.slice(start, n)
                self._held.setdefault(part, []).append(piece)
                self._held_bytes[part] = self._held_bytes.get(part, 0) + piece.nbytes
                self.written.rows[part] += n
                self.written.bytes[part] += piece.nbytes
                if self._held_bytes[part] >= self._flush_at:
                    self._flush(part)
            start += n

    def _flush(self, part: int) -> None:
        pieces = self._held.pop(part, [])
        self._held_bytes.pop(part, None)
        if not pieces:
            return
        if part not in self._writers:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._writers[part] = pq.ParquetWriter(
                self.path(part),
                self.schema,
                compression="none",
                use_dictionary=False,  # read once, whole: encoding would only cost time
                write_statistics=False,
            )
            self.written.files[part].append(str(self.path(part)))
        self._writers[part].write_table(pa.concat_tables(pieces).combine_chunks())

    def close(self) -> Written:
        for part in list(self._held):
            self._flush(part)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        return self.written


def split_table(
    table: pa.Table, part_sql: str, parts: int, directory: str | Path, prefix: str = "0"
) -> Written:
    """``table``'s rows into ``parts`` files under ``directory`` by ``part_sql`` (the rows a
    task or the driver holds as Arrow; the same expression as :func:`write_partitions`)."""
    splitter = TableSplitter(Path(directory), prefix, table.schema, parts)
    try:
        splitter.add(table, partition_ids(table, part_sql))
    finally:
        written = splitter.close()
    return written
