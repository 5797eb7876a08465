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
from platform_core.expr import Column, Expr, parse, to_json

from . import plan as lp

__all__ = ["rewrite_distinct"]

_X = "__emsqrt_x"


def _col(name: str) -> Column:
    return Column(name)


def rewrite_distinct(node: lp.Aggregate, schema: pa.Schema | None = None) -> lp.Node | None:
    """The two-level form of ``node``, or None when it has no (rewritable) DISTINCT.

    ``schema`` (of ``node.input``) is unused: integer sums are 128-bit (decimal(38, 0)) at
    both levels, as in DuckDB; it stays for callers that pass it."""
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
            # the sum of the counts (128-bit, back to a BIGINT count); over no rows at all a
            # count is 0, the sum NULL
            inner.append(lp.AggSpec(tmp, a))
            outer.append(lp.AggSpec(tmp, AggExpr("sum", _col(tmp), False)))
            post.append((spec.name, parse(f'coalesce(CAST("{tmp}" AS BIGINT), 0)')))
        elif a.name == "avg":
            inner.append(lp.AggSpec(tmp + "s", AggExpr("sum", a.arg, False)))
            inner.append(lp.AggSpec(tmp + "n", AggExpr("count", a.arg, False)))
            outer.append(lp.AggSpec(tmp + "s", AggExpr("sum", _col(tmp + "s"), False)))
            outer.append(lp.AggSpec(tmp + "n", AggExpr("sum", _col(tmp + "n"), False)))
            post.append(
                (
                    spec.name,
                    parse(
                        f'CASE WHEN "{tmp}n" = 0 THEN NULL ELSE CAST("{tmp}s" AS DOUBLE) / CAST("{tmp}n" AS DOUBLE) END'
                    ),
                )
            )
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
