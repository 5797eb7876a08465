"""Rule: a limit over a sort becomes a top-k; limits move below projections and computed
columns and into each input of a union; two limits merge."""

from __future__ import annotations

from dataclasses import replace

from .. import plan as lp
from ..resolve import SchemaResolver

__all__ = ["TOPK_MAX_ROWS", "apply"]

TOPK_MAX_ROWS = 100_000


def _limit(node: lp.Limit) -> lp.Node:
    child = node.input
    if isinstance(child, lp.Limit):
        offset = child.offset + node.offset
        n = max(0, min(node.n, child.n - node.offset))
        return _limit(lp.Limit(child.input, n, offset))
    if isinstance(child, lp.Sort) and node.n + node.offset <= TOPK_MAX_ROWS:
        top = lp.TopK(child.input, child.keys, node.n + node.offset)
        return lp.Limit(top, node.n, node.offset) if node.offset else top
    if isinstance(child, lp.Project | lp.Map):
        return replace(child, input=_limit(replace(node, input=child.input)))
    if isinstance(child, lp.Union):
        cap = node.n + node.offset
        inner = tuple(lp.Limit(i, cap) for i in child.inputs)
        return replace(node, input=replace(child, inputs=inner))
    return node


def apply(node: lp.Node, resolver: SchemaResolver) -> lp.Node:
    if isinstance(node, lp.Limit):
        node = _limit(node)
    return lp.replace_children(node, tuple(apply(c, resolver) for c in lp.children(node)))
