"""Hash-partitioned exchange: rows to ``parts`` files by key hash, one task per partition.

The rows of a join's two sides come back from their tasks to the driver, which writes each
row to partition ``hash(keys) % parts`` of its side (Parquet files in the job's directory, not
memory). Keys are hashed as the join compares them (``platform_core.hash_columns`` over keys
cast to the type both sides share, floats canonical: -0.0 as 0.0, one NaN), so equal keys of
the two sides meet in the same partition; then one task per partition joins its two files.
Every join type is exact this way: a row lands in exactly one partition, NULL keys included.

Aggregates with many groups use the same exchange with one side: the partial states of the
tasks go to partitions by group key, and one task per partition runs the final aggregate
(its groups are disjoint from every other partition's), so the merge does not run alone in
the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emsqrt import plan as lp
from emsqrt.planning import canonical_key, join_key_type, plan_to_json
from platform_core import Schema, hash_columns

__all__ = [
    "ExchangeWriter",
    "aggregate_task_plan",
    "join_key_types",
    "join_parts",
    "join_task_plan",
    "partition_ids",
]


def partition_ids(
    table: pa.Table, keys: tuple[str, ...], types: list[pa.DataType], parts: int
) -> np.ndarray:
    """The partition of each row of ``table`` (``keys`` compared as ``types``)."""
    canon = pa.table(
        {
            f"k{i}": canonical_key(pc.cast(table.column(k), t))
            for i, (k, t) in enumerate(zip(keys, types, strict=True))
        }
    )
    hashes = hash_columns(canon, canon.column_names).to_numpy(zero_copy_only=False)
    return np.asarray(hashes % np.uint64(parts), dtype=np.int64)


def join_key_types(join: lp.Join, left: pa.Schema, right: pa.Schema) -> list[pa.DataType]:
    """The types a join compares (and so hashes) its keys in."""
    return [
        join_key_type(left.field(lk).type, right.field(rk).type)
        for lk, rk in zip(join.left_keys, join.right_keys, strict=True)
    ]


@dataclass
class ExchangeWriter:
    """Writes the rows of one or more sides into ``parts`` Parquet files each, by the hash of
    each side's ``keys`` (compared as ``types``) under ``directory``."""

    keys: tuple[tuple[str, ...], ...]
    schemas: tuple[pa.Schema, ...]
    types: list[pa.DataType]
    directory: Path
    parts: int
    rows: list[list[int]] = field(init=False)
    bytes: list[list[int]] = field(init=False)
    _writers: dict[tuple[int, int], pq.ParquetWriter] = field(init=False, default_factory=dict)
    _given: dict[tuple[int, int], list[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = [[0] * self.parts for _ in self.schemas]
        self.bytes = [[0] * self.parts for _ in self.schemas]

    def path(self, side: int, part: int) -> Path:
        return self.directory / f"{side}-{part}.parquet"

    def files(self, side: int, part: int) -> list[str]:
        """Every file of partition ``part`` of ``side``: the driver's own (if it wrote or
        made one) and those tasks wrote themselves (:meth:`given`)."""
        own = (
            [str(self.path(side, part))]
            if (side, part) in self._writers or (self.path(side, part).exists())
            else []
        )
        return own + self._given.get((side, part), [])

    def given(self, side: int, done: dict[str, object]) -> None:
        """Files a task partitioned itself (``stats["exchange"]`` of its answer)."""
        rows, sizes = done["rows"], done["bytes"]
        assert isinstance(rows, list)
        assert isinstance(sizes, list)
        for part in range(self.parts):
            if rows[part]:
                name = str(Path(str(done["dir"])) / f"0-{part}.parquet")
                self._given.setdefault((side, part), []).append(name)
                self.rows[side][part] += int(rows[part])
                self.bytes[side][part] += int(sizes[part])

    def add(self, side: int, table: pa.Table) -> None:
        """Partition ``table`` (rows of ``side``) to that side's files."""
        if not table.num_rows:
            return
        schema = self.schemas[side]
        table = table.select(schema.names).cast(schema)
        ids = partition_ids(table, self.keys[side], self.types, self.parts)
        order = np.argsort(ids, kind="stable")
        counts = np.bincount(ids, minlength=self.parts)
        ordered = table.take(pa.array(order))
        start = 0
        for part, n in enumerate(counts.tolist()):
            if n:
                piece = ordered.slice(start, n)
                self._writer(side, part).write_table(piece)
                self.rows[side][part] += n
                self.bytes[side][part] += piece.nbytes
            start += n

    def _writer(self, side: int, part: int) -> pq.ParquetWriter:
        key = (side, part)
        if key not in self._writers:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._writers[key] = pq.ParquetWriter(
                self.path(side, part), self.schemas[side], compression="none"
            )
        return self._writers[key]

    def ensure(self, side: int, part: int) -> None:
        """An empty file with the side's columns where no row of it went to ``part``."""
        if not self.rows[side][part] and (side, part) not in self._writers:
            self.directory.mkdir(parents=True, exist_ok=True)
            pq.write_table(self.schemas[side].empty_table(), self.path(side, part))

    def close(self) -> None:
        """Close the files (the job's directory, and they with it, goes when the job ends)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def join_parts(writer: ExchangeWriter, how: str) -> list[int]:
    """The partitions whose join can output rows (an inner join with an empty side cannot, a
    left join without left rows cannot, ...), each side's file made to exist."""
    writer.close()
    live = []
    for part in range(writer.parts):
        left, right = writer.rows[0][part] > 0, writer.rows[1][part] > 0
        needed = {
            "inner": left and right,
            "semi": left and right,
            "left": left,
            "anti": left,
            "right": right,
            "full": left or right,
        }[how]
        if needed:
            writer.ensure(0, part)
            writer.ensure(1, part)
            live.append(part)
    return live


def _scan(writer: ExchangeWriter, side: int, part: int) -> lp.Node:
    schema = Schema.from_arrow(writer.schemas[side])
    scans = [lp.Scan(f, "parquet", schema) for f in writer.files(side, part)]
    return scans[0] if len(scans) == 1 else lp.Union(tuple(scans))


def join_task_plan(writer: ExchangeWriter, join: lp.Join, part: int) -> str:
    """The join of partition ``part``'s two files, as emsqrt plan JSON."""
    left, right = _scan(writer, 0, part), _scan(writer, 1, part)
    return plan_to_json(replace(join, left=left, right=right))


def aggregate_task_plan(writer: ExchangeWriter, final: lp.Aggregate, part: int) -> str:
    """The final aggregate of partition ``part``'s partial states, as emsqrt plan JSON."""
    return plan_to_json(replace(final, input=_scan(writer, 0, part)))
