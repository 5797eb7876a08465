"""COUNT(DISTINCT x) as two decomposable aggregates, so it spills like any other.

``SELECT k, count(DISTINCT x), sum(v) ... GROUP BY k`` is computed as
``SELECT k, count(x), sum(sv) FROM (SELECT k, x, sum(v) AS sv ... GROUP BY k, x) GROUP BY k``:
the inner aggregate partitions on ``(k, x)``, so even one group with more distinct values
than the cap holds is split across partitions, and the outer one merges partial states. Used
when every DISTINCT aggregate counts the same argument (the common case); otherwise the
aggregate keeps the input rows as its state.
"""

from __future__ import annotations

import pyarrow as pa

from platform_core.expr import Aggregate as AggExpr
from platform_core.expr import Column, Expr, evaluate, parse, to_json, to_sql

from . import plan as lp

__all__ = ["rewrite_distinct"]

_X = "__emsqrt_x"


def _col(name: str) -> Column:
    return Column(name)


def _wide(arg: Expr | None, schema: pa.Schema | None) -> Expr | None:
    """``arg`` as DECIMAL(38, 0) when it is an integer: an inner SUM per (keys, x) may pass
    int64 where the total does not (DuckDB sums integers in 128 bits)."""
    if arg is None or schema is None:
        return arg
    if not pa.types.is_integer(evaluate(arg, schema.empty_table()).type):
        return arg
    return parse(f"CAST({to_sql(arg)} AS DECIMAL(38, 0))")


def rewrite_distinct(node: lp.Aggregate, schema: pa.Schema | None = None) -> lp.Node | None:
    """The two-level form of ``node``, or None when it has no (rewritable) DISTINCT.

    ``schema`` (of ``node.input``) lets integer sums stay 128-bit between the two levels."""
    distinct = [s for s in node.aggregates if s.agg.distinct]
    if not distinct or any(s.agg.name != "count" or s.agg.arg is None for s in distinct):
        return None
    if len({to_json(s.agg.arg) for s in distinct if s.agg.arg is not None}) != 1:
        return None
    if any(s.agg.name not in ("count", "sum", "avg", "min", "max") for s in node.aggregates):
        return None  # the statistical aggregates do not re-aggregate their own results
    arg = distinct[0].agg.arg
    assert arg is not None
    src: lp.Node = node.input
    if isinstance(arg, Column) and arg.name not in node.group_by:
        x = arg.name
    else:
        x = _X
        src = lp.Map(src, ((x, arg),))
    inner: list[lp.AggSpec] = []
    outer: list[lp.AggSpec] = []
    post: list[tuple[str, Expr]] = []
    for i, spec in enumerate(node.aggregates):
        a = spec.agg
        tmp = f"__emsqrt_i{i}"
        if a.distinct:
            outer.append(lp.AggSpec(spec.name, AggExpr("count", _col(x), False)))
        elif a.name == "count":
            # the sum of the counts; over no rows at all a count is 0, the sum NULL
            inner.append(lp.AggSpec(tmp, a))
            outer.append(lp.AggSpec(tmp, AggExpr("sum", _col(tmp), False)))
            post.append((spec.name, parse(f'coalesce("{tmp}", 0)')))
        elif a.name == "avg":
            inner.append(lp.AggSpec(tmp + "s", AggExpr("sum", _wide(a.arg, schema), False)))
            inner.append(lp.AggSpec(tmp + "n", AggExpr("count", a.arg, False)))
            outer.append(lp.AggSpec(tmp + "s", AggExpr("sum", _col(tmp + "s"), False)))
            outer.append(lp.AggSpec(tmp + "n", AggExpr("sum", _col(tmp + "n"), False)))
            post.append(
                (
                    spec.name,
                    parse(
                        f'CASE WHEN "{tmp}n" = 0 THEN NULL ELSE CAST("{tmp}s" AS DOUBLE) / "{tmp}n" END'
                    ),
                )
            )
        elif a.name == "sum" and (wide := _wide(a.arg, schema)) is not a.arg:
            # the 128-bit total back to int64 (an error past its range, never a wrap)
            inner.append(lp.AggSpec(tmp, AggExpr("sum", wide, False)))
            outer.append(lp.AggSpec(spec.name, AggExpr("sum", _col(tmp), False)))
            post.append((spec.name, parse(f'CAST("{spec.name}" AS BIGINT)')))
        else:
            inner.append(lp.AggSpec(tmp, a))
            outer.append(lp.AggSpec(spec.name, AggExpr(a.name, _col(tmp), False)))
    plan: lp.Node = lp.Aggregate(
        lp.Aggregate(src, (*node.group_by, x), tuple(inner)), node.group_by, tuple(outer)
    )
    if post:
        plan = lp.Map(plan, tuple(post))
    names = [*node.group_by, *(s.name for s in node.aggregates)]
    return lp.Project(plan, tuple((n, n) for n in names))
