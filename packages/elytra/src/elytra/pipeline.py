"""The fluent API: a ``Pipeline`` is a lazy emsqrt logical plan plus the sources it reads.

Transforms return a new pipeline and check the plan as they go (an unknown column names the
closest one, a type error says which expression), so mistakes surface before any task runs.
Actions (``collect``, ``count``, ``write``, ...) hand the plan to the session's driver.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import pyarrow as pa

from emsqrt import PlanError
from emsqrt import plan as lp
from emsqrt.planning import SchemaResolver
from platform_core import PlatformError, Schema
from platform_core.expr import Aggregate as AggExpr
from platform_core.expr import Expr, parse, to_sql, walk

from .errors import PipelineError
from .postagg import HIDDEN_PREFIX, split_aggregates
from .sources import Source

if TYPE_CHECKING:
    from .jobs import Job, JobRecorder
    from .remote import RemoteJob

__all__ = ["GroupedPipeline", "Pipeline", "PipelineSession", "Runner"]

SchemaLike: TypeAlias = pa.Schema | Mapping[str, str]
"""An output schema: Arrow's, or column name to a type name (``{"total": "f64"}``)."""


class Runner(Protocol):
    """What a pipeline's actions ask of the driver that runs them: ``elytra.driver.Driver`` on
    this machine, ``elytra.remote.RemoteDriver`` on a platform. Both take a ``Pipeline``, so
    this module names them only through this protocol (no import circle)."""

    def collect(self, p: Pipeline) -> pa.Table: ...

    def submit(
        self,
        p: Pipeline,
        *,
        owner: str | None = None,
        recorder: JobRecorder | None = None,
        timeout: float | None = None,
    ) -> Job | RemoteJob: ...

    def explain(self, p: Pipeline) -> str: ...

    def write_dataset(self, p: Pipeline, name: str) -> dict[str, Any]: ...

    def write_file(self, p: Pipeline, path: str, format: str | None) -> dict[str, Any]: ...


class PipelineSession(Protocol):
    """What a pipeline needs of the session that made it (``elytra.Session``, which imports
    this module): the driver its actions go to, and the recorder its jobs report to."""

    @property
    def driver(self) -> Runner: ...

    @property
    def recorder(self) -> JobRecorder | None: ...


_ALIAS = re.compile(r"^(.*\S)\s+AS\s+(\"[^\"]+\"|\w+)\s*$", re.IGNORECASE | re.DOTALL)


def _expr(value: str | Expr, where: str) -> Expr:
    if isinstance(value, Expr):
        return value
    if not isinstance(value, str):
        raise PipelineError(f"{where}: expected an expression string or builder, got {value!r}")
    try:
        return parse(value)
    except PlatformError as exc:
        raise PipelineError(f"{where}: {exc.message}") from None


def _table_of(out: Any) -> pa.Table:
    if isinstance(out, pa.Table):
        return out
    if isinstance(out, pa.RecordBatch):
        return pa.Table.from_batches([out])
    if isinstance(out, dict):
        return pa.table(out)
    raise TypeError(f"returned {type(out).__name__}, not a RecordBatch, Table or dict")


def _arrow_schema(schema: SchemaLike) -> pa.Schema:
    if isinstance(schema, pa.Schema):
        return schema
    try:
        from platform_core import parse_type

        return pa.schema([pa.field(n, parse_type(t).to_arrow()) for n, t in schema.items()])
    except (PlatformError, AttributeError, TypeError) as exc:
        raise PipelineError(f"schema: {exc}; give a pyarrow.Schema or {{name: type}}") from None


def _expr_name(e: Expr) -> str:
    """The output name of an expression given no ``AS``: its SQL text as a word."""
    return re.sub(r"\W+", "_", to_sql(e)).strip("_") or "expr"


def _key_texts(keys: tuple[lp.SortKey, ...]) -> list[str]:
    return [
        f"{k.column}{' DESC' if k.descending else ''}{' NULLS FIRST' if k.nulls_first else ''}"
        for k in keys
    ]


def _count(n: object) -> bool:
    """Whether ``n`` is a row count: an int (not a bool) in [0, 2**63)."""
    return isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 63


def _sort_key(key: str | lp.SortKey, descending: bool) -> lp.SortKey:
    if isinstance(key, lp.SortKey):
        return key
    words = key.split()
    if not words:
        raise PipelineError("sort: an empty sort key; give a column name such as 'amount DESC'")
    upper = [w.upper() for w in words[1:]]
    known = {"ASC", "DESC", "NULLS", "FIRST", "LAST"}
    if any(w not in known for w in upper):
        raise PipelineError(
            f"sort: cannot read {key!r}; write 'column', 'column DESC' or 'column DESC NULLS FIRST'"
        )
    desc = "DESC" in upper or (descending and "ASC" not in upper)
    return lp.SortKey(words[0].strip('"'), desc, "FIRST" in upper)


@dataclass(frozen=True)
class Pipeline:
    """A lazy pipeline; nothing runs until an action."""

    session: PipelineSession
    node: lp.Node
    sources: Mapping[str, Source]
    spec: Mapping[str, Any] | None = None
    """The pipeline's JSON form (``elytra.spec``) so far, or None once it holds what JSON
    cannot carry (a Python function, local files or an Arrow table)."""

    # --- building -------------------------------------------------------------------------

    @property
    def schema(self) -> pa.Schema:
        """The output schema (checked: unknown columns and type errors raise here)."""
        try:
            return SchemaResolver().schema(self.node)
        except PlanError as exc:
            raise PipelineError(exc.message) from None

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def _then(
        self, node: lp.Node, *others: Pipeline, step: Mapping[str, Any] | None = None
    ) -> Pipeline:
        sources = dict(self.sources)
        for other in others:
            if other.session is not self.session:
                raise PipelineError("pipelines of two sessions cannot be combined")
            sources.update(other.sources)
        spec = None
        if self.spec is not None and step is not None and all(o.spec for o in others):
            spec = {"source": self.spec["source"], "steps": [*self.spec["steps"], dict(step)]}
        out = Pipeline(self.session, node, sources, spec)
        _ = out.schema  # check now, not when a task runs
        return out

    def to_spec(self) -> dict[str, Any]:
        """The JSON form a platform's ``/api/jobs`` accepts; PipelineError if it has none."""
        if self.spec is None:
            raise PipelineError(
                "this pipeline holds a Python function, local files or an Arrow table, which "
                "only run embedded (elytra.connect()), not as JSON sent to a platform"
            )
        return {"source": dict(self.spec["source"]), "steps": list(self.spec["steps"])}

    def filter(self, predicate: str | Expr) -> Pipeline:
        """Keep the rows where ``predicate`` is true: ``filter("amount > 1000")``."""
        e = _expr(predicate, "filter")
        return self._then(lp.Filter(self.node, e), step={"filter": to_sql(e)})

    def select(self, *columns: str) -> Pipeline:
        """Keep these columns in this order; ``"a AS b"`` renames."""
        if not columns:
            raise PipelineError("select: name at least one column (a table has one or more)")
        pairs = []
        for c in columns:
            m = _ALIAS.match(c)
            src, out = (m.group(1), m.group(2).strip('"')) if m else (c, c)
            pairs.append((out, src.strip('"')))
        return self._then(lp.Project(self.node, tuple(pairs)), step={"select": list(columns)})

    def with_columns(self, **exprs: str | Expr) -> Pipeline:
        """Add or replace computed columns: ``with_columns(total="price * qty")``."""
        cols = tuple((n, _expr(e, f"with_columns {n!r}")) for n, e in exprs.items())
        step = {"with_columns": {n: to_sql(e) for n, e in cols}}
        return self._then(lp.Map(self.node, cols), step=step)

    def drop(self, *columns: str) -> Pipeline:
        names = self.columns
        missing = [c for c in columns if c not in names]
        if missing:
            from platform_core._suggest import did_you_mean

            raise PipelineError(f"drop: no column {missing[0]!r}{did_you_mean(missing[0], names)}")
        kept = tuple((c, c) for c in names if c not in columns)
        return self._then(lp.Project(self.node, kept), step={"drop": list(columns)})

    def rename(self, mapping: Mapping[str, str] | None = None, **renames: str) -> Pipeline:
        """Rename columns: ``rename({"old": "new"})`` or ``rename(old="new")``."""
        table = {**(mapping or {}), **renames}
        names = self.columns
        for old in table:
            if old not in names:
                from platform_core._suggest import did_you_mean

                raise PipelineError(f"rename: no column {old!r}{did_you_mean(old, names)}")
        renamed = tuple((table.get(c, c), c) for c in names)
        return self._then(lp.Project(self.node, renamed), step={"rename": table})

    def group_by(self, *keys: str) -> GroupedPipeline:
        names = self.columns
        for k in keys:
            if k not in names:
                from platform_core._suggest import did_you_mean

                raise PipelineError(f"group_by: no column {k!r}{did_you_mean(k, names)}")
        return GroupedPipeline(self, tuple(keys))

    def agg(self, *aggs: str | Expr, **named: str | Expr) -> Pipeline:
        """Aggregate the whole input into one row."""
        return GroupedPipeline(self, ()).agg(*aggs, **named)

    def sort(self, *keys: str | lp.SortKey, descending: bool = False) -> Pipeline:
        """Sort by keys: ``sort("a", "b DESC")``; NULLs last unless ``NULLS FIRST``."""
        if not keys:
            raise PipelineError("sort: give at least one column")
        sort_keys = tuple(_sort_key(k, descending) for k in keys)
        return self._then(lp.Sort(self.node, sort_keys), step={"sort": _key_texts(sort_keys)})

    def limit(self, n: int, offset: int = 0) -> Pipeline:
        if not (_count(n) and _count(offset)):
            raise PipelineError(
                f"limit: n and offset are integers >= 0 (below 2**63), got {n!r}, {offset!r}"
            )
        return self._then(lp.Limit(self.node, n, offset), step={"limit": n, "offset": offset})

    def top_k(
        self,
        n: int,
        *keys: str | lp.SortKey,
        descending: bool = False,
        per: str | Iterable[str] = (),
    ) -> Pipeline:
        """The first ``n`` rows in ``keys`` order: ``top_k(10, "total DESC")``; with ``per``,
        the first ``n`` of each group: ``top_k(2, "v3 DESC", per="id6")`` (also spelled
        ``group_by("id6").top_k(2, "v3 DESC")``)."""
        if not _count(n):
            raise PipelineError(f"top_k: n is an integer >= 0 (below 2**63), got {n!r}")
        if not keys:
            raise PipelineError("top_k: give at least one column to order by")
        groups = (per,) if isinstance(per, str) else tuple(per)
        sort_keys = tuple(_sort_key(k, descending) for k in keys)
        step: dict[str, Any] = {"top_k": n, "by": _key_texts(sort_keys)}
        if groups:
            step["per"] = list(groups)
        return self._then(lp.TopK(self.node, sort_keys, n, groups), step=step)

    def join(
        self,
        other: Pipeline,
        on: str | Iterable[str] | None = None,
        *,
        left_on: str | Iterable[str] | None = None,
        right_on: str | Iterable[str] | None = None,
        how: str = "inner",
    ) -> Pipeline:
        """Equi-join (``inner``, ``left``, ``right``, ``full``, ``semi``, ``anti``) on key columns."""

        def keys(v: str | Iterable[str] | None) -> tuple[str, ...]:
            return (v,) if isinstance(v, str) else tuple(v or ())

        lk, rk = keys(left_on or on), keys(right_on or on)
        if not lk or len(lk) != len(rk):
            raise PipelineError("join: give on=, or left_on= and right_on= of the same length")
        if how not in lp.JOIN_TYPES:
            raise PipelineError(f"join: how is one of {', '.join(lp.JOIN_TYPES)}, not {how!r}")
        step = {"join": other.spec, "left_on": list(lk), "right_on": list(rk), "how": how}
        return self._then(lp.Join(self.node, other.node, lk, rk, how), other, step=step)  # type: ignore[arg-type]

    def distinct(self) -> Pipeline:
        """Each distinct row once."""
        return self._then(lp.Aggregate(self.node, tuple(self.columns), ()), step={"distinct": True})

    def union(self, *others: Pipeline) -> Pipeline:
        """UNION ALL: rows of this and the others (same column names, in order)."""
        step = {"union": [o.spec for o in others]}
        return self._then(lp.Union((self.node, *(o.node for o in others))), *others, step=step)

    def map_batches(
        self, fn: Callable[[pa.RecordBatch], Any], *, schema: SchemaLike | None = None
    ) -> Pipeline:
        """Apply ``fn`` to each batch (a RecordBatch in; a RecordBatch, Table or dict of
        columns out), vectorised. ``schema`` is its output; without it, ``fn`` is called once
        on an empty batch to learn it."""
        if schema is None:
            try:
                probe = fn(pa.RecordBatch.from_pylist([], schema=self.schema))
                schema = _table_of(probe).schema
            except Exception as exc:
                raise PipelineError(
                    f"map_batches: could not learn the output schema by calling the function "
                    f"on an empty batch ({type(exc).__name__}: {exc}); pass schema="
                ) from None
        return self._py(fn, schema, "batches")

    def map(
        self, fn: Callable[[dict[str, Any]], dict[str, Any]], *, schema: SchemaLike | None = None
    ) -> Pipeline:
        """Apply ``fn`` to each row (a dict in, a dict out). Rows are Python objects: prefer
        ``with_columns`` or ``map_batches`` on large data. Without ``schema``, it is learnt
        from the first row (which runs the pipeline up to here for one row)."""
        if schema is None:
            schema = self._learn(lambda row: [fn(row)], "map")
        return self._py(fn, schema, "rows")

    def flat_map(
        self,
        fn: Callable[[dict[str, Any]], Iterable[dict[str, Any]]],
        *,
        schema: SchemaLike | None = None,
    ) -> Pipeline:
        """Apply ``fn`` to each row, which gives zero or more rows."""
        if schema is None:
            schema = self._learn(lambda row: list(fn(row)), "flat_map")
        return self._py(lambda row: list(fn(row)), schema, "flat")

    def _learn(self, fn: Callable[[dict[str, Any]], list[dict[str, Any]]], what: str) -> SchemaLike:
        """The output schema of a row function, from its output on the first 100 rows."""
        rows: list[dict[str, Any]] = []
        try:
            for row in self.take(100):
                rows += fn(row)
        except Exception as exc:
            raise PipelineError(f"{what}: the function raised on an early row: {exc!r}") from None
        if not rows:
            raise PipelineError(
                f"{what}: cannot learn the output schema from no rows; pass schema="
            )
        learnt = pa.Table.from_pylist(rows).schema
        fields = []
        for f in learnt:
            if pa.types.is_null(f.type):  # all None so far: the input's type if it has one
                if f.name not in self.schema.names:
                    raise PipelineError(
                        f"{what}: column {f.name!r} was None in every early row; pass schema="
                    )
                f = self.schema.field(f.name)
            fields.append(f)
        return pa.schema(fields)

    def _py(self, fn: Callable[..., Any], schema: SchemaLike, mode: str) -> Pipeline:
        import cloudpickle

        arrow = _arrow_schema(schema)
        try:
            blob = cloudpickle.dumps(fn)
        except Exception as exc:
            raise PipelineError(
                f"the function cannot be pickled to run in workers: {exc}"
            ) from None
        name = getattr(fn, "__qualname__", type(fn).__name__)
        try:
            declared = Schema.from_arrow(arrow)
        except PlatformError as exc:
            raise PipelineError(f"the function's output schema: {exc.message}") from None
        node = lp.PyMap(self.node, blob, declared, mode, name)  # type: ignore[arg-type]
        return self._then(node)

    def repartition(self, n: int) -> Pipeline:
        """Cut the sources into about ``n`` tasks (default: by ``ELYTRA_TASK_BYTES``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PipelineError(f"repartition: n is an integer >= 1, got {n!r}")
        from dataclasses import replace as _replace

        sources = {k: _replace(v, partitions=n) for k, v in self.sources.items()}
        return Pipeline(self.session, self.node, sources, self.spec)

    # --- actions ----------------------------------------------------------------------------

    def collect(self) -> pa.Table:
        """Run the pipeline and return its rows as an Arrow table."""
        return self.session.driver.collect(self)

    def submit(self, *, owner: str | None = None, timeout: float | None = None) -> Job | RemoteJob:
        """Start the pipeline as a background job: ``status()``, ``wait()``, ``cancel()``,
        ``result()``; its record goes to the session's recorder: Elkyn ``/jobs/{id}`` of the
        platform, or of the home when embedded (``HomeRecorder``)."""
        return self.session.driver.submit(
            self, owner=owner, recorder=self.session.recorder, timeout=timeout
        )

    def reduce(self, fn: Callable[[Any, dict[str, Any]], Any], initial: Any) -> Any:
        """Fold the rows in the driver: ``fn(acc, row)`` from ``initial``."""
        acc = initial
        for batch in self.collect().to_batches():
            for row in batch.to_pylist():
                acc = fn(acc, row)
        return acc

    def count(self) -> int:
        counted = self.agg("count(*) AS n").collect()
        return int(counted.column("n")[0].as_py())

    def take(self, n: int = 20) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.limit(n).collect().to_pylist()
        return rows

    def to_pandas(self) -> Any:
        return self.collect().to_pandas()

    def show(self, n: int = 20) -> None:
        """Print the first ``n`` rows."""
        print(self.limit(n).collect().to_string(preview_cols=0))

    def explain(self) -> str:
        """The plan: stages, their tasks, what each reads, and the backend they run on."""
        return self.session.driver.explain(self)

    def write(self, target: str | os.PathLike[str], format: str | None = None) -> dict[str, Any]:
        """Write the rows: to a new version of lake dataset ``target`` (a bare name such as
        ``"daily_totals"``), or to a Parquet or CSV file (a path, or with ``format=``).
        Either way atomically: nothing half-written is ever visible."""
        text = str(target)
        if format is None and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
            return self.session.driver.write_dataset(self, text)
        return self.session.driver.write_file(self, text, format)


@dataclass(frozen=True)
class GroupedPipeline:
    """``pipeline.group_by(keys)``, waiting for ``agg(...)``."""

    parent: Pipeline
    keys: tuple[str, ...]

    def top_k(self, n: int, *keys: str | lp.SortKey, descending: bool = False) -> Pipeline:
        """The first ``n`` rows of each group in ``keys`` order (see ``Pipeline.top_k``)."""
        return self.parent.top_k(n, *keys, descending=descending, per=self.keys)

    def agg(self, *aggs: str | Expr, **named: str | Expr) -> Pipeline:
        """``agg("sum(amount) AS total", n="count(*)")``: one output column each. An output
        may be an expression over aggregates and group keys, as in SQL:
        ``agg("max(v1) - min(v2) AS r")`` (see ``postagg``)."""
        items: list[tuple[str | None, str | Expr]] = [(None, a) for a in aggs]
        items += list(named.items())
        if not items and not self.keys:
            raise PipelineError("agg: give at least one aggregate, e.g. 'count(*) AS n'")
        outputs: list[tuple[str, Expr]] = []
        for name, value in items:
            text = value
            if name is None and isinstance(value, str):
                m = _ALIAS.match(value)
                if m:
                    text, name = m.group(1), m.group(2).strip('"')
            e = _expr(text, "agg")
            if not any(isinstance(n, AggExpr) for n in walk(e)):
                raise PipelineError(
                    f"agg: {value!r} is not an aggregate and holds none (count, sum, avg, min, max, ...)"
                )
            if name is None:
                name = lp.agg_name(e) if isinstance(e, AggExpr) else _expr_name(e)
            outputs.append((name, e))
        texts = [f'{to_sql(e)} AS "{n}"' for n, e in outputs]
        step: dict[str, Any] = (
            {"group_by": list(self.keys), "agg": texts} if self.keys else {"agg": texts}
        )
        if all(isinstance(e, AggExpr) for _, e in outputs):
            specs = tuple(lp.AggSpec(n, e) for n, e in outputs)  # type: ignore[arg-type]
            return self.parent._then(lp.Aggregate(self.parent.node, self.keys, specs), step=step)
        # expressions over aggregates: the aggregates under hidden names, then the expressions
        taken: dict[AggExpr, str] = {}
        computed: list[tuple[str, Expr]] = []
        for n, e in outputs:
            if isinstance(e, AggExpr):
                taken.setdefault(e, f"{HIDDEN_PREFIX}{len(taken)}")
            computed.append((n, split_aggregates(e, self.keys, taken, f"agg {n!r}")))
        specs = tuple(lp.AggSpec(hidden, a) for a, hidden in taken.items())
        node: lp.Node = lp.Aggregate(self.parent.node, self.keys, specs)
        staged = tuple((f"{HIDDEN_PREFIX}out_{i}", e) for i, (_, e) in enumerate(computed))
        node = lp.Map(node, staged)
        kept = tuple((k, k) for k in self.keys) + tuple(
            (n, staged[i][0]) for i, (n, _) in enumerate(computed)
        )
        names = [n for n, _ in kept]
        if len(set(names)) != len(names):
            raise PipelineError(f"agg: duplicate output names in {names}")
        return self.parent._then(lp.Project(node, kept), step=step)
