"""Group-bys exchanged by rereading: each task reads the whole input and keeps one hash
partition of the groups.

A group-by whose partial aggregate cannot reduce its rows (about one group per row, q10 of
db-benchmark) or whose states are the rows themselves (median and quantiles, q6) costs its
tasks, through a written exchange, a write and a read of every row in partition files and a
second round of tasks. On one machine with few workers, reading the input again is cheaper:
``P`` tasks (one per worker) each run the *whole* aggregate over every part of the source,
keeping only the rows whose keys hash to their partition (the exchange's expression,
:func:`elytra.partitions.hash_partition_sql`, applied on top of the chain). Their groups are
disjoint, so their results are the final rows and the merge only concatenates. Measured on
G1 (1e7 rows, one DuckDB thread a task): q6's median and sd by two keys cost 363 ms of CPU a
task for half the groups against 1.4 s for the written exchange's two rounds, and q10's
aggregate 1.7 s a task for half the groups, against 6.9 s. The price is ``P`` reads of the
columns the aggregate uses, so the planner takes this path only for up to
``ELYTRA_REREAD_WORKERS`` workers (``stages.reread_parts``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from emsqrt import EmsqrtError, EngineConfig, run
from emsqrt import plan as lp
from emsqrt.planning import (
    Fragment,
    SchemaResolver,
    StreamBroken,
    columns_of,
    kernel_fragment,
    run_fragment,
)
from platform_core import Schema

from .partitions import hash_partition_sql, partition_ids

__all__ = ["KeyPartition", "run_partition"]

_ROWS = "__elytra_rows"
"""The name the aggregate reads the filtered chain by, in its own statement's text."""


@dataclass(frozen=True)
class KeyPartition:
    """Keep the rows whose ``keys`` (hashed as ``types``, an Arrow schema as hex) fall in
    partition ``part`` of ``parts``."""

    keys: tuple[str, ...]
    types: str
    parts: int
    part: int

    @classmethod
    def make(
        cls, keys: tuple[str, ...], types: list[pa.DataType], parts: int, part: int
    ) -> KeyPartition:
        schema = pa.schema([pa.field(f"k{i}", t) for i, t in enumerate(types)])
        return cls(tuple(keys), schema.serialize().to_pybytes().hex(), parts, part)

    def sql(self) -> str:
        schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(self.types)))
        return hash_partition_sql(self.keys, [f.type for f in schema], self.parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> KeyPartition:
        data = json.loads(text)
        data["keys"] = tuple(data["keys"])
        return cls(**data)


def _used(node: lp.Aggregate) -> lp.Node:
    """The aggregate's input projected to the columns it reads (its keys and arguments), so
    the chain compiled alone reads no other column of the files."""
    used = list(node.group_by)
    for spec in node.aggregates:
        used += sorted(columns_of(spec.agg))
    names = list(dict.fromkeys(used))
    if not names:
        return node.input
    return lp.Project(node.input, tuple((n, n) for n in names))


def _fragment(node: lp.Aggregate, where: KeyPartition, cap: int) -> Fragment | None:
    """The aggregate over its partition of the chain's rows as one DuckDB statement: the
    chain's statement, filtered by the partition expression, in place of the aggregate's
    input. None when the kernel cannot run either part."""
    chain = _used(node)
    rows = kernel_fragment(chain, cap)
    if rows is None:
        return None
    schema = SchemaResolver().schema(chain)
    inputs = {_ROWS: [pa.RecordBatch.from_pylist([], schema=schema)]}
    on_top = kernel_fragment(
        replace(node, input=lp.Input(_ROWS, Schema.from_arrow(schema))), cap, inputs
    )
    if on_top is None or len(on_top.tables) != 1:
        return None
    (alias,) = on_top.tables
    leaf = f'SELECT * FROM "{alias}"'
    if on_top.sql.count(leaf) != 1:
        return None
    kept = f"SELECT * FROM ({rows.sql}) WHERE {where.sql()} = {int(where.part)}"
    sql = on_top.sql.replace(leaf, kept)
    return Fragment(sql, on_top.schema, dict(rows.tables), rows.files, on_top.ordered)


def run_partition(
    plan: lp.Node,
    where: KeyPartition,
    cap: int,
    spill_dir: str,
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
) -> tuple[pa.Table | None, int, int]:
    """Run ``plan`` (a whole ``Aggregate`` over the chain) for partition ``where`` of its
    keys: one DuckDB statement, or, where the kernel cannot, emsqrt's operators over the
    partition's rows written to a file first (so the cap holds). Returns the table (None
    when streamed to ``on_batch``), the rows out and the bytes spilled."""
    if not isinstance(plan, lp.Aggregate) or plan.mode != "full":
        raise TypeError("a reread task's plan is a whole aggregate")
    fragment = _fragment(plan, where, cap)
    if fragment is not None:
        try:
            done = run_fragment(fragment, cap, spill_dir, on_batch=on_batch)
        except StreamBroken as broken:  # rows went on: the operators cannot answer instead
            raise EmsqrtError(
                f"the partition's aggregate failed after {broken.rows} rows of its result "
                f"were sent on ({broken.cause} in DuckDB)"
            ) from None
        if done is not None:
            rows = done.rows if done.table is None else done.table.num_rows
            return done.table, rows, done.spilled_bytes
    return _operators(plan, where, cap, spill_dir, on_batch)


def _operators(
    plan: lp.Aggregate,
    where: KeyPartition,
    cap: int,
    spill_dir: str,
    on_batch: Callable[[pa.RecordBatch], None] | None,
) -> tuple[pa.Table | None, int, int]:
    """The operators' way: the chain's rows of this partition streamed into a Parquet file
    in the task's spill directory, then the aggregate over that file under the cap."""
    chain = _used(plan)
    config = EngineConfig(mem_cap_bytes=cap, spill_dir=spill_dir, kernel="off")
    folder = Path(spill_dir) / f"reread-{time.monotonic_ns()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rows.parquet"
    schema = SchemaResolver().schema(chain)
    writer = pq.ParquetWriter(path, schema, compression="none")
    sql = where.sql()
    try:
        try:

            def keep(batch: pa.RecordBatch) -> None:
                if batch.num_rows:
                    ids = partition_ids(pa.Table.from_batches([batch]), sql)
                    writer.write_batch(batch.filter(pa.array(ids == where.part)))

            run(chain, config, on_batch=keep)
        finally:
            writer.close()
        scan = lp.Scan(str(path), "parquet", Schema.from_arrow(schema))
        result = run(replace(plan, input=scan), config, on_batch=on_batch)
        spilled = int(result.manifest.spill.get("bytes_written", 0)) + path.stat().st_size
        table = result.table
        rows = table.num_rows if table is not None else int(result.manifest.rows_out)
        return table, rows, spilled
    finally:
        shutil.rmtree(folder, ignore_errors=True)
