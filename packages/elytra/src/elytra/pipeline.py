"""The fluent API: a ``Pipeline`` is a lazy emsqrt logical plan plus the sources it reads.

Transforms return a new pipeline and check the plan as they go (an unknown column names the
closest one, a type error says which expression), so mistakes surface before any task runs.
Actions (``collect``, ``count``, ``write``, ...) hand the plan to the session's driver.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import pyarrow as pa

from emsqrt import PlanError
from emsqrt import plan as lp
from emsqrt.planning import PlanBuilder
from platform_core import PlatformError, Schema
from platform_core.expr import Expr

from .errors import PipelineError
from .sources import Source

if TYPE_CHECKING:
    from .jobs import Job, JobRecorder
    from .nativesql import NativeSql
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


@contextmanager
def _planning() -> Iterator[None]:
    """emsqrt's PlanError from the builder as elytra's PipelineError (the same message)."""
    try:
        yield
    except PlanError as exc:
        raise PipelineError(exc.message) from None


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


@dataclass(frozen=True)
class Pipeline:
    """A lazy pipeline; nothing runs until an action."""

    session: PipelineSession
    node: lp.Node
    sources: Mapping[str, Source]
    spec: Mapping[str, Any] | None = None
    """The pipeline's JSON form (``elytra.spec``) so far, or None once it holds what JSON
    cannot carry (a Python function, local files or an Arrow table)."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """After an aggregate: each input column one output consumed -> that output
    (``emsqrt.builder.PlanBuilder.col``)."""
    native: NativeSql | None = None
    """A query's own text, which DuckDB runs where the job is one task (``nativesql``):
    only ``session.sql``'s pipeline has it, not one grown from it by more steps."""

    # --- building -------------------------------------------------------------------------
    # Every step is emsqrt's PlanBuilder's (the one implementation of the vocabulary, shared
    # with emsqrt's Pipeline and YAML); this class adds sources, Python functions and actions.

    @property
    def builder(self) -> PlanBuilder:
        """This pipeline's plan as an ``emsqrt.builder.PlanBuilder``."""
        return PlanBuilder(self.node, self.aliases)

    @property
    def schema(self) -> pa.Schema:
        """The output schema (checked: unknown columns and type errors raise here)."""
        with _planning():
            return self.builder.schema

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def _then(
        self, built: PlanBuilder, *others: Pipeline, step: Mapping[str, Any] | None = None
    ) -> Pipeline:
        """The pipeline of ``built`` (already checked by the builder), with the sources of
        ``others``; ``step`` is its JSON form (the builder's unless given)."""
        sources = dict(self.sources)
        for other in others:
            if other.session is not self.session:
                raise PipelineError("pipelines of two sessions cannot be combined")
            sources.update(other.sources)
        step = built.step if step is None else step
        spec = None
        if self.spec is not None and step is not None and all(o.spec for o in others):
            spec = {"source": self.spec["source"], "steps": [*self.spec["steps"], dict(step)]}
        return Pipeline(self.session, built.node, sources, spec, built.aliases)

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
        with _planning():
            return self._then(self.builder.filter(predicate))

    def select(self, *columns: str) -> Pipeline:
        """Keep these columns in this order; ``"a AS b"`` renames."""
        with _planning():
            return self._then(self.builder.select(*columns))

    def with_columns(self, **exprs: str | Expr) -> Pipeline:
        """Add or replace computed columns: ``with_columns(total="price * qty")``."""
        with _planning():
            return self._then(self.builder.with_columns(exprs))

    def drop(self, *columns: str) -> Pipeline:
        with _planning():
            return self._then(self.builder.drop(*columns))

    def rename(self, mapping: Mapping[str, str] | None = None, **renames: str) -> Pipeline:
        """Rename columns: ``rename({"old": "new"})`` or ``rename(old="new")``."""
        with _planning():
            return self._then(self.builder.rename({**(mapping or {}), **renames}))

    def group_by(self, *keys: str) -> GroupedPipeline:
        names = self.columns
        for k in keys:
            if k not in names and k not in self.aliases:
                from platform_core._suggest import did_you_mean

                raise PipelineError(f"group_by: no column {k!r}{did_you_mean(k, names)}")
        return GroupedPipeline(self, tuple(keys))

    def agg(self, *aggs: str | Expr, **named: str | Expr) -> Pipeline:
        """Aggregate the whole input into one row."""
        return GroupedPipeline(self, ()).agg(*aggs, **named)

    def sort(self, *keys: str | lp.SortKey, descending: bool = False) -> Pipeline:
        """Sort by keys: ``sort("a", "b DESC")``; NULLs last unless ``NULLS FIRST``."""
        with _planning():
            return self._then(self.builder.sort(*keys, descending=descending))

    def limit(self, n: int, offset: int = 0) -> Pipeline:
        with _planning():
            return self._then(self.builder.limit(n, offset))

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
        with _planning():
            return self._then(self.builder.top_k(n, *keys, descending=descending, per=per))

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
        with _planning():
            built = self.builder.join(
                other.builder, on, left_on=left_on, right_on=right_on, how=how
            )
        step = {"join": other.spec, **(built.step or {})}
        return self._then(built, other, step=step)

    def distinct(self) -> Pipeline:
        """Each distinct row once."""
        with _planning():
            return self._then(self.builder.distinct())

    def union(self, *others: Pipeline) -> Pipeline:
        """UNION ALL: rows of this and the others (same column names, in order)."""
        with _planning():
            built = self.builder.union(*(o.builder for o in others))
        return self._then(built, *others, step={"union": [o.spec for o in others]})

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
        with _planning():
            built = self.builder.then(node, aliases={})
        return self._then(built)

    def repartition(self, n: int) -> Pipeline:
        """Cut the sources into about ``n`` tasks (default: by ``ELYTRA_TASK_BYTES``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PipelineError(f"repartition: n is an integer >= 1, got {n!r}")
        from dataclasses import replace as _replace

        sources = {k: _replace(v, partitions=n) for k, v in self.sources.items()}
        return Pipeline(self.session, self.node, sources, self.spec, self.aliases)

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
        ``agg("max(v1) - min(v2) AS r")`` (see ``emsqrt.builder.split_aggregates``)."""
        items: list[tuple[str | None, str | Expr]] = [(None, a) for a in aggs]
        items += list(named.items())
        with _planning():
            return self.parent._then(self.parent.builder.aggregate(self.keys, items))
