"""The planner registry: each logical operator type maps to a function building its physical
operator; an unknown type is a ``PlanError`` (Ray Data's planner has the same shape)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import pyarrow as pa

from . import plan as lp
from .context import ExecContext
from .distinct import rewrite_distinct
from .errors import PlanError
from .physical.aggregate import AggregateOp
from .physical.base import PhysicalOp
from .physical.join import JoinOp
from .physical.pymap import PyMapOp
from .physical.scan import InputOp, ScanOp
from .physical.sink import SinkOp
from .physical.sort import SortOp, TopKOp, TopKPerGroupOp
from .physical.stream import FilterOp, LimitOp, MapOp, ProjectOp, UnionOp
from .resolve import SchemaResolver

__all__ = ["PLANNERS", "Lowerer", "register"]

N = TypeVar("N", bound=lp.Node)
PlanFn = Callable[[N, "Lowerer"], PhysicalOp]
PLANNERS: dict[type[lp.Node], Callable[[lp.Node, Lowerer], PhysicalOp]] = {}


def register(node_type: type[N]) -> Callable[[PlanFn[N]], PlanFn[N]]:
    """Register the physical planning function of one logical operator type."""

    def add(fn: PlanFn[N]) -> PlanFn[N]:
        PLANNERS[node_type] = fn  # type: ignore[assignment]
        return fn

    return add


class Lowerer:
    """Turns a (checked, optimized) logical plan into physical operators."""

    def __init__(
        self,
        ctx: ExecContext,
        resolver: SchemaResolver,
        inputs: dict[str, list[pa.RecordBatch]] | None = None,
    ) -> None:
        self.ctx = ctx
        self.resolver = resolver
        self.inputs = inputs or {}

    def lower(self, node: lp.Node) -> PhysicalOp:
        fn = PLANNERS.get(type(node))
        if fn is None:
            known = ", ".join(sorted(t.__name__ for t in PLANNERS))
            raise PlanError(
                f"no physical operator for logical {type(node).__name__} (known: {known})"
            )
        op = fn(node, self)
        op.logical = node  # type: ignore[attr-defined]
        _estimate(op, node)
        return op

    def schema(self, node: lp.Node) -> pa.Schema:
        return self.resolver.schema(node)


def _estimate(op: PhysicalOp, node: lp.Node) -> None:
    """Rough row and byte estimates for ``explain()`` (no statistics are kept)."""
    kids = op.children
    rows = kids[0].estimate_rows if kids else None
    nbytes = kids[0].estimate_bytes if kids else None
    if isinstance(node, lp.Scan):
        try:
            nbytes = os.path.getsize(node.path)
        except OSError:
            nbytes = None
        width = max(1, 8 * len(op.schema))
        rows = None if nbytes is None else max(1, nbytes // width)
        if node.predicate is not None and rows is not None:
            rows //= 2
    elif isinstance(node, lp.Input):
        rows = sum(b.num_rows for b in op.inputs_data)  # type: ignore[attr-defined]
        nbytes = sum(b.nbytes for b in op.inputs_data)  # type: ignore[attr-defined]
    elif isinstance(node, lp.Filter) and rows is not None:
        rows //= 2
    elif isinstance(node, lp.Aggregate) and rows is not None:
        rows = 1 if not node.group_by else max(1, rows // 10)
    elif isinstance(node, lp.Join):
        lr, rr = kids[0].estimate_rows, kids[1].estimate_rows
        rows = max(lr or 0, rr or 0) if lr is not None or rr is not None else None
    elif isinstance(node, lp.TopK) and node.per:
        pass  # up to n rows of every group: the input's estimate bounds it
    elif isinstance(node, lp.Limit | lp.TopK) and rows is not None:
        rows = min(rows, node.n)
    elif isinstance(node, lp.Union):
        rows = sum(k.estimate_rows or 0 for k in kids)
    if rows is not None and nbytes is not None and kids and kids[0].estimate_rows:
        nbytes = int(nbytes * rows / max(kids[0].estimate_rows, 1))
    op.estimate_rows, op.estimate_bytes = rows, nbytes


@register(lp.Scan)
def _scan(node: lp.Scan, lw: Lowerer) -> PhysicalOp:
    return ScanOp(lw.ctx, node, lw.schema(node))


@register(lp.Input)
def _input(node: lp.Input, lw: Lowerer) -> PhysicalOp:
    if node.name not in lw.inputs:
        raise PlanError(
            f"input {node.name!r} was not given (given: {', '.join(lw.inputs) or 'none'})"
        )
    op = InputOp(lw.ctx, node, lw.schema(node), lw.inputs[node.name])
    op.inputs_data = lw.inputs[node.name]  # type: ignore[attr-defined]
    return op


@register(lp.Filter)
def _filter(node: lp.Filter, lw: Lowerer) -> PhysicalOp:
    lw.schema(node)
    return FilterOp(lw.ctx, node, lw.lower(node.input))


@register(lp.Project)
def _project(node: lp.Project, lw: Lowerer) -> PhysicalOp:
    return ProjectOp(lw.ctx, node, lw.lower(node.input), lw.schema(node))


@register(lp.Map)
def _map(node: lp.Map, lw: Lowerer) -> PhysicalOp:
    return MapOp(lw.ctx, node, lw.lower(node.input), lw.schema(node))


@register(lp.PyMap)
def _pymap(node: lp.PyMap, lw: Lowerer) -> PhysicalOp:
    return PyMapOp(lw.ctx, node, lw.lower(node.input), lw.schema(node))


@register(lp.Sort)
def _sort(node: lp.Sort, lw: Lowerer) -> PhysicalOp:
    lw.schema(node)
    return SortOp(lw.ctx, node, lw.lower(node.input))


@register(lp.TopK)
def _topk(node: lp.TopK, lw: Lowerer) -> PhysicalOp:
    lw.schema(node)
    if node.per:
        return TopKPerGroupOp(lw.ctx, node, lw.lower(node.input))
    return TopKOp(lw.ctx, node, lw.lower(node.input))


@register(lp.Aggregate)
def _aggregate(node: lp.Aggregate, lw: Lowerer) -> PhysicalOp:
    rewritten = rewrite_distinct(node, lw.schema(node.input)) if node.mode == "full" else None
    if rewritten is not None:
        return lw.lower(rewritten)
    return AggregateOp(lw.ctx, node, lw.lower(node.input), lw.schema(node))


@register(lp.Join)
def _join(node: lp.Join, lw: Lowerer) -> PhysicalOp:
    return JoinOp(lw.ctx, node, lw.lower(node.left), lw.lower(node.right), lw.schema(node))


@register(lp.Limit)
def _limit(node: lp.Limit, lw: Lowerer) -> PhysicalOp:
    lw.schema(node)
    return LimitOp(lw.ctx, node, lw.lower(node.input))


@register(lp.Union)
def _union(node: lp.Union, lw: Lowerer) -> PhysicalOp:
    return UnionOp(lw.ctx, [lw.lower(i) for i in node.inputs], lw.schema(node))


@register(lp.Sink)
def _sink(node: lp.Sink, lw: Lowerer) -> PhysicalOp:
    lw.schema(node)
    return SinkOp(lw.ctx, node, lw.lower(node.input))
