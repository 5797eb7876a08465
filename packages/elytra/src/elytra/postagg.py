"""Expressions over aggregates in ``agg(...)``: ``agg("max(v1) - min(v2) AS r")`` as DuckDB
takes it in a SELECT with GROUP BY.

Such an expression is split into the aggregates it holds (each computed once, under a hidden
name) and a scalar expression over them and the group keys, evaluated after the aggregate. The
plan stays the one vocabulary (``Aggregate`` then ``Map`` then ``Project``), so every backend,
the exchange and the kernel see nothing new.
"""

from __future__ import annotations

from emsqrt.planning import map_children
from platform_core.expr import Aggregate as AggExpr
from platform_core.expr import Column, Expr

from .errors import PipelineError

__all__ = ["HIDDEN_PREFIX", "split_aggregates"]

HIDDEN_PREFIX = "__elytra_agg_"
"""The names of the aggregates an expression holds, dropped by the projection after it."""


def split_aggregates(
    expr: Expr, keys: tuple[str, ...], taken: dict[AggExpr, str], where: str
) -> Expr:
    """``expr`` with each aggregate call replaced by a column of a hidden name, added to
    ``taken`` (the same call twice gets one name). A column outside an aggregate must be a
    group key, as in SQL; PipelineError otherwise."""

    def visit(node: Expr) -> Expr:
        if isinstance(node, AggExpr):
            name = taken.setdefault(node, f"{HIDDEN_PREFIX}{len(taken)}")
            return Column(name)
        if isinstance(node, Column) and node.name not in keys:
            raise PipelineError(
                f"{where}: column {node.name!r} must be a group_by key or inside an aggregate "
                f"(e.g. max({node.name}))"
            )
        return map_children(node, visit)

    return visit(expr)
