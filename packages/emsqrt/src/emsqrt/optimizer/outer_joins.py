"""Rule: a left join whose null-extended rows are all dropped above it is an inner join.

SQL front ends decorrelate ``x IN (SELECT ...)`` and correlated scalar subqueries into LEFT
joins under a filter (``NOT _u.k IS NULL``, ``_u.v < x``) that drops every row the join
extended with nulls. As inner joins they can be broadcast, reordered and used to reduce
group-bys. A column is *strict* at a node when every output row holding NULL there is dropped
before the root, so removing such rows there changes nothing: filters make their columns
strict, inner joins their keys; renames carry it down; a limit, an aggregate or a union ends it.
"""

from __future__ import annotations

from dataclasses import replace

from platform_core.expr import Between, Binary, Cast, Column, Expr, InList, IsNull, Like, Unary

from .. import plan as lp
from ..resolve import SchemaResolver, right_output_names

__all__ = ["apply", "strict_columns"]

_NULL_IN_NULL_OUT = {"+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "||"}


def _propagating(expr: Expr) -> set[str]:
    """Columns whose NULL makes ``expr`` NULL."""
    if isinstance(expr, Column):
        return {expr.name}
    if isinstance(expr, Binary) and expr.op in _NULL_IN_NULL_OUT:
        return _propagating(expr.left) | _propagating(expr.right)
    if isinstance(expr, Unary | Cast):
        return _propagating(expr.operand)
    return set()


def strict_columns(pred: Expr) -> set[str]:
    """Columns whose NULL makes the filter ``pred`` drop the row (NULL or false)."""
    if isinstance(pred, Binary) and pred.op == "and":
        return strict_columns(pred.left) | strict_columns(pred.right)
    if isinstance(pred, Binary) and pred.op == "or":
        return strict_columns(pred.left) & strict_columns(pred.right)
    if isinstance(pred, Unary) and pred.op == "not" and isinstance(pred.operand, IsNull):
        inner = pred.operand
        return set() if inner.negated else _propagating(inner.operand)
    if isinstance(pred, IsNull):
        return _propagating(pred.operand) if pred.negated else set()
    if isinstance(pred, Between):
        bounds = set() if pred.negated else _propagating(pred.low) | _propagating(pred.high)
        return _propagating(pred.operand) | bounds
    if isinstance(pred, InList):
        return _propagating(pred.operand)
    if isinstance(pred, Like):
        return _propagating(pred.operand) | _propagating(pred.pattern)
    return _propagating(pred)  # a comparison, or NOT of one: NULL in, NULL out


def _join(node: lp.Join, strict: set[str], resolver: SchemaResolver) -> lp.Node:
    left_schema, right_schema = resolver.schema(node.left), resolver.schema(node.right)
    back = {out: col for col, out in right_output_names(node, left_schema, right_schema)}
    right_strict = {back[c] for c in strict if c in back}
    how = node.how
    if how == "left" and right_strict:
        how = "inner"  # its null-extended rows would be dropped above
    left_strict = {c for c in strict if c in left_schema.names}
    if how == "inner":
        left_strict |= set(node.left_keys)
        right_strict |= set(node.right_keys)
    elif how not in ("left", "semi", "anti"):
        left_strict, right_strict = set(), set()  # right and full joins extend the left too
    if how != "inner":
        right_strict = set()
    return replace(
        node,
        how=how,
        left=_walk(node.left, left_strict, resolver),
        right=_walk(node.right, right_strict, resolver),
    )


def _walk(node: lp.Node, strict: set[str], resolver: SchemaResolver) -> lp.Node:
    if isinstance(node, lp.Filter):
        return replace(
            node, input=_walk(node.input, strict | strict_columns(node.predicate), resolver)
        )
    if isinstance(node, lp.Project):
        back = dict(node.columns)
        return replace(
            node, input=_walk(node.input, {back[c] for c in strict if c in back}, resolver)
        )
    if isinstance(node, lp.Map):
        made = dict(node.columns)
        down = {c for c in strict if c not in made}
        for c in strict & made.keys():
            down |= _propagating(made[c])
        return replace(node, input=_walk(node.input, down, resolver))
    if isinstance(node, lp.Sort | lp.Sink):
        return replace(node, input=_walk(node.input, strict, resolver))
    if isinstance(node, lp.Join):
        return _join(node, strict, resolver)
    return lp.replace_children(node, tuple(_walk(c, set(), resolver) for c in lp.children(node)))


def apply(node: lp.Node, resolver: SchemaResolver) -> lp.Node:
    return _walk(node, set(), resolver)
