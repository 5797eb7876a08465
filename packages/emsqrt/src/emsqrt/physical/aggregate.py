"""Hash aggregation: in memory while it fits, else hash-partitioned to disk, recursively.

Without DISTINCT, every input batch is pre-aggregated into partial states (count, sum, min,
max; avg as sum and count) with Acero's ``group_by``, and the partials are merged whenever the
reservation is refused; only when the merged states themselves do not fit are they (and the
rest of the input) hash-partitioned to spill files by the group keys. The statistical
aggregates keep the states of ``emsqrt.partials`` (var/stddev: count, mean, m2; corr: the
co-moments; arg_min/arg_max: value, argument, row ordinal), merged in numpy over Acero's
per-group lists. With COUNT(DISTINCT), median or a quantile the partial state is the input
rows themselves. Each partition is then aggregated the same way, one level deeper in the
hash bits, so a partition still too big is split again.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_core import Schema
from platform_core.expr import Checker, Column, Expr, evaluate

from .. import partials
from .. import plan as lp
from ..budget import MemoryBudget
from ..context import ExecContext
from ..errors import CapTooSmallError, SumOverflowError
from ..spill import SpillManager
from .base import PhysicalOp
from .floatkeys import canonical_key
from .partition import Partitioner, concat_or_empty, sliced

__all__ = ["AggregateOp", "state_schema"]

_P = "__emsqrt_a"
# Reserved per byte of held state: Acero's group_by over held partials (merging them) peaked
# at about 3.3 times their bytes on top of them (measured), so state is held at 1/5 of its share.
_STATE_FACTOR = 5
# Integer and boolean SUMs are summed as decimal128(38, 0), their result type: DuckDB sums them
# into a 128-bit HUGEINT, which it exports to Arrow as decimal128(38, 0). Such a total cannot
# overflow (it would take more than 5e18 rows of 64-bit values); a SUM over decimals can, and
# Acero's decimal sums wrap silently at 128 bits, so those are checked (``_overflow_check``).
_WIDE_SUM = pa.decimal128(38, 0)
# A float64 shadow sum differs from a wrapped decimal sum by at least 2**128 minus its own
# rounding error, and from a correct one by no more than that error (below 2**126 for fewer
# than 2**25 values per group and call, as each |value| < 10**38 < 2**127).
_WRAP_GAP = 2.0**127
_SHADOW = "__f"
_MOMENTS = ("stddev_samp", "stddev_pop", "var_samp", "var_pop")
_HOLISTIC = ("median", "quantile_cont", "quantile_disc")
_EXTREMES = ("arg_min", "arg_max")
# State columns of the aggregates merged in numpy (suffixes of ``__emsqrt_a<i>_``).
_STATE = {
    **{name: ("n", "mean", "m2") for name in _MOMENTS},
    "corr": ("n", "mx", "my", "m2x", "m2y", "cxy"),
    **{name: ("val", "arg", "seq") for name in _EXTREMES},
}
_SEQ = "__emsqrt_aseq"


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
        #: the rows' schema before aggregation (a final aggregate's child holds states)
        source = child.schema
        if node.mode == "final":
            assert node.state_of is not None
            source = node.state_of.to_arrow()
        self.keys = list(node.group_by)
        self.distinct = any(s.agg.distinct for s in node.aggregates)
        # median and quantiles hold every value: like DISTINCT, the state is the input rows
        self.raw = self.distinct or any(s.agg.name in _HOLISTIC for s in node.aggregates)
        self.bits = max(1, min(6, (ctx.max_partitions - 1).bit_length()))
        self._seq = 0
        parts: list[_Part] = []
        #: (aggregate index, name) of the aggregates whose states merge in numpy
        self.custom = [
            (i, s.agg.name) for i, s in enumerate(node.aggregates) if s.agg.name in _STATE
        ]
        self.holistic = [i for i, s in enumerate(node.aggregates) if s.agg.name in _HOLISTIC]
        self.params = {i: self._quantile(spec, source) for i, spec in enumerate(node.aggregates)}
        for i, spec in enumerate(node.aggregates):
            src = None if spec.agg.arg is None else f"{_P}{i}"
            name = spec.agg.name
            if name in _STATE or name in _HOLISTIC:
                continue
            if name == "count" and src is None:
                parts.append(_Part(f"{_P}{i}_n", None, "count_all", "sum"))
            elif name == "count":
                parts.append(_Part(f"{_P}{i}_n", src, "count", "sum"))
            elif name == "avg":
                parts.append(_Part(f"{_P}{i}_s", src, "sum", "sum"))
                parts.append(_Part(f"{_P}{i}_n", src, "count", "sum"))
            else:
                parts.append(_Part(f"{_P}{i}_{name}", src, name, name))
            if self._nan_max(spec, source):
                parts.append(_Part(f"{_P}{i}_nan", f"{_P}{i}n", "any", "any"))
        self.parts = parts
        #: columns (raw argument and state) whose decimal sums are checked for a 128-bit
        #: wrap, by the aggregate's output name
        self.checked: dict[str, str] = {}
        #: output names of SUMs over decimals: refused past 38 digits when finished
        self.decimal_sums: list[str] = []
        for i, spec in enumerate(node.aggregates):
            if spec.agg.name in ("sum", "avg") and self._decimal_arg(spec, source):
                state = f"{_P}{i}_sum" if spec.agg.name == "sum" else f"{_P}{i}_s"
                self.checked.update({f"{_P}{i}": spec.name, state: spec.name})
                if spec.agg.name == "sum":
                    self.decimal_sums.append(spec.name)
        # Pre-aggregating a batch whose keys are nearly all distinct only costs a hash table:
        # after a few such batches, partial states are projected from the rows instead.
        self._unreduced = 0
        self._project = False
        self._partial_schema: pa.Schema | None = None
        # Room the held state leaves free (in the share and the whole cap) for batches in
        # flight upstream beyond the head-room, e.g. a scan's Parquet row-group reservation:
        # the aggregate merges or spills sooner instead of starving them.
        self._room = 2 * ctx.batch_bytes
        self.detail = (
            f"by {', '.join(self.keys) or '()'}"
            + (
                (" (distinct: raw rows)" if self.distinct else " (quantiles: raw rows)")
                if self.raw
                else ""
            )
            + ("" if node.mode == "full" else f" [{node.mode}]")
        )

    # ------------------------------------------------------------------ states
    @staticmethod
    def _quantile(spec: lp.AggSpec, schema: pa.Schema) -> float:
        """The checked q of median/quantile_*(x, q) (0.5 for median; unused by others)."""
        if spec.agg.name not in ("quantile_cont", "quantile_disc"):
            return 0.5
        checker = Checker(Schema.from_arrow(schema), aggregates=True)
        q = checker.signature(spec.agg).params[0]
        assert isinstance(q, float)
        return q

    def _custom_columns(self) -> list[str]:
        return [f"{_P}{i}_{suffix}" for i, name in self.custom for suffix in _STATE[name]]

    def _row_states(self, raw: pa.Table) -> dict[str, pa.Array | pa.ChunkedArray]:
        """One state per input row for each numpy-merged aggregate (see ``partials``)."""
        cols: dict[str, pa.Array | pa.ChunkedArray] = {}
        rows = raw.num_rows
        for i, name in self.custom:
            x = raw.column(f"{_P}{i}")
            if name in _EXTREMES:
                val = raw.column(f"{_P}{i}b")
                both = pc.and_(pc.is_valid(x), pc.is_valid(val))
                cols[f"{_P}{i}_val"] = pc.if_else(both, val, pa.scalar(None, val.type))
                cols[f"{_P}{i}_arg"] = x
                cols[f"{_P}{i}_seq"] = raw.column(_SEQ)
                continue
            valid = pc.is_valid(x)
            if name == "corr":  # corr(y, x): y is the first argument (``x`` here), x the second
                second = raw.column(f"{_P}{i}b")
                valid = pc.and_(valid, pc.is_valid(second))
                cols[f"{_P}{i}_n"] = pc.cast(valid, pa.int64())
                cols[f"{_P}{i}_mx"] = pc.if_else(valid, second, 0.0)
                cols[f"{_P}{i}_my"] = pc.if_else(valid, x, 0.0)
                zero = pa.array(np.zeros(rows))
                for suffix in ("m2x", "m2y", "cxy"):
                    cols[f"{_P}{i}_{suffix}"] = zero
                continue
            cols[f"{_P}{i}_n"] = pc.cast(valid, pa.int64())
            cols[f"{_P}{i}_mean"] = pc.fill_null(x, 0.0)
            cols[f"{_P}{i}_m2"] = pa.array(np.zeros(rows))
        return cols

    def _grouped(
        self,
        table: pa.Table,
        aggs: list[tuple[str | list[str], str, str]],
        listed: list[str] | None = None,
    ) -> tuple[pa.Table, np.ndarray, dict[str, pa.Array]]:
        """Acero ``group_by`` with ``aggs``, the numpy-merged states of ``table`` merged per
        group (appended as columns of the same names), and the flat values of ``listed``
        columns with their group id (for median/quantiles)."""
        custom = self._custom_columns()
        wanted = custom + (listed or [])
        row = f"{_P}rows_"
        base = [*aggs, ([], "count_all", row)]
        if self.keys:
            out = self._group(table, [*base, *((c, "list", c) for c in wanted)]).combine_chunks()
            flat = {c: pc.list_flatten(out.column(c)).combine_chunks() for c in wanted}
            if wanted:
                gid = np.asarray(
                    pc.list_parent_indices(out.column(wanted[0])).to_numpy(zero_copy_only=False),
                    dtype=np.int64,
                )
            else:
                gid = np.zeros(0, dtype=np.int64)
            out = out.drop_columns(wanted)
        else:
            out = self._group(table, base)
            flat = {c: table.column(c).combine_chunks() for c in wanted}
            gid = np.zeros(table.num_rows, dtype=np.int64)
        out = out.drop_columns([row])
        groups = out.num_rows
        for i, name in self.custom:
            merged = self._merge_custom(i, name, gid, groups, flat)
            for suffix, column in merged.items():
                out = out.append_column(f"{_P}{i}_{suffix}", column)
        return out, gid, flat

    @staticmethod
    def _np(array: pa.Array, dtype: type) -> np.ndarray:
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=dtype)

    def _merge_custom(
        self, i: int, name: str, gid: np.ndarray, groups: int, flat: dict[str, pa.Array]
    ) -> dict[str, pa.Array]:
        def f(suffix: str, dtype: type = np.float64) -> np.ndarray:
            return self._np(pc.fill_null(flat[f"{_P}{i}_{suffix}"], 0), dtype)

        if name in _EXTREMES:
            val, arg = flat[f"{_P}{i}_val"], flat[f"{_P}{i}_arg"]
            seq = f("seq", np.int64)
            win = partials.extreme_winners(gid, groups, val, seq, largest=name == "arg_max")
            idx = pa.array(win, mask=win < 0)
            return {
                "val": pc.take(val, idx),
                "arg": pc.take(arg, idx),
                "seq": pc.take(pa.array(seq, pa.int64()), idx),
            }
        n = f("n", np.int64)
        if name == "corr":
            merged = partials.merge_comoments(
                gid, groups, n, f("mx"), f("my"), f("m2x"), f("m2y"), f("cxy")
            )
            return {
                suffix: pa.array(v)
                for suffix, v in zip(("n", "mx", "my", "m2x", "m2y", "cxy"), merged, strict=True)
            }
        total, mean, m2 = partials.merge_moments(gid, groups, n, f("mean"), f("m2"))
        return {"n": pa.array(total), "mean": pa.array(mean), "m2": pa.array(m2)}

    def _finish_custom(self, i: int, name: str, state: pa.Table) -> pa.Array:
        def f(suffix: str, dtype: type = np.float64) -> np.ndarray:
            return self._np(pc.fill_null(state.column(f"{_P}{i}_{suffix}"), 0), dtype)

        if name in _EXTREMES:
            return state.column(f"{_P}{i}_arg")
        if name == "corr":
            return partials.finish_corr(f("n", np.int64), f("m2x"), f("m2y"), f("cxy"))
        return partials.finish_moments(name, f("n", np.int64), f("m2"))

    def _finish_quantile(self, i: int, gid: np.ndarray, groups: int, values: pa.Array) -> pa.Array:
        """median/quantile_* of each group's values (NULLs skipped; NaN sorts last)."""
        name = self.node.aggregates[i].agg.name
        out_type = self.schema.field(self.node.aggregates[i].name).type
        order, counts = partials.sorted_groups(gid, groups, values)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        lo, hi, frac = partials.quantile_positions(
            counts, self.params[i], discrete=name == "quantile_disc"
        )
        empty = counts == 0
        if not len(order):
            return pa.nulls(groups, out_type)
        last = len(order) - 1

        def pick(pos: np.ndarray) -> pa.Array:
            at = order[np.minimum(starts + pos, last)]
            return pa.array(np.where(empty, 0, at), mask=empty)

        if name == "quantile_disc":
            return pc.take(values, pick(lo)).cast(out_type)

        def as_float(pos: np.ndarray) -> np.ndarray:
            # safe=False: integers beyond 2**53 round to the nearest double, as in DuckDB
            taken = pc.cast(pc.take(values, pick(pos)), pa.float64(), safe=False)
            return self._np(pc.fill_null(taken, 0.0), np.float64)

        low, high = as_float(lo), as_float(hi)
        result = partials.lerp(low, high, frac)
        return pa.array(result, mask=empty).cast(out_type)

    @staticmethod
    def _decimal_arg(spec: lp.AggSpec, schema: pa.Schema) -> bool:
        """Whether the aggregate's argument is a decimal (its sum can pass 38 digits)."""
        arg = spec.agg.arg
        if arg is None:
            return False
        return bool(pa.types.is_decimal(evaluate(arg, schema.empty_table()).type))

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
        if any(name in _EXTREMES for _, name in self.custom):  # ties go to the earliest row
            cols[_SEQ] = pa.array(np.arange(self._seq, self._seq + batch.num_rows, dtype=np.int64))
            self._seq += batch.num_rows
        for i, spec in enumerate(self.node.aggregates):
            arg = spec.agg.arg
            if arg is None:
                continue
            value = self._value(arg, batch)
            if spec.agg.name in _STATE or spec.agg.name in _HOLISTIC:
                if spec.agg.name in _MOMENTS or spec.agg.name == "corr":  # DuckDB: as DOUBLE
                    value = pc.cast(value, pa.float64())
                cols[f"{_P}{i}"] = value
                for extra in spec.agg.extra_args[: 1 if spec.agg.name in _STATE else 0]:
                    second = self._value(extra, batch)
                    if spec.agg.name == "corr":
                        second = pc.cast(second, pa.float64())
                    cols[f"{_P}{i}b"] = second
                continue
            if spec.agg.distinct:  # counted by equality, as a key is grouped
                value = canonical_key(value)
            if spec.agg.name == "avg" and pa.types.is_integer(value.type):
                # An exact wide sum divided at the end, as DuckDB does (raw-row states too).
                value = pc.cast(value, _WIDE_SUM)
            if spec.agg.name == "sum" and pa.types.is_boolean(value.type):
                value = pc.cast(value, pa.int8())  # DuckDB sums booleans as integers
            if spec.agg.name == "sum" and pa.types.is_integer(value.type):
                value = pc.cast(value, _WIDE_SUM)  # int64 sums wrap silently in Acero
            cols[f"{_P}{i}"] = value
            if spec.agg.name == "max" and pa.types.is_floating(value.type):
                cols[f"{_P}{i}n"] = pc.is_nan(value)
        if not cols:  # count(*) only, no keys: a placeholder column carries the row count
            cols[f"{_P}rows"] = pa.nulls(batch.num_rows, pa.int8())
        return pa.table(cols)

    @staticmethod
    def _value(arg: Expr, batch: pa.RecordBatch | pa.Table) -> pa.Array | pa.ChunkedArray:
        if isinstance(arg, Column):
            return batch.column(arg.name)
        value = evaluate(arg, batch)
        if isinstance(value, pa.Scalar):  # a constant argument: one value per row
            return pa.repeat(value, batch.num_rows)
        return value

    def _group(self, table: pa.Table, aggs: list[tuple[str | list[str], str, str]]) -> pa.Table:
        """Acero ``group_by``; ``aggs`` are (source, function, output name). Decimal sums
        are checked: a total past 128 bits raises :class:`SumOverflowError`."""
        shadows: list[tuple[str, str]] = []
        for src, func, name in list(aggs):
            if func == "sum" and isinstance(src, str) and src in self.checked:
                shadow = src + _SHADOW
                if shadow not in table.column_names:
                    table = table.append_column(shadow, pc.cast(table.column(src), pa.float64()))
                aggs = [*aggs, (shadow, "sum", name + _SHADOW)]
                shadows.append((name, self.checked[src]))
        spec = [(src, func) for src, func, _ in aggs]
        out = table.group_by(self.keys, use_threads=False).aggregate(spec)
        names = list(self.keys) + [name for _, _, name in aggs]
        out = out.rename_columns(names)
        for name, output in shadows:
            _wrap_check(out.column(name), out.column(name + _SHADOW), output)
            out = out.drop_columns([name + _SHADOW])
        return out

    def _partial(self, raw: pa.Table) -> pa.Table:
        if self.raw:
            return raw
        if self._project and self._partial_schema is not None:
            return self._projected(raw, self._partial_schema)
        rows = raw
        for name, column in self._row_states(raw).items():
            rows = rows.append_column(name, column)
        out, _, _ = self._grouped(
            rows, [([] if p.source is None else p.source, p.func, p.column) for p in self.parts]
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
        states = self._row_states(raw)
        cols.extend(states.values())
        names = [*self.keys, *(p.column for p in self.parts), *states]
        return pa.Table.from_arrays(cols, names=names).cast(schema)

    def _state(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        """A batch's partial states: aggregated from rows, or as they come to a final mode."""
        if self.node.mode == "final":
            return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        return self._partial(self._inputs(batch))

    def _emit(self, state: pa.Table) -> pa.Table:
        """The output for held states: merged states in partial mode, else the result."""
        return self._merge(state) if self.node.mode == "partial" else self._finalize(state)

    def _merge(self, partial: pa.Table) -> pa.Table:
        if self.raw:
            return partial
        out, _, _ = self._grouped(partial, [(p.column, p.merge, p.column) for p in self.parts])
        return out

    def _finalize(self, state: pa.Table) -> pa.Table:
        if self.raw:
            aggs: list[tuple[str | list[str], str, str]] = []
            averages: list[tuple[int, str]] = []
            for name, column in self._row_states(state).items():
                state = state.append_column(name, column)
            for i, spec in enumerate(self.node.aggregates):
                if spec.agg.name in _STATE or spec.agg.name in _HOLISTIC:
                    continue
                src: str | list[str] = [] if spec.agg.arg is None else f"{_P}{i}"
                func = {"count": "count_all" if spec.agg.arg is None else "count"}.get(
                    spec.agg.name, spec.agg.name
                )
                if spec.agg.distinct:
                    func = "count_distinct"
                if func == "avg" and state.schema.field(f"{_P}{i}").type == _WIDE_SUM:
                    # integers: an exact wide sum over the count (Acero's mean of a decimal
                    # keeps its scale of 0 and would truncate)
                    aggs.append((src, "sum", f"{_P}{i}_s"))
                    aggs.append((src, "count", f"{_P}{i}_n"))
                    averages.append((i, spec.name))
                    continue
                aggs.append((src, "mean" if func == "avg" else func, spec.name))
            fixes = []
            for i, spec in enumerate(self.node.aggregates):
                if f"{_P}{i}n" in state.column_names:
                    aggs.append((f"{_P}{i}n", "any", f"{_P}{i}_nan"))
                    fixes.append((spec.name, f"{_P}{i}_nan"))
            listed = [f"{_P}{i}" for i in self.holistic]
            grouped, gid, flat = self._grouped(state, aggs, listed)
            for i, name in averages:
                grouped = grouped.append_column(name, self._average(grouped, i))
            out = self._check_digits(grouped)
            for name, flag in fixes:
                idx = out.schema.get_field_index(name)
                out = out.set_column(idx, name, self._fix_nan(out.column(name), out.column(flag)))
            for i, name in self.custom:
                out = out.append_column(
                    self.node.aggregates[i].name, self._finish_custom(i, name, out)
                )
            for i in self.holistic:
                column = self._finish_quantile(i, gid, out.num_rows, flat[f"{_P}{i}"])
                out = out.append_column(self.node.aggregates[i].name, column)
            return out.select([*self.keys, *[s.name for s in self.node.aggregates]])
        state = self._merge(state)
        cols = {k: state.column(k) for k in self.keys}
        for i, spec in enumerate(self.node.aggregates):
            name = spec.agg.name
            if name in _STATE:
                cols[spec.name] = self._finish_custom(i, name, state)
            elif name == "count":
                cols[spec.name] = pc.fill_null(state.column(f"{_P}{i}_n"), 0)
            elif name == "avg":
                cols[spec.name] = self._average(state, i)
            else:
                cols[spec.name] = state.column(f"{_P}{i}_{name}")
                if f"{_P}{i}_nan" in state.column_names:
                    cols[spec.name] = self._fix_nan(cols[spec.name], state.column(f"{_P}{i}_nan"))
        return self._check_digits(pa.table(cols))

    def _check_digits(self, out: pa.Table) -> pa.Table:
        for name in self.decimal_sums:
            _digits_check(out.column(name), name)
        return out

    @staticmethod
    def _average(state: pa.Table, i: int) -> pa.ChunkedArray:
        """AVG from its ``_s`` (sum) and ``_n`` (count) columns; NULL over no values."""
        s, n = state.column(f"{_P}{i}_s"), state.column(f"{_P}{i}_n")
        n = pc.if_else(pc.equal(n, 0), pa.scalar(None, n.type), n)
        return pc.divide(pc.cast(s, pa.float64()), pc.cast(n, pa.float64()))

    # ------------------------------------------------------------------ driver
    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        child = self.children[0]
        if self.node.mode == "partial" and self.raw:  # the state is the rows: stream them
            for batch in child.batches():
                yield from self._inputs(batch).to_batches()
            return

        def partials() -> Iterator[pa.Table]:
            for batch in child.batches():
                yield self._state(batch)

        empty = self._state(child.schema.empty_table())
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
            pieces = sliced(source, self.ctx.batch_bytes)
            for t in pieces:
                self.ctx.check_cancel()
                if partitioner is not None:
                    partitioner.add(t)
                    continue
                if guard.try_grow(_STATE_FACTOR * t.nbytes, self._room):
                    parts.append(t)
                    self.note_peak(guard.nbytes)
                    continue
                if not self.raw and parts:
                    merged = self._merge(pa.concat_tables(parts))
                    parts = [merged]
                    guard.resize(_STATE_FACTOR * merged.nbytes)
                    if guard.try_grow(_STATE_FACTOR * t.nbytes, self._room):
                        parts.append(t)
                        self.note_peak(guard.nbytes)
                        continue
                guard.resize(0)  # the held parts move into the partitioner's reservation
                partitioner = self._partitioner(level, [*parts, t], pieces)
                for p in parts:
                    partitioner.add(p)
                parts = []
                partitioner.add(t)
            if partitioner is None:
                state = concat_or_empty(parts, schema)
                if not self.keys or state.num_rows:
                    yield self._emit(state)
                return
            files = partitioner.finish()
            self.stats.spilled_bytes += partitioner.spilled_bytes
            self.stats.spill_files += len(files)
            self.stats.partitions += len(files)
            self.stats.repartition_depth = max(self.stats.repartition_depth, level + 1)
        finally:
            guard.release()
        # A partition that still does not fit names the cap it needs; the others may need
        # more (another group's rows), so every partition runs before the largest need is
        # raised: the cap it names then holds them all.
        worst: CapTooSmallError | None = None
        for f in files:
            try:
                yield from self._run(iter(pa.Table.from_batches([b]) for b in f), level + 1, schema)
            except CapTooSmallError as exc:
                if worst is None or _needed(exc) > _needed(worst):
                    worst = exc
            finally:
                f.delete()
        if worst is not None:
            raise worst

    def _partitioner(
        self, level: int, held: list[pa.Table], rest: Iterator[pa.Table]
    ) -> Partitioner:
        if not self.keys and self.raw:
            raise self._too_small(
                "aggregate without group keys over "
                f"{'COUNT(DISTINCT)' if self.distinct else 'a median or quantile'} needs all "
                "its values in memory",
                held,
                rest,
            )
        if not self.keys:  # its state is one row: its share of the cap is below one batch
            raise self._too_small(
                f"aggregate without group keys: its share of the cap ({self.mem.cap_bytes} "
                "bytes; the plan's operators share the cap) cannot hold one batch of its input",
                held,
                rest,
            )
        if level >= self.ctx.max_depth:
            raise self._too_small(
                f"aggregate: a partition still does not fit after {level} levels of "
                "repartitioning (one group holds more rows than the cap allows)",
                held,
                rest,
            )
        return Partitioner(self.ctx, self.mem, self.label, self.keys, level, self.bits)

    def _too_small(
        self, what: str, held: list[pa.Table], rest: Iterator[pa.Table]
    ) -> CapTooSmallError:
        """The error naming a cap that holds every value at once: the rest of this input is
        read (not held) to measure it."""
        total = sum(t.nbytes for t in held) + sum(t.nbytes for t in rest)
        smallest = self.ctx.smallest_cap(_STATE_FACTOR * total + self._room)
        return CapTooSmallError(
            f"{what}: {total} bytes of state do not fit in the "
            f"{self.ctx.budget.cap_bytes}-byte cap; raise the cap to at least {smallest} bytes",
            cap_bytes=self.ctx.budget.cap_bytes,
            needed_bytes=smallest,
        )


def _wrap_check(exact: pa.ChunkedArray, shadow: pa.ChunkedArray, output: str) -> None:
    """Raise :class:`SumOverflowError` when a decimal sum wrapped at 128 bits: it then lies
    far from its float64 shadow (DuckDB refuses it too: "Overflow in HUGEINT addition")."""
    approx = pc.cast(exact, pa.float64())
    if pc.any(pc.greater(pc.abs(pc.subtract(approx, shadow)), _WRAP_GAP)).as_py():
        raise SumOverflowError(
            f"aggregate {output}: the sum of a group's decimals passes 128 bits (DuckDB "
            "refuses it too: Overflow in HUGEINT addition); aggregate CAST(... AS DOUBLE) "
            "for an approximate result",
            aggregate=output,
        )


def _digits_check(total: pa.ChunkedArray, output: str) -> None:
    """Raise :class:`SumOverflowError` when a finished decimal SUM passes the 38 digits of its
    type, as DuckDB refuses it ("Overflow in SUM of DECIMAL")."""
    t = total.type
    limit = pa.scalar(Decimal(f"{10**38 - 1}E-{t.scale}"), t)
    if pc.any(pc.greater(pc.abs(total), limit)).as_py():
        raise SumOverflowError(
            f"aggregate {output}: the sum of a group does not fit in decimal(38, {t.scale}) "
            "(DuckDB refuses it too: Overflow in SUM of DECIMAL); sum CAST(... AS DOUBLE) "
            "for an approximate total",
            aggregate=output,
        )


def _needed(exc: CapTooSmallError) -> int:
    return int(exc.details.get("needed_bytes", 0))


def _rows_for(table: pa.Table, target_bytes: int) -> int:
    return max(1, int(table.num_rows * target_bytes / max(table.nbytes, 1)))


class _Shape(PhysicalOp):
    """A leaf that only has a schema: lets :func:`state_schema` build an operator."""

    name = "shape"

    def _produce(self) -> Generator[pa.RecordBatch, None, None]:
        yield from ()


_STATE_SCHEMAS: dict[Any, pa.Schema] = {}
_STATE_SCHEMAS_MAX = 256


def state_schema(node: lp.Aggregate, source: pa.Schema) -> pa.Schema:
    """The partial states' schema of ``node`` over rows of ``source``: what mode ``partial``
    outputs and ``final`` reads. Computed by the operator itself on no rows, so it always
    agrees with what runs; remembered by (keys, aggregates, source schema), since a job asks
    for it several times in the driver and in every task (about a millisecond each)."""
    # the text names every field's type and metadata (Schema equality ignores metadata)
    key = (node.group_by, node.aggregates, source.to_string(show_schema_metadata=True))
    try:
        found = _STATE_SCHEMAS.get(key)
    except TypeError:  # an unhashable literal in an expression: computed every time
        return _state_schema(node, source)
    if found is None:
        found = _state_schema(node, source)
        if len(_STATE_SCHEMAS) >= _STATE_SCHEMAS_MAX:
            _STATE_SCHEMAS.clear()
        _STATE_SCHEMAS[key] = found
    return found


def _state_schema(node: lp.Aggregate, source: pa.Schema) -> pa.Schema:
    ctx = ExecContext.for_cap(MemoryBudget(1 << 26), cast(SpillManager, None), 1)
    partial = lp.Aggregate(node.input, node.group_by, node.aggregates, "partial")
    op = AggregateOp(ctx, partial, _Shape(ctx, [], source), pa.schema([]))
    empty = op._inputs(source.empty_table())
    return empty.schema if op.raw else op._merge(op._partial(empty)).schema
