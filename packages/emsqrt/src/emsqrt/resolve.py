"""Output schemas of logical nodes, checked: unknown columns and type mismatches fail here,
before anything runs, with the column list and the closest name."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from platform_core import Field, PlatformError, Schema, infer_schema
from platform_core.csv import CsvError, sniff_csv_schema
from platform_core.expr import Expr, check
from platform_core.inference import DEFAULT_SAMPLE_BYTES

from . import plan as lp
from .errors import InputFileError, PlanError
from .joinkeys import join_key_type, joinable, right_output_names

__all__ = [
    "SchemaResolver",
    "agg_output_type",
    "arrow_scan_schema",
    "bind_scan_schemas",
    "require_columns",
    "right_output_names",  # defined in emsqrt.joinkeys; importable here as before
]


def _closest(name: str, names: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f'; did you mean "{match[0]}"?' if match else ""


def require_columns(names: Iterable[str], schema: pa.Schema, where: str) -> None:
    """Raise ``PlanError`` naming the first unknown column, the closest match and the columns."""
    for name in names:
        if name not in schema.names:
            raise PlanError(
                f'{where}: column "{name}" not found{_closest(name, schema.names)} '
                f"(columns: {', '.join(schema.names)})"
            )


_field = functools.lru_cache(maxsize=4096)(Field.from_arrow)
"""An Arrow field as the platform's, remembered by value (``pa.Field`` hashes and compares by
name, type and nullability): a plan's expressions are checked against the same few schemas
over and over, and converting their fields each time was a third of planning a TPC-H query.
By field, not by schema: 4096 fields stay small, where 512 schemas of 2000 columns held
500 MiB (found from outside)."""


def _platform(schema: pa.Schema) -> Schema:
    return Schema(_field(f) for f in schema)


def check_expr(
    expr: Expr, schema: pa.Schema, where: str, *, aggregates: bool = False
) -> pa.DataType:
    """The expression's Arrow result type; a checker error becomes a ``PlanError``."""
    try:
        return check(expr, _platform(schema), aggregates=aggregates).to_arrow()
    except PlatformError as exc:
        raise PlanError(f"{where}: {exc.message}") from exc


def agg_output_type(spec: lp.AggSpec, schema: pa.Schema, where: str) -> pa.DataType:
    """The type we produce: as the checker says, which is DuckDB's type as DuckDB exports it
    to Arrow (an integer or boolean SUM is its 128-bit HUGEINT: decimal128(38, 0))."""
    return check_expr(spec.agg, schema, where, aggregates=True)


def arrow_scan_schema(scan: lp.Scan) -> pa.Schema:
    """The file's full schema: given, or inferred from a sample; string_view becomes string,
    and a dictionary (categorical) column its values' type (see ``decoded``)."""
    return decoded(_file_schema(scan))


def decoded(schema: pa.Schema) -> pa.Schema:
    """``schema`` with dictionary columns as their values' type. Scans decode them: each file
    (each row group) has its own dictionary, which sorts, joins and merged aggregates cannot
    mix, and SQL engines treat a categorical column as the plain values."""
    if not any(pa.types.is_dictionary(f.type) for f in schema):
        return schema
    return pa.schema(
        [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema],
        metadata=schema.metadata,
    )


def _file_schema(scan: lp.Scan) -> pa.Schema:
    if scan.schema is not None:
        return scan.schema.to_arrow()
    path = Path(scan.path)
    if not path.exists():
        raise InputFileError(f"input file {scan.path} does not exist; check the scan's source path")
    try:
        if scan.format == "parquet":
            import pyarrow.parquet as pq

            return _platform(pq.read_schema(path)).to_arrow()
        if scan.format == "csv":
            return _csv_schema(path, scan.delimiter)
        return infer_schema(path, format="jsonl").to_arrow()
    except PlatformError as exc:
        raise InputFileError(f"cannot read the schema of {scan.path}: {exc.message}") from exc
    except OSError as exc:
        raise InputFileError(f"cannot read {scan.path}: {exc}") from exc


def _csv_schema(path: Path, delimiter: str) -> pa.Schema:
    """Types sniffed from the first MiB as DuckDB's ``read_csv`` sniffs them, by the platform's
    one CSV reader (``platform_core.csv``), so the scan reads what DuckDB would."""
    try:
        return sniff_csv_schema(path, delimiter=delimiter, sample_bytes=DEFAULT_SAMPLE_BYTES)
    except CsvError as exc:
        raise InputFileError(f"cannot read the schema of {path}: {exc.message}") from exc


def bind_scan_schemas(node: lp.Node) -> lp.Node:
    """The plan with every scan's schema filled in (inferred once, before the run starts, so
    inference is neither repeated nor counted inside the run)."""
    from dataclasses import replace

    if isinstance(node, lp.Scan) and node.schema is None:
        return replace(node, schema=Schema.from_arrow(arrow_scan_schema(node)))
    kids = lp.children(node)
    return lp.replace_children(node, tuple(bind_scan_schemas(c) for c in kids)) if kids else node


class SchemaResolver:
    """Computes (and caches) each node's output schema, checking it on the way."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[lp.Node, pa.Schema]] = {}

    def _final_source(self, node: lp.Aggregate, states: pa.Schema) -> pa.Schema:
        """The schema a final aggregate's states were computed from (checked against them)."""
        if node.state_of is None:
            raise PlanError("aggregate: a final aggregate needs state_of, the partial's input")
        source = node.state_of.to_arrow()
        missing = _missing_state(node, states, source)
        if missing:
            raise PlanError(
                f"aggregate: the final aggregate's input lacks the partial states {missing}; "
                "feed it the output of the same aggregate in mode 'partial'"
            )
        return source

    def schema(self, node: lp.Node) -> pa.Schema:
        hit = self._cache.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        out = self._compute(node)
        self._cache[id(node)] = (node, out)
        return out

    def _compute(self, node: lp.Node) -> pa.Schema:
        if isinstance(node, lp.Scan):
            full = arrow_scan_schema(node)
            if node.columns is None:
                return full
            require_columns(node.columns, full, f"scan {node.path}")
            return pa.schema([full.field(c) for c in node.columns])
        if isinstance(node, lp.Input):
            return node.schema.to_arrow()
        if isinstance(node, lp.Filter):
            s = self.schema(node.input)
            t = check_expr(node.predicate, s, "filter")
            if not (pa.types.is_boolean(t) or pa.types.is_null(t)):
                raise PlanError(f"filter: the predicate must be boolean, it is {t}")
            return s
        if isinstance(node, lp.Project):
            s = self.schema(node.input)
            require_columns([i for _, i in node.columns], s, "project")
            outs = [o for o, _ in node.columns]
            if len(set(outs)) != len(outs):
                raise PlanError(f"project: duplicate output names in {outs}")
            return pa.schema([pa.field(o, s.field(i).type) for o, i in node.columns])
        if isinstance(node, lp.Map):
            s = self.schema(node.input)
            for name, expr in node.columns:
                t = check_expr(expr, s, f"map {name!r}")
                field = pa.field(name, t)
                idx = s.get_field_index(name)
                s = s.set(idx, field) if idx >= 0 else s.append(field)
            return s
        if isinstance(node, lp.Sort | lp.TopK):
            s = self.schema(node.input)
            require_columns([k.column for k in node.keys], s, "sort")
            if isinstance(node, lp.TopK):
                if node.n < 0:
                    raise PlanError(f"top-k: n must be >= 0, got {node.n}")
                require_columns(node.per, s, "top-k per group")
            return s
        if isinstance(node, lp.Aggregate):
            return self._aggregate_schema(node)
        if isinstance(node, lp.Join):
            return join_schema(node, self.schema(node.left), self.schema(node.right))
        if isinstance(node, lp.Limit):
            if node.n < 0 or node.offset < 0:
                raise PlanError(f"limit: n and offset must be >= 0, got {node.n}, {node.offset}")
            return self.schema(node.input)
        if isinstance(node, lp.Union):
            return self._union_schema(node)
        if isinstance(node, lp.Sink):
            return self.schema(node.input)
        if isinstance(node, lp.PyMap):
            self.schema(node.input)
            return node.schema.to_arrow()
        raise PlanError(f"no schema rule for operator {type(node).__name__}")

    def _aggregate_schema(self, node: lp.Aggregate) -> pa.Schema:
        """An aggregate's output: group keys and aggregates (full, final), or its partial
        states; a final aggregate reads the partial states of its input."""
        s = self.schema(node.input)
        if node.mode not in lp.AGGREGATE_MODES:
            raise PlanError(
                f"aggregate: mode must be one of {', '.join(lp.AGGREGATE_MODES)}, got {node.mode!r}"
            )
        if node.mode == "final":
            s = self._final_source(node, s)
        require_columns(node.group_by, s, "aggregate group_by")
        out = [s.field(k) for k in node.group_by]
        nested = [f for f in out if pa.types.is_nested(f.type)]
        if nested:  # Arrow's hash aggregate has no such keys: say so before anything runs
            f = nested[0]
            raise PlanError(
                f"aggregate: cannot group by (or take distinct rows of) column {f.name!r} of "
                f"type {f.type}: a group key is a number, string, boolean or date/time; "
                "leave it out of the keys (select the columns to group by first)"
            )
        for spec in node.aggregates:
            out.append(pa.field(spec.name, agg_output_type(spec, s, f"aggregate {spec.name!r}")))
        names = [f.name for f in out]
        if len(set(names)) != len(names):
            raise PlanError(f"aggregate: duplicate output names in {names}")
        if node.mode == "partial":
            from .physical.aggregate import state_schema

            return state_schema(node, s)
        return pa.schema(out)

    def _union_schema(self, node: lp.Union) -> pa.Schema:
        """Inputs of the same column names, in order; their types unified."""
        if not node.inputs:
            raise PlanError("union: needs at least one input")
        schemas = [self.schema(i) for i in node.inputs]
        first = schemas[0]
        for other in schemas[1:]:
            if other.names != first.names:
                raise PlanError(
                    f"union: inputs must have the same columns in order: {first.names} vs "
                    f"{other.names}"
                )
        try:
            return pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise PlanError(f"union: column types do not unify: {exc}") from exc


def _missing_state(node: lp.Aggregate, states: pa.Schema, source: pa.Schema) -> list[str]:
    from .physical.aggregate import state_schema

    expected = state_schema(node, source)
    return [n for n in expected.names if n not in states.names]


def join_schema(node: lp.Join, left: pa.Schema, right: pa.Schema) -> pa.Schema:
    """Left columns, then the right's non-key columns (``_right`` on a clash)."""
    if node.how not in lp.JOIN_TYPES:
        raise PlanError(f"join: unknown type {node.how!r} (known: {', '.join(lp.JOIN_TYPES)})")
    if not node.left_keys or len(node.left_keys) != len(node.right_keys):
        raise PlanError(
            f"join: needs the same number of left and right keys (>= 1), got "
            f"{list(node.left_keys)} and {list(node.right_keys)}"
        )
    require_columns(node.left_keys, left, "join left key")
    require_columns(node.right_keys, right, "join right key")
    for lk, rk in zip(node.left_keys, node.right_keys, strict=True):
        lt, rt = left.field(lk).type, right.field(rk).type
        if not joinable(lt, rt):
            raise PlanError(f"join: key {lk} ({lt}) cannot be compared with {rk} ({rt})")
    if node.how in ("semi", "anti"):
        return left
    out = list(left)
    if node.how in ("right", "full"):  # the key column holds the right's keys too
        for lk, rk in zip(node.left_keys, node.right_keys, strict=True):
            i = left.get_field_index(lk)
            out[i] = out[i].with_type(join_key_type(left.field(lk).type, right.field(rk).type))
    for name, new in right_output_names(node, left, right):
        out.append(pa.field(new, right.field(name).type))
    return pa.schema(out)
