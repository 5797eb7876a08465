"""Hash partitioning to spill files with ``platform_core.hash_columns``.

Level ``d`` of a recursive partitioning uses bits ``[d*b, (d+1)*b)`` of the row hash (``2**b``
partitions), so a partition split again at the next level spreads over fresh bits. Incoming
tables are buffered (reserved) up to ``flush_bytes``; a flush sorts the buffer by partition id
once (vectorised) and appends one segment per non-empty partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from platform_core import hash_columns

from ..budget import Guard, MemoryBudget
from ..context import ExecContext
from ..errors import CapTooSmallError
from ..spill import SpillFile
from .gather import release_memory

__all__ = ["Partitioner", "partition_ids", "sliced"]


def partition_ids(table: pa.Table, keys: list[str], level: int, bits: int) -> np.ndarray:
    """Partition id per row for ``level`` (0-based) with ``2**bits`` partitions."""
    h = hash_columns(table, keys).to_numpy(zero_copy_only=False)
    shift = np.uint64((level * bits) % 64)
    ids: np.ndarray = ((h >> shift) & np.uint64((1 << bits) - 1)).astype(np.int64)
    return ids


class Partitioner:
    """Splits tables by key hash into ``2**bits`` spill files."""

    def __init__(
        self,
        ctx: ExecContext,
        budget: MemoryBudget,
        label: str,
        keys: list[str],
        level: int,
        bits: int,
    ) -> None:
        self.ctx = ctx
        self.budget = budget
        self.keys = keys
        self.level = level
        self.bits = bits
        self.files: list[SpillFile] = [ctx.spill.create(f"{label}-p{i}") for i in range(1 << bits)]
        self.flush_bytes = max(ctx.batch_bytes * 2, min(budget.available // 4, 8 << 20))
        guard = budget.try_acquire(0, label)
        assert guard is not None
        self.guard: Guard = guard
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.spilled_bytes = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        piece = self.ctx.batch_bytes
        if table.nbytes > 2 * piece and table.num_rows > 1:
            rows = max(1, int(table.num_rows * piece / table.nbytes))
            for start in range(0, table.num_rows, rows):
                self._add(table.slice(start, rows))
            return
        self._add(table)

    def _add(self, table: pa.Table) -> None:
        self.ctx.check_cancel()
        if self.buffered + table.nbytes > self.flush_bytes and self.buffer:
            self.flush()
        if not self.guard.try_grow(3 * table.nbytes):
            self.flush()
            if not self.guard.try_grow(3 * table.nbytes):
                raise CapTooSmallError(
                    f"partitioning: cannot hold one {table.nbytes}-byte batch with "
                    f"{self.budget.available} bytes free; raise the cap to at least "
                    f"{self.ctx.smallest_cap(3 * table.nbytes + self.ctx.batch_bytes, self.budget)} bytes"
                )
        self.buffer.append(table)
        self.buffered += table.nbytes

    def flush(self) -> None:
        """Reorder each buffered chunk by partition id (one take per chunk: Arrow's take over a
        chunked table would concatenate whole columns first), then append each partition's
        slices of every chunk as one segment."""
        if not self.buffer:
            return
        nparts = len(self.files)
        chunks = []  # (chunk reordered by partition, start offset of each partition)
        for table in self.buffer:
            for batch in table.to_batches():
                self.ctx.check_cancel()
                if batch.num_rows == 0:
                    continue
                ids = partition_ids(pa.table(batch), self.keys, self.level, self.bits)
                order = np.argsort(ids, kind="stable")
                counts = np.bincount(ids, minlength=nparts)
                starts = np.concatenate([[0], np.cumsum(counts)])
                chunks.append((batch.take(pa.array(order)), starts))
        self.buffer = []
        for pid in range(nparts):
            self.ctx.check_cancel()
            pieces = [
                reordered.slice(int(starts[pid]), int(starts[pid + 1] - starts[pid]))
                for reordered, starts in chunks
                if starts[pid + 1] > starts[pid]
            ]
            if pieces:
                part = pa.Table.from_batches(pieces)
                self.files[pid].append(part)
                self.spilled_bytes += part.nbytes
        self.buffered = 0
        self.guard.resize(0)
        del chunks
        release_memory()

    def finish(self) -> list[SpillFile]:
        self.flush()
        self.guard.release()
        return [f for f in self.files if f.segments]


def sliced(tables: Iterable[pa.Table], target: int) -> Iterator[pa.Table]:
    """Tables cut to about ``target`` bytes (zero-copy slices)."""
    for t in tables:
        if t.nbytes <= target or t.num_rows <= 1:
            yield t
            continue
        rows = max(1, int(t.num_rows * target / t.nbytes))
        for start in range(0, t.num_rows, rows):
            yield t.slice(start, rows)


def concat_or_empty(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """One table of the parts (zero-copy), or an empty one of ``schema``."""
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)
