"""The Python API: a fluent pipeline builder over logical plans.

    from emsqrt import Pipeline

    result = (
        Pipeline.scan("logs.csv")
        .filter("amount > 1000")
        .aggregate(["uid"], ["COUNT(*)", "SUM(amount)"])  # outputs count, sum_amount
        .sort(["uid", "amount DESC"])  # amount: the single aggregate that consumed it
        .collect(mem_cap="64MiB")
    )

Aggregates are named ``count`` for ``COUNT(*)`` and ``<func>_<column>`` otherwise
(``count_distinct_<column>`` for DISTINCT), or by ``AS name``. After an aggregate, a reference
to an input column that exactly one aggregate consumed resolves to that aggregate's output
(``amount`` -> ``sum_amount``); a column consumed by several aggregates is ambiguous and the
error lists the candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from platform_core import MemCap, Schema
from platform_core.expr import Expr

from . import plan as lp
from .builder import PlanBuilder, SortKeyLike
from .builder import format_of as _format_of  # noqa: F401 - kept for callers of the old name
from .builder import split_alias as _split_alias  # noqa: F401 - kept for callers of the old name
from .engine import Batches, RunResult, explain, run
from .engine_config import EngineConfig
from .errors import PlanError

__all__ = ["Pipeline", "parse_size"]


def parse_size(value: int | str) -> MemCap:
    """A memory cap: ``64MB`` (10^6) or ``64MiB`` (2^20), a unit required for text
    (``platform_core.parse_bytes``); an ``int`` is bytes; positive (``platform_core.MemCap``)."""
    return MemCap(value, what="mem_cap")


@dataclass(frozen=True)
class Pipeline:
    """An immutable chain of steps; each method returns a new pipeline.

    The steps are :class:`emsqrt.builder.PlanBuilder`'s, the one implementation of the
    vocabulary that elytra's ``Pipeline`` and its JSON spec use too; this class adds running
    the plan in this process under a cap."""

    node: lp.Node
    aliases: Mapping[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ sources
    @classmethod
    def scan(
        cls,
        path: str | Path,
        format: str | None = None,
        schema: Schema | list[dict[str, Any]] | None = None,
        delimiter: str = ",",
    ) -> Pipeline:
        """Read a CSV, JSONL or Parquet file (format from the extension unless given)."""
        return cls._of(PlanBuilder.scan(path, format, schema, delimiter))

    @classmethod
    def from_arrow(cls, name: str, schema: pa.Schema) -> Pipeline:
        """A source of batches given at run time under ``name`` (``inputs={name: ...}``)."""
        return cls._of(PlanBuilder.input(name, schema))

    # ------------------------------------------------------------------ steps
    @classmethod
    def _of(cls, b: PlanBuilder) -> Pipeline:
        return cls(b.node, b.aliases)

    @property
    def builder(self) -> PlanBuilder:
        """This pipeline's plan as a :class:`~emsqrt.builder.PlanBuilder`."""
        return PlanBuilder(self.node, self.aliases)

    @property
    def schema(self) -> pa.Schema:
        """The output schema (PlanError for an unknown column or a type error)."""
        return self.builder.schema

    def _schema(self) -> pa.Schema:
        return self.builder.schema

    def filter(self, predicate: str | Expr) -> Pipeline:
        """Keep the rows where ``predicate`` is true."""
        return self._of(self.builder.filter(predicate))

    def select(self, *columns: str | tuple[str, str]) -> Pipeline:
        """Keep columns: ``"a"``, ``"a AS b"`` or ``("b", "a")`` (output, input)."""
        return self._of(self.builder.select(*columns))

    def map(self, **columns: str | Expr) -> Pipeline:
        """Add or replace computed columns: ``map(total="price * qty")`` (elytra's
        ``with_columns``)."""
        return self._of(self.builder.with_columns(columns))

    def with_columns(self, **columns: str | Expr) -> Pipeline:
        """The same as ``map``, under elytra's name."""
        return self._of(self.builder.with_columns(columns))

    def drop(self, *columns: str) -> Pipeline:
        return self._of(self.builder.drop(*columns))

    def rename(self, mapping: Mapping[str, str] | None = None, **renames: str) -> Pipeline:
        """Rename columns: ``rename({"old": "new"})`` or ``rename(old="new")``."""
        return self._of(self.builder.rename({**(mapping or {}), **renames}))

    def aggregate(self, group_by: Sequence[str], aggs: Sequence[str | Expr]) -> Pipeline:
        """Group and aggregate; ``aggs`` are ``"SUM(amount)"``, ``"SUM(amount) AS total"`` or
        expressions over aggregates (``"max(v1) - min(v2) AS r"``)."""
        return self._of(self.builder.aggregate(group_by, aggs))

    def sort(self, by: list[SortKeyLike] | SortKeyLike) -> Pipeline:
        """Sort keys: ``"a"``, ``"a DESC"``, ``"a DESC NULLS FIRST"`` or a dict."""
        keys = by if isinstance(by, list) else [by]
        return self._of(self.builder.sort(*keys))

    def limit(self, n: int, offset: int = 0) -> Pipeline:
        return self._of(self.builder.limit(n, offset))

    def top_k(
        self, n: int, by: list[SortKeyLike] | SortKeyLike, per: str | Sequence[str] = ()
    ) -> Pipeline:
        """The first ``n`` rows in ``by`` order; with ``per``, the first ``n`` of each group."""
        keys = by if isinstance(by, list) else [by]
        return self._of(self.builder.top_k(n, *keys, per=per))

    def distinct(self) -> Pipeline:
        return self._of(self.builder.distinct())

    def join(
        self,
        right: Pipeline,
        on: list[str] | None = None,
        *,
        left_on: list[str] | None = None,
        right_on: list[str] | None = None,
        how: str = "inner",
    ) -> Pipeline:
        b = self.builder.join(right.builder, on, left_on=left_on, right_on=right_on, how=how)
        return self._of(b)

    def union(self, *others: Pipeline) -> Pipeline:
        return self._of(self.builder.union(*(o.builder for o in others)))

    def sink(self, path: str | Path, format: str | None = None) -> Pipeline:
        return self._of(self.builder.sink(path, format))

    # ------------------------------------------------------------------ running
    def config(self, mem_cap: int | str | None = None, **kw: Any) -> EngineConfig:
        cap = None if mem_cap is None else parse_size(mem_cap)
        return EngineConfig.from_settings(mem_cap_bytes=cap, **kw)

    def run(
        self, mem_cap: int | str | None = None, inputs: Batches | None = None, **kw: Any
    ) -> RunResult:
        """Run under ``mem_cap`` (``EMSQRT_MEM_CAP_BYTES`` when None)."""
        progress = kw.pop("progress", None)
        return run(self.node, self.config(mem_cap, **kw), inputs=inputs, progress=progress)

    def collect(
        self, mem_cap: int | str | None = None, inputs: Batches | None = None, **kw: Any
    ) -> pa.Table:
        table = self.run(mem_cap, inputs, **kw).table
        if table is None:
            raise PlanError("collect(): this pipeline ends in a sink; use run() instead")
        return table

    def explain(self, mem_cap: int | str | None = None, **kw: Any) -> str:
        return explain(self.node, self.config(mem_cap, **kw))
