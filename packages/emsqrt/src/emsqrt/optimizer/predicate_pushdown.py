"""Rule: move filters towards the scans: through projections (renaming), computed columns
they do not read, sorts, unions and the matching side of joins, merging into the scan."""

from __future__ import annotations

from dataclasses import replace

from platform_core.expr import Expr

from .. import plan as lp
from ..resolve import SchemaResolver, right_output_names
from ._exprs import and_all, columns_of, conjuncts, rename_columns

__all__ = ["apply"]


def _filter(node: lp.Node, parts: list[Expr]) -> lp.Node:
    return lp.Filter(node, and_all(parts)) if parts else node


def _push(child: lp.Node, parts: list[Expr], resolver: SchemaResolver) -> lp.Node:
    """``Filter(child, AND(parts))`` with as much as possible pushed below ``child``."""
    if not parts:
        return child
    if isinstance(child, lp.Filter):
        return _push(child.input, conjuncts(child.predicate) + parts, resolver)
    if isinstance(child, lp.Scan):
        existing = [] if child.predicate is None else conjuncts(child.predicate)
        return replace(child, predicate=and_all(existing + parts))
    if isinstance(child, lp.Project):
        back = {o: i for o, i in child.columns}
        return replace(
            child, input=_push(child.input, [rename_columns(p, back) for p in parts], resolver)
        )
    if isinstance(child, lp.Map):
        made = {n for n, _ in child.columns}
        down = [p for p in parts if not columns_of(p) & made]
        stay = [p for p in parts if columns_of(p) & made]
        return _filter(replace(child, input=_push(child.input, down, resolver)), stay)
    if isinstance(child, lp.Sort):
        return replace(child, input=_push(child.input, parts, resolver))
    if isinstance(child, lp.Union):
        return replace(child, inputs=tuple(_push(i, parts, resolver) for i in child.inputs))
    if isinstance(child, lp.Join):
        return _push_join(child, parts, resolver)
    return _filter(child, parts)


def _push_join(join: lp.Join, parts: list[Expr], resolver: SchemaResolver) -> lp.Node:
    left_names = set(resolver.schema(join.left).names)
    renames = dict(
        right_output_names(join, resolver.schema(join.left), resolver.schema(join.right))
    )
    back = {new: old for old, new in renames.items()}
    to_left, to_right, stay = [], [], []
    for p in parts:
        cols = columns_of(p)
        if cols <= left_names and join.how in ("inner", "left", "semi", "anti"):
            to_left.append(p)
            continue
        if cols and cols <= set(back) and join.how in ("inner", "right"):
            to_right.append(rename_columns(p, back))
            continue
        stay.append(p)
    new = replace(
        join,
        left=_push(join.left, to_left, resolver),
        right=_push(join.right, to_right, resolver),
    )
    return _filter(new, stay)


def apply(node: lp.Node, resolver: SchemaResolver) -> lp.Node:
    if isinstance(node, lp.Filter):
        return apply_below(_push(node.input, conjuncts(node.predicate), resolver), resolver)
    return lp.replace_children(node, tuple(apply(c, resolver) for c in lp.children(node)))


def apply_below(node: lp.Node, resolver: SchemaResolver) -> lp.Node:
    """Continue under a node produced by a push (its own filters are already in place)."""
    if isinstance(node, lp.Filter):
        return lp.Filter(apply_below(node.input, resolver), node.predicate)
    return lp.replace_children(node, tuple(apply(c, resolver) for c in lp.children(node)))
