"""The physical operator protocol: ``open()``, then ``next_batch()`` until it returns None,
then ``close()`` (always, also after an error).

Example::

    op = plan_physical(node, ctx)
    op.open()
    try:
        while (batch := op.next_batch()) is not None:
            consume(batch)
    finally:
        op.close()

Subclasses implement ``_produce()``, a generator of record batches; the base class counts
rows and bytes out, and holds a reservation for the batch it last returned until the next
call, so batches in flight are inside the budget too. A loop that runs long without pulling
or emitting a batch (a flush, a merge, a probe) calls ``self.ctx.check_cancel()`` per batch
it handles, so a cancelled run stops within a batch (spill reads and writes check too).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

import pyarrow as pa

from ..budget import Guard, MemoryBudget
from ..context import ExecContext
from ..errors import CapTooSmallError

__all__ = ["OpStats", "PhysicalOp"]


@dataclass
class OpStats:
    """What the manifest and ``explain()`` report per operator."""

    rows_out: int = 0
    bytes_out: int = 0
    spilled_bytes: int = 0
    spill_files: int = 0
    merge_passes: int = 0
    runs: int = 0
    partitions: int = 0
    repartition_depth: int = 0
    peak_reserved: int = 0
    seconds: float = 0.0
    skew_blocks: int = 0


class PhysicalOp:
    """Base class of physical operators (see the module docstring for the protocol)."""

    name = "op"

    def __init__(self, ctx: ExecContext, children: list[PhysicalOp], schema: pa.Schema) -> None:
        self.ctx = ctx
        self.children = children
        self.schema = schema
        self.stats = OpStats()
        self.estimate_rows: int | None = None
        self.estimate_bytes: int | None = None
        self.detail = ""
        self._gen: Generator[pa.RecordBatch, None, None] | None = None
        self._out_guard: Guard | None = None
        self.mem: MemoryBudget = ctx.budget
        """What the operator reserves from: its own share of the cap if it accumulates."""

    @property
    def label(self) -> str:
        return f"{self.name}#{id(self) % 10000:04d}"

    def open(self) -> None:
        for child in self.children:
            child.open()
        self._gen = self._produce()

    def next_batch(self) -> pa.RecordBatch | None:
        self.ctx.check_cancel()  # per batch pulled, so a scan feeding an accumulator stops too
        if self._out_guard is not None:
            self._out_guard.release()
            self._out_guard = None
        assert self._gen is not None, "open() first"
        while True:
            batch = next(self._gen, None)
            if batch is None:
                return None
            if batch.num_rows:
                break
        if batch.schema != self.schema:
            batch = _conform(batch, self.schema)
        guard = self.ctx.budget.try_acquire(batch.nbytes, self.label)
        if guard is None:
            raise CapTooSmallError(
                f"{self.name}: a {batch.nbytes}-byte batch in flight does not fit in the "
                f"{self.ctx.budget.cap_bytes}-byte cap ({self.ctx.budget.reserved} reserved); "
                f"the run needed more than {self.ctx.budget.reserved + batch.nbytes} bytes at "
                "this point; raise the cap above that (the reservations held then may grow)",
                cap_bytes=self.ctx.budget.cap_bytes,
            )
        self._out_guard = guard
        self.stats.rows_out += batch.num_rows
        self.stats.bytes_out += batch.nbytes
        return batch

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The remaining output as an iterator (for operators consuming a child)."""
        while (batch := self.next_batch()) is not None:
            yield batch

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        if self._out_guard is not None:
            self._out_guard.release()
            self._out_guard = None
        for child in self.children:
            child.close()

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        raise NotImplementedError

    def note_peak(self, nbytes: int) -> None:
        self.stats.peak_reserved = max(self.stats.peak_reserved, nbytes)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to the planned schema (same names, maybe wider or nullable types)."""
    if batch.schema.names != schema.names:
        batch = batch.select(schema.names)
    if batch.schema.equals(schema, check_metadata=False):
        return batch
    return batch.cast(schema)
