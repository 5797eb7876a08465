"""Rule: fold constant sub-expressions (no columns, no aggregates) into literals; drop a
filter whose predicate folds to TRUE. An expression whose evaluation raises is left alone,
so the error still happens at run time, on the rows, as DuckDB's would."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa

from platform_core import PlatformError, Schema
from platform_core.expr import Column, Expr, Literal, check, evaluate, lit, walk

from .. import plan as lp
from ..resolve import SchemaResolver
from ._exprs import has_aggregate, map_children

__all__ = ["apply", "fold"]

_ONE = pa.table({"__emsqrt_one": [0]})


def fold(expr: Expr) -> Expr:
    """The expression with its maximal constant sub-trees replaced by literals."""
    if isinstance(expr, Literal | Column):
        return expr
    if not has_aggregate(expr) and not any(isinstance(e, Column) for e in walk(expr)):
        try:
            t = check(expr, Schema.from_arrow(_ONE.schema))
            value = evaluate(expr, _ONE)[0].as_py()
            return lit(value, t)
        except (PlatformError, ValueError, TypeError, OverflowError):
            return expr
    return map_children(expr, fold)


def _is_true(expr: Expr) -> bool:
    return isinstance(expr, Literal) and expr.value is True


def apply(node: lp.Node, resolver: SchemaResolver) -> lp.Node:
    node = lp.replace_children(node, tuple(apply(c, resolver) for c in lp.children(node)))
    if isinstance(node, lp.Filter):
        pred = fold(node.predicate)
        return node.input if _is_true(pred) else replace(node, predicate=pred)
    if isinstance(node, lp.Map):
        return replace(node, columns=tuple((n, fold(e)) for n, e in node.columns))
    if isinstance(node, lp.Scan) and node.predicate is not None:
        return replace(node, predicate=fold(node.predicate))
    return node
