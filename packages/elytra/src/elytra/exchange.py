"""Hash-partitioned exchange: rows to ``parts`` files by key hash, one task per partition.

The tasks of a join's two sides write their own rows into partitions of their side by the
hash of their keys (``shuffle.py``: the kernel's statement writes the files, on this machine);
only where the tasks cannot (a backend whose workers do not share the driver's disk) do the
rows come back to the driver, which writes them to partitions itself. Both use one partition
expression (:func:`elytra.partitions.hash_partition_sql`: DuckDB's ``hash`` of the keys cast
to the type both sides compare them in; -0.0 and 0.0, every NaN, every NULL hash alike), so
equal keys of the two sides meet in the same partition; then one task per partition joins its
two sides' files. Every join type is exact this way: a row lands in exactly one partition,
NULL keys included.

Aggregates with many groups use the same exchange with one side: the partial states of the
tasks go to partitions by group key, and one task per partition runs the final aggregate
(its groups are disjoint from every other partition's), so the merge does not run alone in
the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from emsqrt import plan as lp
from emsqrt.planning import join_key_type, plan_to_json
from platform_core import Schema

from .partitions import TableSplitter, Written, hash_partition_sql, partition_ids
from .stages import replace_node

__all__ = [
    "ExchangeWriter",
    "aggregate_task_plan",
    "join_key_types",
    "join_leaf",
    "join_parts",
    "join_task_plan",
]


def join_key_types(join: lp.Join, left: pa.Schema, right: pa.Schema) -> list[pa.DataType]:
    """The types a join compares (and so hashes) its keys in."""
    return [
        join_key_type(left.field(lk).type, right.field(rk).type)
        for lk, rk in zip(join.left_keys, join.right_keys, strict=True)
    ]


@dataclass
class ExchangeWriter:
    """The partitions of one or more sides under ``directory``: the files the tasks wrote
    (:meth:`given`) and those the driver writes of rows it holds (:meth:`add`), each side's
    rows placed by the hash of its ``keys`` compared as ``types``."""

    keys: tuple[tuple[str, ...], ...]
    schemas: tuple[pa.Schema, ...]
    types: list[pa.DataType]
    directory: Path
    parts: int
    rows: list[list[int]] = field(init=False)
    bytes: list[list[int]] = field(init=False)
    driver_bytes: int = field(init=False, default=0)
    """Bytes of the rows the driver partitioned itself (:meth:`add`)."""
    task_bytes: int = field(init=False, default=0)
    """Bytes the tasks partitioned themselves (:meth:`given`)."""
    _own: dict[int, TableSplitter] = field(init=False, default_factory=dict)
    _files: dict[tuple[int, int], list[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = [[0] * self.parts for _ in self.schemas]
        self.bytes = [[0] * self.parts for _ in self.schemas]

    def part_sql(self, side: int) -> str:
        """The partition expression of ``side`` (the one its tasks write by)."""
        return hash_partition_sql(self.keys[side], self.types, self.parts)

    def path(self, side: int, part: int) -> Path:
        return self.directory / f"{side}-{part}.parquet"

    def files(self, side: int, part: int) -> list[str]:
        """Every file of partition ``part`` of ``side``: the tasks' and the driver's."""
        return list(self._files.get((side, part), []))

    def given(self, side: int, done: dict[str, object]) -> None:
        """Files a task partitioned itself (``stats["exchange"]`` of its answer)."""
        written = Written.from_dict(done)
        self.task_bytes += sum(int(b) for b in written.bytes)
        self._take(side, written)

    def _take(self, side: int, written: Written) -> None:
        for part in range(self.parts):
            if written.rows[part]:
                self._files.setdefault((side, part), []).extend(written.files[part])
                self.rows[side][part] += int(written.rows[part])
                self.bytes[side][part] += int(written.bytes[part])

    def add(self, side: int, table: pa.Table) -> None:
        """Partition ``table`` (rows of ``side`` the driver holds) to that side's files."""
        if not table.num_rows:
            return
        self.driver_bytes += table.nbytes
        schema = self.schemas[side]
        table = table.select(schema.names).cast(schema)
        if side not in self._own:
            self._own[side] = TableSplitter(self.directory, str(side), schema, self.parts)
        self._own[side].add(table, partition_ids(table, self.part_sql(side)))

    def ensure(self, side: int, part: int) -> None:
        """An empty file with the side's columns where no row of it went to ``part``."""
        if not self.rows[side][part] and not self._files.get((side, part)):
            self.directory.mkdir(parents=True, exist_ok=True)
            pq.write_table(self.schemas[side].empty_table(), self.path(side, part))
            self._files[(side, part)] = [str(self.path(side, part))]

    def close(self) -> None:
        """Close the driver's own files and count them in (the job's directory, and every
        file with it, goes when the job ends)."""
        own, self._own = self._own, {}
        for side, splitter in own.items():
            self._take(side, splitter.close())


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
    if not live:  # one task still runs the chain above (a global aggregate's empty state)
        writer.ensure(0, 0)
        writer.ensure(1, 0)
        live.append(0)
    return live


def _scan(writer: ExchangeWriter, side: int, part: int) -> lp.Node:
    schema = Schema.from_arrow(writer.schemas[side])
    scans = [lp.Scan(f, "parquet", schema) for f in writer.files(side, part)]
    return scans[0] if len(scans) == 1 else lp.Union(tuple(scans))


def join_leaf(writer: ExchangeWriter, join: lp.Join, part: int) -> lp.Join:
    """The join of partition ``part``'s two sides' files (the leaf of the chain above it)."""
    return replace(join, left=_scan(writer, 0, part), right=_scan(writer, 1, part))


def join_task_plan(writer: ExchangeWriter, join: lp.Join, part: int) -> str:
    """The join of partition ``part``'s two files, as emsqrt plan JSON."""
    return plan_to_json(join_leaf(writer, join, part))


def aggregate_task_plan(
    writer: ExchangeWriter,
    final: lp.Aggregate,
    part: int,
    raw: bool = False,
    above: lp.Node | None = None,
) -> str:
    """The final aggregate of partition ``part``'s partial states (``raw``: the whole
    aggregate of its rows), under ``above``'s filters and projections (``having.py``), as
    emsqrt plan JSON."""
    node: lp.Node
    if raw:
        node = replace(final, input=_scan(writer, 0, part), mode="full", state_of=None)
    else:
        node = replace(final, input=_scan(writer, 0, part))
    if above is not None:
        node = replace_node(above, final, node)
    return plan_to_json(node)
