"""A join with a side that keeps few rows, moved down to the join input its keys come from.

sqlglot's decorrelated ``IN`` joins the subquery's rows above every join of the outer query:
TPC-H q18 joins lineitem with orders and customer first, and only then with the order keys
its ``HAVING`` keeps (57 at SF 1, 624 at SF 10). There the side cannot run first
(``prerun.py``: its other side is a hash exchange, not a chain), so the join ran in the
driver's merge and every joined row of lineitem and orders came to the coordinator: 4.3 GiB
at SF 10. Joined to lineitem's chain instead, the side runs first, is broadcast into
lineitem's tasks, and only the rows it keeps are exchanged with orders.

The rewrite, for a join ``J`` of ``X`` with a side ``R`` that prerun would run first:
``(A ⋈ B) J R`` becomes ``(A J R) ⋈ B`` when ``J``'s left keys are all columns of ``A``
(``A ⋈ (B J R)`` for ``B``'s), where ``⋈`` is an inner join and ``J`` inner, left, semi or
anti. ``J``'s condition reads only ``A`` (or ``B``) and ``R``, and an inner join keeps a row
of ``A`` exactly when it meets a row of ``B``, so which rows meet does not depend on the order.
It is repeated while the keys stay in one input of an inner join, and the result is projected
back to ``J``'s columns in ``J``'s order. Not done where a name of ``R``'s output is also one
of ``A ⋈ B``'s (a join renames a clash by the side it comes from: the names would differ).
"""

from __future__ import annotations

from emsqrt import plan as lp
from emsqrt.planning import SchemaResolver, right_output_names

from .prerun import keeps_few_rows
from .sidesize import Broadcastable
from .sources import Source

__all__ = ["push_reduced_joins"]

_MOVABLE = ("inner", "left", "semi", "anti")
"""Join types whose condition can be applied below an inner join of their left input."""


def push_reduced_joins(root: lp.Node, sources: dict[str, Source], small: Broadcastable) -> lp.Node:
    """``root`` with each join of a side that keeps few rows moved down to the input of the
    inner joins below it that its keys come from (see the module docstring)."""
    return _visit(root, sources, small, SchemaResolver())


def _visit(
    node: lp.Node, sources: dict[str, Source], small: Broadcastable, resolver: SchemaResolver
) -> lp.Node:
    kids = lp.children(node)
    if kids:
        new = tuple(_visit(k, sources, small, resolver) for k in kids)
        if any(a is not b for a, b in zip(new, kids, strict=True)):
            node = lp.replace_children(node, new)
    if (
        isinstance(node, lp.Join)
        and node.how in _MOVABLE
        and isinstance(node.left, lp.Join)
        and keeps_few_rows(node.right, sources, small)
    ):
        pushed = _pushed(node, resolver)
        if pushed is not None:
            return lp.Project(pushed, tuple((c, c) for c in _names(node, resolver)))
    return node


def _names(node: lp.Node, resolver: SchemaResolver) -> list[str]:
    return list(resolver.schema(node).names)


def _pushed(join: lp.Join, resolver: SchemaResolver) -> lp.Node | None:
    """``join`` (of an inner join and a side) with the side joined below that inner join, to
    the input holding the keys, as deep as they stay in one input; None where it cannot go."""
    below = join.left
    if not isinstance(below, lp.Join) or below.how != "inner":
        return None
    a, b = resolver.schema(below.left), resolver.schema(below.right)
    left, right = set(a.names), set(b.names)
    side_names = set(_names(join.right, resolver)) - set(join.right_keys)
    if side_names & (left | right | set(_names(below, resolver))):
        return None  # a clash is renamed by the side it comes from: the names would move
    # A's names are A's columns above the join; a name of B's is B's column there only where
    # the join did not rename it (a clash gets ``_right``, and so may a clash of that), and B's
    # keys are not there at all
    b_own = {name for name, out in right_output_names(below, a, b) if name == out}
    keys = set(join.left_keys)
    for put_left in (True, False):
        target = below.left if put_left else below.right
        if not keys <= (left if put_left else b_own):
            continue
        moved = lp.Join(target, join.right, join.left_keys, join.right_keys, join.how)
        deeper = _pushed(moved, resolver)
        moved_node = deeper if deeper is not None else moved
        if put_left:
            return lp.Join(moved_node, below.right, below.left_keys, below.right_keys, "inner")
        return lp.Join(below.left, moved_node, below.left_keys, below.right_keys, "inner")
    return None
