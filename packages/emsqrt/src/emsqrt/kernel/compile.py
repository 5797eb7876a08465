"""An emsqrt logical plan as one DuckDB statement, with the exact output schema of the operators.

``compile_plan`` walks the plan bottom-up and renders each operator as a subquery over its
inputs; DuckDB's optimizer then fuses them (projection and filter pushdown into the Parquet
scan, a hash aggregate per thread, a top-n per group). Every operator keeps emsqrt's meaning:

- a Parquet ``Scan`` reads only its columns and applies its pushed predicate; ``Input`` reads
  the caller's Arrow batches (registered with the connection, never copied);
- group keys and join keys are compared canonically (-0.0 as 0.0, one NaN), as
  ``physical.floatkeys`` does;
- an ``Aggregate`` in ``partial`` mode outputs emsqrt's documented state columns (count, sum,
  avg as sum and count, min, max and its NaN flag, moments as ``(n, mean, m2)``, corr's
  co-moments, or the raw rows for DISTINCT and quantiles), in ``final`` mode merges them;
- joins output the left columns, then the right's non-key columns (``_right`` on a clash),
  with key columns holding ``coalesce(left, right)`` in the type both sides compare in.

Anything else (CSV and JSON scans, whose type inference is emsqrt's own; sinks; Python
functions; arg_min/arg_max states, whose tie rule needs row ordinals) raises
:class:`Unsupported`, and the caller runs emsqrt's own operators instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from platform_core import types as ftypes
from platform_core.expr import Expr, to_sql
from platform_core.expr.render import duckdb_type, quote_identifier, quote_string

from .. import plan as lp
from ..physical.join import join_key_type
from ..resolve import SchemaResolver, arrow_scan_schema, right_output_names

__all__ = ["Fragment", "Unsupported", "compile_plan"]

_P = "__emsqrt_a"
_MOMENTS = ("stddev_samp", "stddev_pop", "var_samp", "var_pop")
_HOLISTIC = ("median", "quantile_cont", "quantile_disc")
_ORD_NAME = "__emsqrt_ord"
_ORD = quote_identifier(_ORD_NAME)


class Unsupported(Exception):
    """The plan holds something the kernel does not run; emsqrt's operators will."""


@dataclass
class Fragment:
    """One DuckDB statement, the Arrow inputs it reads by name, and its output schema."""

    sql: str
    schema: pa.Schema | None
    """None: the rows as DuckDB makes them (a caller's own statement; ``KernelRun.schema``)."""
    tables: dict[str, pa.Table] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    ordered: bool = True
    """Whether its rows' order matters (DuckDB's ``preserve_insertion_order``): not for an
    aggregate's groups, where keeping it costs memory (a partial aggregate over a range of a
    file's row groups ran out of a 32 MiB limit that the same rows read whole fit in)."""


def q(name: str) -> str:
    return quote_identifier(name)


def _sqltype(t: pa.DataType) -> str:
    try:
        return duckdb_type(ftypes.from_arrow(t))
    except Exception as exc:  # a type our field types do not name
        raise Unsupported(f"type {t}") from exc


def _canon(expr: str, t: pa.DataType) -> str:
    """A float key as emsqrt compares it: -0.0 as 0.0 (IEEE: -0.0 + 0.0 is 0.0), one NaN."""
    if pa.types.is_floating(t):
        return f"({expr} + 0.0)"
    return expr


def compile_plan(
    plan: lp.Node, inputs: Mapping[str, Sequence[pa.RecordBatch]] | None = None
) -> Fragment:
    """``plan`` as one DuckDB statement; :class:`Unsupported` when the kernel cannot run it."""
    return _Compiler(inputs or {}).compile(plan)


class _Compiler:
    def __init__(self, inputs: Mapping[str, Sequence[pa.RecordBatch]]) -> None:
        self.inputs = inputs
        self.resolver = SchemaResolver()
        self.tables: dict[str, pa.Table] = {}
        self.files: list[str] = []

    def compile(self, plan: lp.Node) -> Fragment:
        schema = self.resolver.schema(plan)
        body = self.visit(plan)
        cols = ", ".join(q(n) for n in schema.names)
        top = plan
        while isinstance(top, lp.Project | lp.Map):  # they keep their input's order
            top = top.input
        ordered = not (isinstance(top, lp.Aggregate) and _order_free(top))
        return Fragment(f"SELECT {cols} FROM ({body})", schema, self.tables, self.files, ordered)

    def schema(self, node: lp.Node) -> pa.Schema:
        schema = self.resolver.schema(node)
        if len({n.lower() for n in schema.names}) != len(schema.names):
            # DuckDB binds names without regard to case: "a" and "A" would be one column
            raise Unsupported("column names that differ only in case")
        return schema

    # --- operators ------------------------------------------------------------------------

    def visit(self, node: lp.Node) -> str:
        method = getattr(self, f"_{type(node).__name__.lower()}", None)
        if method is None:
            raise Unsupported(type(node).__name__)
        return str(method(node))

    def _scan(self, node: lp.Scan) -> str:
        if node.format != "parquet":
            raise Unsupported(f"{node.format} scan")  # emsqrt's own type inference
        return self._parquet([node.path], node)

    def _parquet(
        self, paths: list[str], node: lp.Scan, ordinal: bool = False, index: int = 0
    ) -> str:
        """A Parquet read; with ``ordinal``, each row's position in the input too (``_ORD``):
        its row number in its file (DuckDB's ``file_row_number``, read in parallel like any
        column), after the rows of the files before it (``file_index``; one file read as the
        ``index``-th of a union of reads counts as that file)."""
        for path in paths:  # DuckDB would read these as globs: the operators read the file
            if any(c in path for c in "*?[]{}"):
                raise Unsupported(f"a path DuckDB reads as a glob: {path!r}")
        schema = self.schema(node)
        self.files += paths
        conds = [self._expr(node.predicate)] if node.predicate is not None else []
        options = ""
        if node.row_groups is not None:
            first, stop = _row_range(paths[0], node.row_groups)
            # DuckDB skips the Parquet row groups whose row numbers lie outside the range
            # (EXPLAIN ANALYZE: "Row Groups Scanned: 2 / 16"): the task reads its groups only
            options = ", file_row_number = true"
            conds.insert(0, f"file_row_number >= {first} AND file_row_number < {stop}")
        where = f" WHERE {' AND '.join(f'({c})' for c in conds)}" if conds else ""
        cols = ", ".join(q(n) for n in schema.names)
        files = ", ".join(quote_string(p) for p in paths)
        if ordinal:
            options = ", file_row_number = true"
            # no file holds 2**40 rows: one BIGINT orders (file, row) as the union reads them
            pos = "file_row_number"
            if len(paths) > 1:
                pos = "(CAST(file_index AS BIGINT) << 40) + file_row_number"
            elif index:
                pos = f"(CAST({int(index)} AS BIGINT) << 40) + file_row_number"
            cols += f", {pos} AS {_ORD}"
        # hive_partitioning: a folder named year=1999 must not replace the file's own column
        return (
            f"SELECT {cols} FROM read_parquet([{files}], hive_partitioning = false, "
            f"union_by_name = false{options}){where}"
        )

    def _input(self, node: lp.Input, ordinal: bool = False) -> str:
        if node.name not in self.inputs:
            raise Unsupported(f"input {node.name!r} not given")
        alias = f"__emsqrt_in{len(self.tables)}"
        batches = list(self.inputs[node.name])
        # the batches' own types (the operators read them as given), else the declared ones
        schema = batches[0].schema if batches else node.schema.to_arrow()
        table = pa.Table.from_batches(batches, schema=schema)
        if ordinal:  # the position as a column of the input: no numbering inside DuckDB
            table = table.append_column(_ORD_NAME, pa.array(np.arange(table.num_rows)))
        self.tables[alias] = table
        return f"SELECT * FROM {q(alias)}"

    def _filter(self, node: lp.Filter) -> str:
        return f"SELECT * FROM ({self.visit(node.input)}) WHERE {self._expr(node.predicate)}"

    def _project(self, node: lp.Project) -> str:
        cols = ", ".join(f"{q(src)} AS {q(out)}" for out, src in node.columns)
        return f"SELECT {cols} FROM ({self.visit(node.input)})"

    def _map(self, node: lp.Map, src: str | None = None) -> str:
        sql = self.visit(node.input) if src is None else src
        names = list(self.schema(node.input).names)
        for name, expr in node.columns:  # left to right: each sees the ones before it
            value = self._expr(expr)
            if name in names:
                sql = f"SELECT * REPLACE ({value} AS {q(name)}) FROM ({sql})"
            else:
                names.append(name)
                sql = f"SELECT *, {value} AS {q(name)} FROM ({sql})"
        return sql

    def _pymap(self, node: lp.PyMap) -> str:
        raise Unsupported("a Python function")

    def _sink(self, node: lp.Sink) -> str:
        raise Unsupported("a sink")

    def _limit(self, node: lp.Limit) -> str:
        return f"SELECT * FROM ({self.visit(node.input)}) LIMIT {int(node.n)} OFFSET {int(node.offset)}"

    def _order(self, keys: Sequence[lp.SortKey], ordinal: bool = True) -> str:
        """ORDER BY ``keys``, ties in input order (the operators' sorts are stable, and a
        browser worker's top-k is checked against a re-run row for row)."""
        return ", ".join(
            [
                f"{q(k.column)} {'DESC' if k.descending else 'ASC'} "
                f"NULLS {'FIRST' if k.nulls_first else 'LAST'}"
                for k in keys
            ]
            + ([_ORD] if ordinal else [])
        )

    def _ordered(self, node: lp.Node) -> str:
        """``node``'s rows with each one's input position in ``_ORD``.

        Where the rows come from Parquet files or Arrow inputs through filters, projections
        and computed columns, the position is read with them (``file_row_number``, or a
        column added to the Arrow input): the scan stays parallel and nothing is
        materialised. Elsewhere (joins, unions of unlike inputs, limits) ``row_number()
        OVER ()`` numbers the rows, which runs on one thread and holds the whole input."""
        if self._has_ordinal(node):
            return self._with_ordinal(node)
        return f"SELECT *, row_number() OVER () AS {_ORD} FROM ({self.visit(node)})"

    def _has_ordinal(self, node: lp.Node) -> bool:
        """Whether ``node``'s rows carry a position DuckDB can read with them."""
        if _ORD_NAME in self.schema(node).names:
            return False
        if isinstance(node, lp.Filter | lp.Project | lp.Map):
            return self._has_ordinal(node.input)
        if isinstance(node, lp.Input):
            return node.name in self.inputs
        scans = _one_parquet_read(node) or _parquet_reads(node)
        if scans is None:
            return False
        # a column of the file by one of those names would shadow DuckDB's virtual one
        full = {n.lower() for n in arrow_scan_schema(replace(scans[0], columns=None)).names}
        return not full & {"file_row_number", "file_index"}

    def _with_ordinal(self, node: lp.Node) -> str:
        """``node`` as :meth:`visit` renders it, with ``_ORD`` (see :meth:`_has_ordinal`)."""
        if isinstance(node, lp.Filter):
            src = self._with_ordinal(node.input)
            return f"SELECT * FROM ({src}) WHERE {self._expr(node.predicate)}"
        if isinstance(node, lp.Project):
            cols = ", ".join(f"{q(src)} AS {q(out)}" for out, src in node.columns)
            return f"SELECT {cols}, {_ORD} FROM ({self._with_ordinal(node.input)})"
        if isinstance(node, lp.Map):
            return self._map(node, self._with_ordinal(node.input))
        if isinstance(node, lp.Input):
            return self._input(node, ordinal=True)
        scans = _one_parquet_read(node)
        if scans is not None:
            return self._parquet([s.path for s in scans], scans[0], ordinal=True)
        reads = _parquet_reads(node)  # files some of which are read by row-group ranges
        assert reads is not None
        return " UNION ALL ".join(
            f"({self._parquet([s.path], s, ordinal=True, index=i)})" for i, s in enumerate(reads)
        )

    def _ties_visible(self, node: lp.Node, keys: Sequence[lp.SortKey], per: Sequence[str]) -> bool:
        """Whether rows tied on ``keys`` (within one ``per`` group) can differ in the output.

        Not when every output column is a key or a ``per`` column and none is a float: tied
        rows are then equal in every column, so which of them comes first cannot be seen and
        no position is needed (DuckDB then runs a top-n per group as a bounded aggregate).
        Floats can differ while tied: -0.0 and 0.0 sort, and group, as one value."""
        shown = {k.column for k in keys} | set(per)
        return any(f.name not in shown or pa.types.is_floating(f.type) for f in self.schema(node))

    def _sort(self, node: lp.Sort) -> str:
        if not self._ties_visible(node.input, node.keys, ()):
            src = self.visit(node.input)
            return f"SELECT * FROM ({src}) ORDER BY {self._order(node.keys, False)}"
        src = self._ordered(node.input)
        return f"SELECT * EXCLUDE ({_ORD}) FROM ({src}) ORDER BY {self._order(node.keys)}"

    def _topk(self, node: lp.TopK) -> str:
        if self._values_only(node):
            return self._top_values_per_group(node)
        if self._ties_visible(node.input, node.keys, node.per):
            src, order = self._ordered(node.input), self._order(node.keys)
            drop = f" EXCLUDE ({_ORD})"
        else:
            src, order, drop = self.visit(node.input), self._order(node.keys, False), ""
        if not node.per:
            return f"SELECT *{drop} FROM ({src}) ORDER BY {order} LIMIT {int(node.n)}"
        schema = self.schema(node.input)
        per = ", ".join(_canon(q(k), schema.field(k).type) for k in node.per)
        return (
            f"SELECT *{drop} FROM ({src}) QUALIFY row_number() OVER (PARTITION BY "
            f"{per} ORDER BY {order}) <= {int(node.n)}"
        )

    def _values_only(self, node: lp.TopK) -> bool:
        """A top-n per group whose output is its groups and one key (the largest two v3 by
        id6): each group's rows are its n first key values, whichever rows held them, but
        for the sign of a float zero (-0.0 and 0.0 tie in the order)."""
        if not node.per or len(node.keys) != 1 or node.n <= 0:
            return False
        schema = self.schema(node.input)
        key = node.keys[0].column
        t = schema.field(key).type if key in schema.names else None
        return (
            key not in node.per
            and set(schema.names) == {key, *node.per}
            and not any(pa.types.is_floating(schema.field(k).type) for k in node.per)
            and t is not None
            and (
                pa.types.is_integer(t)
                or pa.types.is_string(t)
                or pa.types.is_large_string(t)
                or (pa.types.is_floating(t) and self._has_ordinal(node.input))
            )
        )

    def _top_values_per_group(self, node: lp.TopK) -> str:
        """A :meth:`_values_only` top-n as an aggregate: each group's n largest (smallest)
        key values (``max(key, n)``, a bounded heap per group, no sort of the rows) and its
        NULL count, NULLs put first or last as the key says. The zero keys it kept, of
        either sign, then take the signs of their group's first zero rows in input order,
        which are the rows the operators keep (read again with their positions: the zeros
        only, usually none)."""
        schema = self.schema(node.input)
        k = node.keys[0]
        key, per, n = q(k.column), [q(c) for c in node.per], int(node.n)
        groups = ", ".join(per)
        t = schema.field(k.column).type
        empty = f"CAST([] AS {_sqltype(t)}[])"
        values = f"coalesce(__emsqrt_l, {empty})"
        nulls = f"list_resize({empty}, least(__emsqrt_nn, {n}))"
        both = f"{nulls}, {values}" if k.nulls_first else f"{values}, {nulls}"
        agg = (
            f"SELECT {groups}, {'max' if k.descending else 'min'}({key}, {n}) AS __emsqrt_l, "
            f"count(*) - count({key}) AS __emsqrt_nn FROM ({self.visit(node.input)}) "
            f"GROUP BY {groups}"
        )
        rows = f"SELECT {groups}, unnest(list_slice(list_concat({both}), 1, {n})) AS {key} FROM ({agg})"
        cols = [q(c) for c in schema.names]
        if not pa.types.is_floating(t):
            return f"SELECT {', '.join(cols)} FROM ({rows})"
        fast = (
            f"SELECT *, CASE WHEN {key} = 0 THEN row_number() OVER (PARTITION BY {groups}, "
            f"{key} = 0) END AS __emsqrt_zr FROM ({rows})"
        )
        zeros = (
            f"SELECT *, row_number() OVER (PARTITION BY {groups} ORDER BY {_ORD}) AS "
            f"__emsqrt_zr FROM ({self._with_ordinal(node.input)}) WHERE {key} = 0"
        )
        on = " AND ".join([f"z.{c} IS NOT DISTINCT FROM f.{c}" for c in per])
        out = ", ".join(
            f"coalesce(z.{key}, f.{key}) AS {key}" if c == key else f"f.{c}" for c in cols
        )
        return (
            f"SELECT {out} FROM ({fast}) f LEFT JOIN ({zeros}) z ON {on} AND "
            "z.__emsqrt_zr = f.__emsqrt_zr"
        )

    def _union(self, node: lp.Union) -> str:
        scans = _one_parquet_read(node)
        if scans is not None:  # one multi-file scan: DuckDB splits it over its threads
            return self._parquet([s.path for s in scans], scans[0])
        out = self.schema(node)
        parts = []
        for i in node.inputs:
            cols = ", ".join(f"CAST({q(f.name)} AS {_sqltype(f.type)}) AS {q(f.name)}" for f in out)
            parts.append(f"SELECT {cols} FROM ({self.visit(i)})")
        return " UNION ALL ".join(f"({p})" for p in parts)

    def _join(self, node: lp.Join) -> str:
        ls, rs = self.schema(node.left), self.schema(node.right)
        left, right = self.visit(node.left), self.visit(node.right)
        on = []
        key_sql: dict[str, str] = {}
        for lk, rk in zip(node.left_keys, node.right_keys, strict=True):
            t = _sqltype(join_key_type(ls.field(lk).type, rs.field(rk).type))
            lv = _canon(f"CAST(l.{q(lk)} AS {t})", ls.field(lk).type)
            rv = _canon(f"CAST(r.{q(rk)} AS {t})", rs.field(rk).type)
            on.append(f"{lv} = {rv}")
            key_sql[lk] = lv if node.how in ("inner", "left") else f"coalesce({lv}, {rv})"
        cond = " AND ".join(on)
        if node.how in ("semi", "anti"):
            canon = [
                f"{_canon(f'l.{q(k)}', ls.field(k).type)} AS {q(k)}"
                for k in node.left_keys
                if pa.types.is_floating(ls.field(k).type)
            ]  # the key as the operators output it: -0.0 as 0.0
            star = f"l.* REPLACE ({', '.join(canon)})" if canon else "l.*"
            return f"SELECT {star} FROM ({left}) l {node.how.upper()} JOIN ({right}) r ON {cond}"
        cols = [f"{key_sql.get(n, f'l.{q(n)}')} AS {q(n)}" for n in ls.names]
        cols += [f"r.{q(src)} AS {q(out)}" for src, out in right_output_names(node, ls, rs)]
        kind = {"inner": "INNER", "left": "LEFT", "right": "RIGHT", "full": "FULL OUTER"}
        return (
            f"SELECT {', '.join(cols)} FROM ({left}) l {kind[node.how]} JOIN ({right}) r ON {cond}"
        )

    # --- aggregates -----------------------------------------------------------------------

    def _aggregate(self, node: lp.Aggregate) -> str:
        src_schema = self.schema(node.input)
        src = self.visit(node.input)
        out = self.schema(node)
        if node.mode == "final":
            assert node.state_of is not None
            rows = node.state_of.to_arrow()
            keys = {k: q(k) for k in node.group_by}
            raw = _is_raw(node)
            cols = self._final(node, rows) if not raw else self._raw_final(node, rows)
        else:
            rows = src_schema
            keys = {k: _canon(q(k), src_schema.field(k).type) for k in node.group_by}
            if node.mode == "partial":
                cols = self._partial(node, rows)
                if not keys and not _is_raw(node):
                    # no rows, no groups: the operators' one state row holds NULL counts
                    cols = {
                        k: f"CASE WHEN count(*) = 0 THEN NULL ELSE {v} END"
                        if k.endswith("_n")
                        else v
                        for k, v in cols.items()
                    }
            else:
                cols = {s.name: self._full(s, rows) for s in node.aggregates}
        select = [f"{v} AS {q(k)}" for k, v in keys.items()]
        for name in out.names[len(node.group_by) :]:
            if name not in cols:
                raise Unsupported(f"state column {name}")
            select.append(f"{cols[name]} AS {q(name)}")
        if node.mode == "partial" and _is_raw(node):
            return f"SELECT {', '.join(select)} FROM ({src})"  # the rows are the state
        group = f" GROUP BY {', '.join(keys.values())}" if keys else ""
        return f"SELECT {', '.join(select)} FROM ({src}){group}"

    def _full(self, spec: lp.AggSpec, rows: pa.Schema) -> str:
        """A whole aggregate; MAX over floats spelt out as the operators compute it (NaN above
        every number), not left to how DuckDB's kernels meet NaN in each code path."""
        if spec.agg.name == "max" and spec.agg.arg is not None and _is_float_arg(spec, rows):
            x = self._arg(spec, rows)[0]
            return (
                f"CASE WHEN bool_or(isnan({x})) THEN 'NaN'::DOUBLE "
                f"ELSE max({x}) FILTER (WHERE NOT isnan({x})) END"
            )
        return self._expr(spec.agg)

    def _arg(self, spec: lp.AggSpec, rows: pa.Schema, k: int = 0) -> tuple[str, pa.DataType]:
        from platform_core.expr import evaluate

        arg = spec.agg.arg if k == 0 else spec.agg.extra_args[k - 1]
        assert arg is not None
        return self._expr(arg), evaluate(arg, rows.empty_table()).type

    def _partial(self, node: lp.Aggregate, rows: pa.Schema) -> dict[str, str]:
        cols: dict[str, str] = {}
        if _is_raw(node):
            for i, spec in enumerate(node.aggregates):
                if spec.agg.arg is None:
                    continue
                value, t = self._arg(spec, rows)
                name = spec.agg.name
                if name in _MOMENTS or name == "corr":
                    value = f"CAST({value} AS DOUBLE)"
                elif spec.agg.distinct:
                    value = _canon(value, t)
                elif (name in ("sum", "avg") and pa.types.is_integer(t)) or (
                    name == "sum" and pa.types.is_boolean(t)
                ):
                    # the operators' raw state: a 128-bit sum (booleans summed as integers)
                    value = f"CAST({value} AS HUGEINT)"
                cols[f"{_P}{i}"] = value
                if name == "corr":
                    second, _ = self._arg(spec, rows, 1)
                    cols[f"{_P}{i}b"] = f"CAST({second} AS DOUBLE)"
                if name == "max" and pa.types.is_floating(t):
                    cols[f"{_P}{i}n"] = f"isnan({value})"
            if not cols:
                cols[f"{_P}rows"] = "CAST(NULL AS TINYINT)"
            return cols
        for i, spec in enumerate(node.aggregates):
            p, name = f"{_P}{i}_", spec.agg.name
            if spec.agg.arg is None:
                cols[f"{p}n"] = "count(*)"
                continue
            value, t = self._arg(spec, rows)
            if name == "count":
                cols[f"{p}n"] = f"count({value})"
            elif name == "sum":
                cols[f"{p}sum"] = f"sum({value})"
            elif name == "avg":
                cols[f"{p}s"] = f"sum({value})"
                cols[f"{p}n"] = f"count({value})"
            elif name in ("min", "max"):
                cols[f"{p}{name}"] = f"{name}({value})"
                if name == "max" and pa.types.is_floating(t):
                    # the operators' state: the largest number, and whether a NaN was seen
                    # (NaN when the group holds nothing else, NULL when nothing at all)
                    cols[f"{p}max"] = (
                        f"coalesce(max({value}) FILTER (WHERE NOT isnan({value})), max({value}))"
                    )
                    cols[f"{p}nan"] = f"bool_or(isnan({value}))"
            elif name in _MOMENTS:
                x = f"CAST({value} AS DOUBLE)"
                cols[f"{p}n"] = f"count({x})"
                cols[f"{p}mean"] = f"coalesce(avg({x}), 0.0)"
                cols[f"{p}m2"] = f"coalesce(var_pop({x}) * count({x}), 0.0)"
            elif name == "corr":
                y = f"CAST({value} AS DOUBLE)"
                x = f"CAST({self._arg(spec, rows, 1)[0]} AS DOUBLE)"
                # each side NULL unless both are there (the pairs corr counts): plain
                # aggregates of these, not six FILTER clauses (q9: 129 -> 88 ms a task)
                px = f"(CASE WHEN {y} IS NOT NULL THEN {x} END)"
                py = f"(CASE WHEN {x} IS NOT NULL THEN {y} END)"
                n = f"count({px})"
                cols[f"{p}n"] = n
                cols[f"{p}mx"] = f"coalesce(avg({px}), 0.0)"
                cols[f"{p}my"] = f"coalesce(avg({py}), 0.0)"
                cols[f"{p}m2x"] = f"coalesce(var_pop({px}) * {n}, 0.0)"
                cols[f"{p}m2y"] = f"coalesce(var_pop({py}) * {n}, 0.0)"
                cols[f"{p}cxy"] = f"coalesce(covar_pop({y}, {x}) * {n}, 0.0)"
            else:
                raise Unsupported(f"partial {name}")
        return cols

    def _final(self, node: lp.Aggregate, rows: pa.Schema) -> dict[str, str]:
        cols: dict[str, str] = {}
        for spec in node.aggregates:
            i = node.aggregates.index(spec)
            p, name = f"{_P}{i}_", spec.agg.name
            if name == "count":
                cols[spec.name] = f"coalesce(sum({q(p + 'n')}), 0)"
            elif name == "sum":
                cols[spec.name] = f"sum({q(p + 'sum')})"
            elif name == "avg":
                cols[spec.name] = (
                    f"CAST(sum({q(p + 's')}) AS DOUBLE) / nullif(sum({q(p + 'n')}), 0)"
                )
            elif name in ("min", "max"):
                value = f"{name}({q(p + name)})"
                if name == "max" and _is_float_arg(spec, rows):
                    value = f"CASE WHEN bool_or({q(p + 'nan')}) THEN 'NaN'::DOUBLE ELSE {value} END"
                cols[spec.name] = value
            else:
                raise Unsupported(f"final {name}")
        return cols

    def _raw_final(self, node: lp.Aggregate, rows: pa.Schema) -> dict[str, str]:
        """Raw-row states (DISTINCT, quantiles): the whole aggregate over the state columns."""
        cols: dict[str, str] = {}
        for i, spec in enumerate(node.aggregates):
            agg, name = spec.agg, spec.agg.name
            if agg.arg is None:
                cols[spec.name] = "count(*)"
                continue
            args = [q(f"{_P}{i}")]
            if name == "corr":
                args.append(q(f"{_P}{i}b"))
            elif name in ("arg_min", "arg_max"):
                raise Unsupported(name)
            else:
                args += [self._expr(e) for e in agg.extra_args]
            distinct = "DISTINCT " if agg.distinct else ""
            cols[spec.name] = f"{name}({distinct}{', '.join(args)})"
        return cols

    def _expr(self, expr: Expr | None) -> str:
        assert expr is not None
        try:
            return to_sql(expr)
        except Exception as exc:
            raise Unsupported(f"expression {expr!r}") from exc


def _row_range(path: str, row_groups: tuple[int, int]) -> tuple[int, int]:
    """The file's row numbers (first, stop) that row groups ``row_groups`` hold, from its
    footer; :class:`Unsupported` when it cannot be read or has not that many row groups (the
    operators then name what is wrong), or holds a column DuckDB's row number would shadow."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise Unsupported(f"cannot read the footer of {path!r}") from exc
    start, stop = row_groups
    if stop > meta.num_row_groups:
        raise Unsupported(f"{path!r} has {meta.num_row_groups} row groups, not {stop}")
    if "file_row_number" in meta.schema.names:
        raise Unsupported("a column named file_row_number")
    counts = [meta.row_group(i).num_rows for i in range(stop)]
    return sum(counts[:start]), sum(counts)


def _one_parquet_read(node: lp.Node) -> list[lp.Scan] | None:
    """The Parquet scans ``node`` reads as one ``read_parquet`` (a scan, or a union of scans
    alike but for their files, each read whole), else None."""
    if isinstance(node, lp.Scan):
        return [node] if node.format == "parquet" else None
    scans = _parquet_reads(node)
    # a range is of one file's row numbers: files read by ranges are read one at a time
    return scans if scans is not None and all(s.row_groups is None for s in scans) else None


_ORDER_FREE = (lp.Scan, lp.Input, lp.Filter, lp.Project, lp.Map, lp.Union, lp.Join, lp.Aggregate)


def _order_free(node: lp.Node) -> bool:
    """Whether no operator in ``node`` depends on the order rows arrive in: a limit without
    a sort takes the first rows, and a position numbered by ``row_number() OVER ()`` (a
    sort's or top-n's ties) counts them in arrival order, so DuckDB must keep that order
    under them (an outside tester's aggregate over a LIMIT ... OFFSET counted other rows
    each run on two threads once it did not)."""
    if isinstance(node, lp.Aggregate) and any(
        s.agg.name in ("arg_min", "arg_max") for s in node.aggregates
    ):
        return False  # ties go to the first row
    return isinstance(node, _ORDER_FREE) and all(_order_free(k) for k in lp.children(node))


def _parquet_reads(node: lp.Node) -> list[lp.Scan] | None:
    """A union of Parquet scans alike but for their files and row-group ranges (a task's
    part cut by row groups), else None: read one file at a time (a range is of one file's
    row numbers), each row's position still read with it (``file_row_number`` after the
    union's files before it), not numbered by a window over the whole input."""
    if not isinstance(node, lp.Union):
        return None
    scans = [i for i in node.inputs if isinstance(i, lp.Scan)]
    if len(scans) == len(node.inputs) and all(
        s.format == "parquet"
        and (s.columns, s.predicate, s.schema)
        == (scans[0].columns, scans[0].predicate, scans[0].schema)
        for s in scans
    ):
        return scans
    return None


def _is_raw(node: lp.Aggregate) -> bool:
    return any(s.agg.distinct or s.agg.name in _HOLISTIC for s in node.aggregates)


def _is_float_arg(spec: lp.AggSpec, rows: pa.Schema) -> bool:
    from platform_core.expr import evaluate

    assert spec.agg.arg is not None
    return bool(pa.types.is_floating(evaluate(spec.agg.arg, rows.empty_table()).type))
