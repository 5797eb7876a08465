"""Cutting a logical plan into stages: per-part tasks, then a merge in the driver.

The plan is an emsqrt plan whose leaves are ``Input`` nodes naming sources. A *chain* is a
source leaf under filters, projections and computed columns: it runs on each part of the
source alone. Above a chain, the first operator decides the cut:

- an aggregate (COUNT/SUM/MIN/MAX/AVG, no DISTINCT) runs as a partial aggregate per part and a
  final aggregate merging the partial states by key (AVG travels as sum and count);
- a top-k or a limit runs per part (each part keeps its own first n) and again at the merge;
- a sort sorts each part (a sorted run) and the merge sorts the runs;
- anything else (a join, a union, a DISTINCT aggregate) takes the chain's rows as they are.

Each chain becomes one stage of tasks; in the merge plan it is replaced by an ``Input`` that
the driver feeds with the tasks' results. Partial-state columns are named ``__p<i>`` (and
``__p<i>s``/``__p<i>c`` for AVG): the same on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pyarrow as pa

from emsqrt import plan as lp
from emsqrt.errors import PlanError
from emsqrt.plan_json import plan_to_json
from emsqrt.resolve import SchemaResolver, agg_output_type
from platform_core import Schema
from platform_core.expr import Aggregate as AggExpr
from platform_core.expr import Column, Expr, parse

from .sources import ArrowSource, Source
from .task import Task

__all__ = ["Stage", "StagePlan", "cut"]

_LOCAL = (lp.Filter, lp.Project, lp.Map, lp.PyMap)
_SPLITTABLE = {"count", "sum", "min", "max", "avg"}


@dataclass
class Stage:
    """The tasks of one chain; their results feed ``Input(name)`` of the merge plan."""

    name: str
    source: Source
    plan: lp.Node
    """The per-part plan with the source leaf still an ``Input`` (see :meth:`task_plan`)."""
    schema: pa.Schema
    kind: str
    tasks: list[Task] = field(default_factory=list)


@dataclass
class StagePlan:
    """Stages of tasks, and the merge plan that reads their results."""

    stages: list[Stage]
    merge: lp.Node
    driver_inputs: dict[str, pa.Table]
    """Arrow sources, which the merge plan reads as they are."""


def _chain_source(node: lp.Node, sources: dict[str, Source]) -> Source | None:
    """The source under ``node`` if ``node`` is a chain (only local operators down to it)."""
    while isinstance(node, _LOCAL):
        node = node.input
    if isinstance(node, lp.Input) and node.name in sources:
        src = sources[node.name]
        return None if isinstance(src, ArrowSource) else src
    return None


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _split_aggregate(
    node: lp.Aggregate, resolver: SchemaResolver
) -> tuple[lp.Aggregate, list[lp.AggSpec], list[tuple[str, Expr]]] | None:
    """(partial aggregate, final specs over the partial columns, finishing expressions)."""
    specs = node.aggregates
    if any(s.agg.distinct or s.agg.name not in _SPLITTABLE for s in specs):
        return None
    in_schema = resolver.schema(node.input)
    partial: list[lp.AggSpec] = []
    final: list[lp.AggSpec] = []
    finish: list[tuple[str, Expr]] = []
    for i, spec in enumerate(specs):
        agg = spec.agg
        if agg.name == "avg":
            try:
                total = agg_output_type(lp.AggSpec("s", AggExpr("sum", agg.arg)), in_schema, "avg")
            except PlanError:
                return None  # AVG of dates and timestamps: merged whole
            if not _numeric(total):
                return None
            partial += [
                lp.AggSpec(f"__p{i}s", AggExpr("sum", agg.arg)),
                lp.AggSpec(f"__p{i}c", AggExpr("count", agg.arg)),
            ]
            final += [
                lp.AggSpec(f"__p{i}s", AggExpr("sum", Column(f"__p{i}s"))),
                lp.AggSpec(f"__p{i}c", AggExpr("sum", Column(f"__p{i}c"))),
            ]
            finish.append((spec.name, parse(f'CAST("__p{i}s" AS DOUBLE) / "__p{i}c"')))
        else:
            merge = "sum" if agg.name == "count" else agg.name
            partial.append(lp.AggSpec(f"__p{i}", agg))
            final.append(lp.AggSpec(f"__p{i}", AggExpr(merge, Column(f"__p{i}"))))
            done: Expr = Column(f"__p{i}")
            if agg.name == "count":  # a sum of counts is a decimal: back to BIGINT
                total = f'coalesce("__p{i}", 0)' if not node.group_by else f'"__p{i}"'
                done = parse(f"CAST({total} AS BIGINT)")  # no parts at all: no partial rows
            finish.append((spec.name, done))
    return replace(node, aggregates=tuple(partial)), final, finish


def cut(root: lp.Node, sources: dict[str, Source]) -> StagePlan:
    """Stages and the merge plan for ``root`` (see the module docstring)."""
    resolver = SchemaResolver()
    resolver.schema(root)  # unknown columns and type errors: before anything runs
    stages: list[Stage] = []

    def stage_of(chain: lp.Node, kind: str, src: Source | None = None) -> lp.Input:
        src = src or _chain_source(chain, sources)
        assert src is not None
        name = f"stage{len(stages)}"
        schema = resolver.schema(chain)
        stages.append(Stage(name, src, chain, schema, kind))
        return lp.Input(name, Schema.from_arrow(schema))

    def visit(node: lp.Node) -> lp.Node:
        child = getattr(node, "input", None)
        under = _chain_source(child, sources) if isinstance(child, lp.Node) else None
        if isinstance(child, lp.Node) and under is not None:
            if isinstance(node, lp.Aggregate):
                split = _split_aggregate(node, resolver)
                if split is not None:
                    partial, final, finish = split
                    leaf = stage_of(partial, "partial aggregate", under)
                    merged: lp.Node = lp.Aggregate(leaf, node.group_by, tuple(final))
                    return lp.Project(
                        lp.Map(merged, tuple(finish)),
                        tuple((k, k) for k in (*node.group_by, *(s.name for s in node.aggregates))),
                    )
            if isinstance(node, lp.TopK):
                return replace(node, input=stage_of(node, "top-k", under))
            if isinstance(node, lp.Limit):
                local = lp.Limit(child, node.n + node.offset, 0)
                return replace(node, input=stage_of(local, "limit", under))
            if isinstance(node, lp.Sort):
                return replace(node, input=stage_of(node, "sorted runs", under))
        if _chain_source(node, sources) is not None and node is root:
            return stage_of(node, "scan")
        kids = lp.children(node)
        if not kids:
            return node
        new: list[lp.Node] = []
        for k in kids:
            if _chain_source(k, sources) is not None:
                new.append(stage_of(k, "scan"))
            else:
                new.append(visit(k))
        return lp.replace_children(node, tuple(new))

    merge = visit(root)
    driver_inputs = {
        name: src.table for name, src in sources.items() if isinstance(src, ArrowSource)
    }
    return StagePlan(stages, merge, driver_inputs)


def task_plan(stage: Stage, files: tuple[str, ...]) -> str:
    """The stage's plan over ``files`` of its source, as emsqrt plan JSON."""
    scans = [stage.source.scan(f) for f in files]
    leaf: lp.Node = scans[0] if len(scans) == 1 else lp.Union(tuple(scans))

    def swap(node: lp.Node) -> lp.Node:
        if isinstance(node, lp.Input) and node.name == stage.source.name:
            return leaf
        kids = lp.children(node)
        return lp.replace_children(node, tuple(swap(k) for k in kids)) if kids else node

    return plan_to_json(swap(stage.plan))
