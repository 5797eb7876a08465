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

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from platform_core import PlatformError, Schema, parse_bytes
from platform_core.expr import AGGREGATES, Expr, parse
from platform_core.expr import Aggregate as AggExpr

from . import plan as lp
from .config import EngineConfig
from .engine import Batches, RunResult, explain, run
from .errors import PlanError
from .optimizer._exprs import columns_of, rename_columns
from .resolve import SchemaResolver

__all__ = ["Pipeline", "parse_size"]


def parse_size(value: int | str) -> int:
    """A memory cap in bytes: ``64MB`` (10^6) or ``64MiB`` (2^20), a unit required for text
    (``platform_core.parse_bytes``); an ``int`` is bytes."""
    return parse_bytes(value, what="mem_cap")


def _expr(text: str | Expr, where: str) -> Expr:
    if isinstance(text, Expr):
        return text
    try:
        return parse(str(text))
    except PlatformError as exc:
        raise PlanError(f"{where}: {exc.message}") from exc


def _split_alias(text: str) -> tuple[str, str | None]:
    m = re.match(r"^(.*\S)\s+AS\s+(\"[^\"]+\"|\w+)\s*$", text, re.IGNORECASE | re.DOTALL)
    if not m:
        return text, None
    return m.group(1), m.group(2).strip('"')


@dataclass(frozen=True)
class Pipeline:
    """An immutable chain of steps; each method returns a new pipeline."""

    node: lp.Node
    aliases: dict[str, str] = field(default_factory=dict)

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
        p = str(path).removeprefix("file://")
        fmt = format or _format_of(p)
        if isinstance(schema, list):
            try:
                schema = Schema.from_dict({"fields": [_field(f) for f in schema]})
            except PlatformError as exc:
                raise PlanError(f"scan {p}: bad schema: {exc.message}") from exc
        pipe = cls(lp.Scan(p, fmt, schema, delimiter=delimiter))  # type: ignore[arg-type]
        pipe._schema()  # a missing file or a schema that cannot be inferred fails here
        return pipe

    @classmethod
    def from_arrow(cls, name: str, schema: pa.Schema) -> Pipeline:
        """A source of batches given at run time under ``name`` (``inputs={name: ...}``)."""
        return cls(lp.Input(name, Schema.from_arrow(schema)))

    # ------------------------------------------------------------------ steps
    def _schema(self) -> pa.Schema:
        return SchemaResolver().schema(self.node)

    def _col(self, name: str) -> str:
        """A column name, resolving an aggregated input column to its single aggregate."""
        if name in self._schema().names or name not in self.aliases:
            return name
        target = self.aliases[name]
        if target.startswith("\0"):
            raise PlanError(
                f'column "{name}" is ambiguous after the aggregate: it was consumed by '
                f"{target[1:]}; name the aggregate output instead"
            )
        return target

    def _resolve(self, expr: Expr) -> Expr:
        names = self._schema().names
        mapping = {c: self._col(c) for c in columns_of(expr) if c not in names}
        return rename_columns(expr, mapping) if mapping else expr

    def _then(self, node: lp.Node, aliases: dict[str, str] | None = None) -> Pipeline:
        new = Pipeline(node, self.aliases if aliases is None else aliases)
        new._schema()  # check now: errors point at the step that caused them
        return new

    def filter(self, predicate: str | Expr) -> Pipeline:
        return self._then(lp.Filter(self.node, self._resolve(_expr(predicate, "filter"))))

    def select(self, *columns: str | tuple[str, str]) -> Pipeline:
        """Keep columns: ``"a"``, ``"a AS b"`` or ``("b", "a")`` (output, input)."""
        pairs = []
        for c in columns:
            if isinstance(c, tuple):
                pairs.append((c[0], self._col(c[1])))
            else:
                src, alias = _split_alias(c)
                pairs.append((alias or src, self._col(src.strip('"'))))
        return self._then(lp.Project(self.node, tuple(pairs)))

    def map(self, **columns: str | Expr) -> Pipeline:
        """Add or replace computed columns: ``map(total="price * qty")``."""
        cols = tuple((n, self._resolve(_expr(e, f"map {n!r}"))) for n, e in columns.items())
        return self._then(lp.Map(self.node, cols))

    def aggregate(self, group_by: list[str], aggs: list[str]) -> Pipeline:
        """Group and aggregate; ``aggs`` are ``"SUM(amount)"`` or ``"SUM(amount) AS total"``."""
        specs: list[lp.AggSpec] = []
        consumed: dict[str, list[str]] = {}
        for text in aggs:
            src, alias = _split_alias(text)
            e = _expr(src, "aggregate")
            if not isinstance(e, AggExpr):
                raise PlanError(
                    f"aggregate: {text!r} is not an aggregate ({', '.join(AGGREGATES)})"
                )
            resolved = self._resolve(e)
            assert isinstance(resolved, AggExpr)
            name = alias or lp.agg_name(resolved)
            specs.append(lp.AggSpec(name, resolved))
            for arg in resolved.args:
                for c in columns_of(arg):
                    if name not in consumed.get(c, []):
                        consumed.setdefault(c, []).append(name)
        keys = tuple(self._col(k) for k in group_by)
        aliases = {
            c: names[0] if len(names) == 1 else "\0" + ", ".join(names)
            for c, names in consumed.items()
            if c not in keys
        }
        return self._then(lp.Aggregate(self.node, keys, tuple(specs)), aliases)

    def sort(self, by: list[str | dict[str, Any]]) -> Pipeline:
        """Sort keys: ``"a"``, ``"a DESC"``, ``"a DESC NULLS FIRST"`` or a dict."""
        keys = []
        for k in by:
            if isinstance(k, dict):
                keys.append(
                    lp.SortKey(
                        self._col(k["column"]),
                        bool(k.get("descending", False)),
                        bool(k.get("nulls_first", False)),
                    )
                )
                continue
            words = k.split()
            upper = [w.upper() for w in words]
            desc = "DESC" in upper
            nulls_first = "FIRST" in upper
            keys.append(lp.SortKey(self._col(words[0].strip('"')), desc, nulls_first))
        return self._then(lp.Sort(self.node, tuple(keys)))

    def limit(self, n: int, offset: int = 0) -> Pipeline:
        return self._then(lp.Limit(self.node, int(n), int(offset)))

    def join(
        self,
        right: Pipeline,
        on: list[str] | None = None,
        *,
        left_on: list[str] | None = None,
        right_on: list[str] | None = None,
        how: str = "inner",
    ) -> Pipeline:
        lk = [self._col(c) for c in (left_on or on or [])]
        rk = [right._col(c) for c in (right_on or on or [])]
        return self._then(lp.Join(self.node, right.node, tuple(lk), tuple(rk), how), {})  # type: ignore[arg-type]

    def union(self, *others: Pipeline) -> Pipeline:
        return self._then(lp.Union((self.node, *(o.node for o in others))), {})

    def sink(self, path: str | Path, format: str | None = None) -> Pipeline:
        p = str(path).removeprefix("file://")
        return self._then(lp.Sink(self.node, p, (format or _format_of(p)).lower()), {})  # type: ignore[arg-type]

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


def _format_of(path: str) -> str:
    lower = path.lower()
    for ext, fmt in (
        (".parquet", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
    ):
        if lower.endswith(ext):
            return fmt
    return "csv"


def _field(f: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(f, dict) or "name" not in f or "type" not in f:
        raise PlanError(f"a schema field needs a name and a type, got {f!r}")
    from platform_core import parse_type

    return {
        "name": f["name"],
        "type": str(parse_type(f["type"])),
        "nullable": bool(f.get("nullable", True)),
    }
