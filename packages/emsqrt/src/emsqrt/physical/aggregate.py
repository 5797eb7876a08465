"""Hash aggregation: in memory while it fits, else hash-partitioned to disk, recursively.

Without DISTINCT, every input batch is pre-aggregated into partial states (count, sum, min,
max; avg as sum and count) with Acero's ``group_by``, and the partials are merged whenever the
reservation is refused; only when the merged states themselves do not fit are they (and the
rest of the input) hash-partitioned to spill files by the group keys. With COUNT(DISTINCT) the
partial state is the input rows themselves. Each partition is then aggregated the same way,
one level deeper in the hash bits, so a partition still too big is split again.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_core.expr import Column, evaluate

from .. import plan as lp
from ..context import ExecContext
from ..errors import CapTooSmallError, SumOverflowError
from .base import PhysicalOp
from .floatkeys import canonical_key
from .partition import Partitioner, concat_or_empty, sliced

__all__ = ["AggregateOp"]

_P = "__emsqrt_a"
# Reserved per byte of held state: Acero's group_by over held partials (merging them) peaked
# at about 3.3 times their bytes on top of them (measured), so state is held at 1/5 of its share.
_STATE_FACTOR = 5
# Integer SUMs are summed as decimal128(38, 0) (DuckDB sums into a 128-bit HUGEINT) and the
# result is checked back into int64, the result type: out of range raises SumOverflowError.
_WIDE_SUM = pa.decimal128(38, 0)


@dataclass(frozen=True)
class _Part:
    """One partial-state column: Acero function on the input, function to merge partials."""

    column: str  # name in the partial table
    source: str | None  # input column (None for count_all)
    func: str
    merge: str


class AggregateOp(PhysicalOp):
    name = "aggregate"

    def __init__(
        self, ctx: ExecContext, node: lp.Aggregate, child: PhysicalOp, schema: pa.Schema
    ) -> None:
        super().__init__(ctx, [child], schema)
        self.node = node
        self.keys = list(node.group_by)
        self.distinct = any(s.agg.distinct for s in node.aggregates)
        self.bits = max(1, min(6, (ctx.max_partitions - 1).bit_length()))
        parts: list[_Part] = []
        for i, spec in enumerate(node.aggregates):
            src = None if spec.agg.arg is None else f"{_P}{i}"
            name = spec.agg.name
            if name == "count" and src is None:
                parts.append(_Part(f"{_P}{i}_n", None, "count_all", "sum"))
            elif name == "count":
                parts.append(_Part(f"{_P}{i}_n", src, "count", "sum"))
            elif name == "avg":
                parts.append(_Part(f"{_P}{i}_s", src, "sum", "sum"))
                parts.append(_Part(f"{_P}{i}_n", src, "count", "sum"))
            else:
                parts.append(_Part(f"{_P}{i}_{name}", src, name, name))
            if self._nan_max(spec, child.schema):
                parts.append(_Part(f"{_P}{i}_nan", f"{_P}{i}n", "any", "any"))
        self.parts = parts
        # Pre-aggregating a batch whose keys are nearly all distinct only costs a hash table:
        # after a few such batches, partial states are projected from the rows instead.
        self._unreduced = 0
        self._project = False
        self._partial_schema: pa.Schema | None = None
        # Room the held state leaves free (in the share and the whole cap) for batches in
        # flight upstream beyond the head-room, e.g. a scan's Parquet row-group reservation:
        # the aggregate merges or spills sooner instead of starving them.
        self._room = 2 * ctx.batch_bytes
        self.detail = f"by {', '.join(self.keys) or '()'}" + (
            " (distinct: raw rows)" if self.distinct else ""
        )

    # ------------------------------------------------------------------ states
    @staticmethod
    def _nan_max(spec: lp.AggSpec, schema: pa.Schema) -> bool:
        """MAX over floats: DuckDB orders NaN above every number, Arrow skips it."""
        arg = spec.agg.arg
        if spec.agg.name != "max" or arg is None:
            return False
        t = evaluate(arg, schema.empty_table()).type
        return bool(pa.types.is_floating(t))

    def _fix_nan(self, value: pa.ChunkedArray, nan_any: pa.ChunkedArray) -> pa.ChunkedArray:
        nan = pa.scalar(float("nan"), value.type)
        return pc.if_else(pc.fill_null(nan_any, False), nan, value)

    def _inputs(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        """Group keys (float keys canonical: one 0.0, one NaN) and each aggregate's argument,
        as ``__emsqrt_a<i>`` columns."""
        cols = {k: canonical_key(batch.column(k)) for k in self.keys}
        for i, spec in enumerate(self.node.aggregates):
            arg = spec.agg.arg
            if arg is None:
                continue
            value = batch.column(arg.name) if isinstance(arg, Column) else evaluate(arg, batch)
            if spec.agg.distinct:  # counted by equality, as a key is grouped
                value = canonical_key(value)
            if spec.agg.name == "avg" and pa.types.is_integer(value.type):
                # An exact wide sum divided at the end (DuckDB too); raw-row states (DISTINCT)
                # average with Acero's mean, in doubles (rounding integers beyond 2**53).
                if self.distinct:
                    value = pc.cast(value, pa.float64(), safe=False)
                else:
                    value = pc.cast(value, _WIDE_SUM)
            if spec.agg.name == "sum" and pa.types.is_integer(value.type):
                value = pc.cast(value, _WIDE_SUM)  # int64 sums wrap silently in Acero
            cols[f"{_P}{i}"] = value
            if spec.agg.name == "max" and pa.types.is_floating(value.type):
                cols[f"{_P}{i}n"] = pc.is_nan(value)
        if not cols:  # count(*) only, no keys: a placeholder column carries the row count
            cols[f"{_P}rows"] = pa.nulls(batch.num_rows, pa.int8())
        return pa.table(cols)

    def _group(self, table: pa.Table, aggs: list[tuple[str | list[str], str, str]]) -> pa.Table:
        """Acero ``group_by``; ``aggs`` are (source, function, output name)."""
        spec = [(src, func) for src, func, _ in aggs]
        out = table.group_by(self.keys, use_threads=False).aggregate(spec)
        names = list(self.keys) + [name for _, _, name in aggs]
        return out.rename_columns(names)

    def _partial(self, raw: pa.Table) -> pa.Table:
        if self.distinct:
            return raw
        if self._project and self._partial_schema is not None:
            return self._projected(raw, self._partial_schema)
        out = self._group(
            raw, [([] if p.source is None else p.source, p.func, p.column) for p in self.parts]
        )
        if raw.num_rows >= 64 and out.num_rows > 0.8 * raw.num_rows:
            self._unreduced += 1
            self._project = self._unreduced >= 3
        return out

    def _projected(self, raw: pa.Table, schema: pa.Schema) -> pa.Table:
        """One partial state per row, without hashing: count 1 (or 0 for NULL), the value for
        sum, min and max, the NaN flag for max."""
        cols = [raw.column(k) for k in self.keys]
        for p in self.parts:
            if p.func == "count_all":
                value = pa.array(np.ones(raw.num_rows, dtype=np.int64))
            elif p.func == "count":
                value = pc.cast(pc.is_valid(raw.column(p.source)), pa.int64())
            else:
                value = raw.column(p.source)
            cols.append(value)
        table = pa.Table.from_arrays(cols, names=[*self.keys, *(p.column for p in self.parts)])
        return table.cast(schema)

    def _merge(self, partial: pa.Table) -> pa.Table:
        if self.distinct:
            return partial
        return self._group(partial, [(p.column, p.merge, p.column) for p in self.parts])

    def _finalize(self, state: pa.Table) -> pa.Table:
        if self.distinct:
            aggs: list[tuple[str | list[str], str, str]] = []
            for i, spec in enumerate(self.node.aggregates):
                src: str | list[str] = [] if spec.agg.arg is None else f"{_P}{i}"
                func = {"count": "count_all" if spec.agg.arg is None else "count"}.get(
                    spec.agg.name, spec.agg.name
                )
                if spec.agg.distinct:
                    func = "count_distinct"
                aggs.append((src, "mean" if func == "avg" else func, spec.name))
            fixes = []
            for i, spec in enumerate(self.node.aggregates):
                if f"{_P}{i}n" in state.column_names:
                    aggs.append((f"{_P}{i}n", "any", f"{_P}{i}_nan"))
                    fixes.append((spec.name, f"{_P}{i}_nan"))
            out = self._narrow_sums(self._group(state, aggs))
            for name, flag in fixes:
                idx = out.schema.get_field_index(name)
                out = out.set_column(idx, name, self._fix_nan(out.column(name), out.column(flag)))
            return out.select([*self.keys, *[s.name for s in self.node.aggregates]])
        state = self._merge(state)
        cols = {k: state.column(k) for k in self.keys}
        for i, spec in enumerate(self.node.aggregates):
            name = spec.agg.name
            if name == "count":
                cols[spec.name] = pc.fill_null(state.column(f"{_P}{i}_n"), 0)
            elif name == "avg":
                s, n = state.column(f"{_P}{i}_s"), state.column(f"{_P}{i}_n")
                n = pc.if_else(pc.equal(n, 0), pa.scalar(None, n.type), n)
                cols[spec.name] = pc.divide(pc.cast(s, pa.float64()), pc.cast(n, pa.float64()))
            else:
                cols[spec.name] = state.column(f"{_P}{i}_{name}")
                if f"{_P}{i}_nan" in state.column_names:
                    cols[spec.name] = self._fix_nan(cols[spec.name], state.column(f"{_P}{i}_nan"))
        return self._narrow_sums(pa.table(cols))

    def _narrow_sums(self, out: pa.Table) -> pa.Table:
        """Integer SUMs from their wide state to int64, refusing values out of its range."""
        for spec in self.node.aggregates:
            col = out.column(spec.name)
            if spec.agg.name != "sum" or col.type != _WIDE_SUM:
                continue
            try:
                narrow = pc.cast(col, self.schema.field(spec.name).type)
            except pa.ArrowInvalid as exc:
                raise SumOverflowError(
                    f"aggregate {spec.name}: the integer sum of a group is outside the int64 "
                    "range; sum the values as DOUBLE (CAST(... AS DOUBLE)) to get an "
                    "approximate result"
                ) from exc
            out = out.set_column(out.schema.get_field_index(spec.name), spec.name, narrow)
        return out

    # ------------------------------------------------------------------ driver
    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        def partials() -> Iterator[pa.Table]:
            for batch in self.children[0].batches():
                yield self._partial(self._inputs(batch))

        empty = self._partial(self._inputs(self.children[0].schema.empty_table()))
        self._partial_schema = empty.schema
        for table in self._run(partials(), 0, empty.schema):
            yield from table.to_batches(
                max_chunksize=max(1, _rows_for(table, self.ctx.batch_bytes))
            )

    def _run(self, source: Iterator[pa.Table], level: int, schema: pa.Schema) -> Iterator[pa.Table]:
        guard = self.mem.try_acquire(0, self.label)
        assert guard is not None
        parts: list[pa.Table] = []
        partitioner: Partitioner | None = None
        try:
            for t in sliced(source, self.ctx.batch_bytes):
                if partitioner is not None:
                    partitioner.add(t)
                    continue
                if guard.try_grow(_STATE_FACTOR * t.nbytes, self._room):
                    parts.append(t)
                    self.note_peak(guard.nbytes)
                    continue
                if not self.distinct and parts:
                    merged = self._merge(pa.concat_tables(parts))
                    parts = [merged]
                    guard.resize(_STATE_FACTOR * merged.nbytes)
                    if guard.try_grow(_STATE_FACTOR * t.nbytes, self._room):
                        parts.append(t)
                        self.note_peak(guard.nbytes)
                        continue
                guard.resize(0)  # the held parts move into the partitioner's reservation
                partitioner = self._partitioner(level)
                for p in parts:
                    partitioner.add(p)
                parts = []
                partitioner.add(t)
            if partitioner is None:
                state = concat_or_empty(parts, schema)
                if not self.keys or state.num_rows:
                    yield self._finalize(state)
                return
            files = partitioner.finish()
            self.stats.spilled_bytes += partitioner.spilled_bytes
            self.stats.spill_files += len(files)
            self.stats.partitions += len(files)
            self.stats.repartition_depth = max(self.stats.repartition_depth, level + 1)
        finally:
            guard.release()
        for f in files:
            yield from self._run(iter(pa.Table.from_batches([b]) for b in f), level + 1, schema)
            f.delete()

    def _partitioner(self, level: int) -> Partitioner:
        if not self.keys:
            raise CapTooSmallError(
                f"aggregate without group keys over COUNT(DISTINCT) needs all distinct values in "
                f"memory and they do not fit in the {self.ctx.budget.cap_bytes}-byte cap; raise "
                "the cap"
            )
        if level >= self.ctx.max_depth:
            raise CapTooSmallError(
                f"aggregate: a partition still does not fit after {level} levels of "
                f"repartitioning (one group holds more rows than the "
                f"{self.ctx.budget.cap_bytes}-byte cap allows); raise the cap"
            )
        return Partitioner(self.ctx, self.mem, self.label, self.keys, level, self.bits)


def _rows_for(table: pa.Table, target_bytes: int) -> int:
    return max(1, int(table.num_rows * target_bytes / max(table.nbytes, 1)))
