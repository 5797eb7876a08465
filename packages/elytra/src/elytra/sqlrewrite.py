"""Rewrites of sqlglot's optimized tree that make it plannable into stages (``session.sql``).

sqlglot decorrelates ``EXISTS (... WHERE inner.k = outer.k AND inner.v <> outer.v)`` (TPC-H
q21) into an ``ARRAY_AGG`` of ``v`` per ``k`` and an ``ARRAY_ANY`` lambda over it. Lists do not
partially aggregate; the comparison does not need them: some ``x`` of a group is ``<>`` to
``v`` exactly when ``v`` differs from the group's min or max (``<``/``>`` likewise need only
one end), so the derived table keeps min and max and the lambda becomes a comparison with
EXISTS's NULL rule (no TRUE comparison: FALSE).
"""

from __future__ import annotations

from sqlglot import exp

from .errors import SQLPlanError

__all__ = ["array_any_to_extremes"]

_FLIP = {exp.LT: exp.GT, exp.GT: exp.LT, exp.LTE: exp.GTE, exp.GTE: exp.LTE, exp.NEQ: exp.NEQ}


def _is_var(node: exp.Expr, var: str) -> bool:
    return (
        isinstance(node, exp.Identifier | exp.Column)
        and node.name == var
        and not (isinstance(node, exp.Column) and node.table)
    )


def _ctes(tree: exp.Expr) -> dict[str, exp.Select]:
    with_ = tree.args.get("with_") or tree.args.get("with")
    if with_ is None:
        return {}
    return {c.alias.lower(): c.this for c in with_.expressions if isinstance(c.this, exp.Select)}


def _sources(select: exp.Select) -> dict[str, str]:
    """Alias -> table name of a SELECT's FROM and joins."""
    out = {}
    from_ = select.args.get("from_") or select.args.get("from")
    nodes = [from_.this] if from_ is not None else []
    nodes += [j.this for j in select.args.get("joins") or []]
    for n in nodes:
        if isinstance(n, exp.Table):
            out[n.alias_or_name.lower()] = n.name.lower()
    return out


def array_any_to_extremes(tree: exp.Expr) -> exp.Expr:
    """``ARRAY_ANY(d.list, x -> v op x)`` over ``ARRAY_AGG(y) AS list`` of a CTE ``d`` as a
    comparison with ``min(y)`` / ``max(y)``; other uses of lists are refused by the planner."""
    ctes = _ctes(tree)
    for node in list(tree.find_all(exp.ArrayAny)):
        lam = node.expression
        target = node.this
        if not isinstance(lam, exp.Lambda) or not isinstance(target, exp.Column):
            continue
        var = lam.expressions[0].name if lam.expressions else ""
        body = lam.this
        op = type(body)
        if op not in _FLIP:
            raise SQLPlanError(
                f"cannot plan {node.sql(dialect='duckdb')!r} into stages (a correlated "
                "subquery compared with = on a non-key column)"
            )
        if _is_var(body.expression, var):
            value = body.this
        elif _is_var(body.this, var):
            value, op = body.expression, _FLIP[op]
        else:
            continue
        select = node.find_ancestor(exp.Select)
        table = _sources(select).get(target.table.lower()) if select is not None else None
        cte = ctes.get(table or "")
        item = None
        if cte is not None:
            item = next(
                (e for e in cte.expressions if e.alias_or_name.lower() == target.name.lower()),
                None,
            )
        if cte is None or item is None or not isinstance(item.unalias(), exp.ArrayAgg):
            raise SQLPlanError(f"cannot plan {node.sql(dialect='duckdb')!r} into stages")
        low, high = f"{target.name}__min", f"{target.name}__max"
        if not any(e.alias_or_name == low for e in cte.expressions):
            arg = item.unalias().this
            cte.append("expressions", exp.alias_(exp.Min(this=arg.copy()), low, quoted=True))
            cte.append("expressions", exp.alias_(exp.Max(this=arg.copy()), high, quoted=True))
        lo = exp.column(low, target.table, quoted=True)
        hi = exp.column(high, target.table, quoted=True)
        v = value.copy()
        if op is exp.NEQ:
            cond: exp.Expr = exp.or_(
                exp.NEQ(this=v, expression=lo), exp.NEQ(this=v.copy(), expression=hi)
            )
        elif op in (exp.LT, exp.LTE):
            cond = op(this=v, expression=hi)
        else:
            cond = op(this=v, expression=lo)
        node.replace(exp.Coalesce(this=exp.paren(cond), expressions=[exp.false()]))
    # the lists themselves are now unused: drop them so no ARRAY_AGG is planned
    for cte in ctes.values():
        for e in list(cte.expressions):
            if isinstance(e.unalias(), exp.ArrayAgg) and not _referenced(tree, e.alias_or_name):
                e.pop()
    return tree


def _referenced(tree: exp.Expr, name: str) -> bool:
    return any(c.name == name for c in tree.find_all(exp.Column))
