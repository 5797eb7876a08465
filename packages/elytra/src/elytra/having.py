"""A group-by under a HAVING finishes on its partitions, not in the driver's merge.

TPC-H q18's IN subquery groups all of lineitem by order key (1.5 M groups at SF 1) and keeps
the 57 orders whose quantity passes 300. Its partial states (35 MiB) came to the driver,
which merged them and dropped all but 57 rows: on three Ray platforms the one query past
issue 35's 16 MiB into the coordinator once q21 was reduced. The filters and projections
right above a final aggregate keep or drop each group's row alone, so the task that
finishes a partition's groups can run them too; such a group-by goes through the exchange
from ``HAVING_EXCHANGE_BYTES`` of states (not ``exchange_min_bytes``), its tasks partition
their own states, and the driver gets only the rows the HAVING keeps.
"""

from __future__ import annotations

from emsqrt import plan as lp

__all__ = ["HAVING_EXCHANGE_BYTES", "above_final", "exchange_bytes"]

HAVING_EXCHANGE_BYTES = 16 << 20
"""Partial states of a group-by under a HAVING past which it finishes on its partitions."""


def above_final(root: lp.Node, final: lp.Aggregate) -> lp.Node:
    """The highest of the filters and projections right above ``final`` in ``root`` (found
    by identity), or ``final`` itself when there are none."""
    path = _path(root, final)
    top: lp.Node = final
    for node in reversed(path[:-1]):
        if not isinstance(node, (lp.Filter, lp.Project)) or node.input is not top:
            break
        top = node
    return top


def exchange_bytes(root: lp.Node, final: lp.Aggregate, min_bytes: int) -> int:
    """The states past which ``final``'s group-by goes through the exchange: at most
    ``HAVING_EXCHANGE_BYTES`` under a HAVING (a filter in :func:`above_final`'s chain)."""
    node = above_final(root, final)
    while node is not final:
        if isinstance(node, lp.Filter):
            return min(min_bytes, HAVING_EXCHANGE_BYTES)
        assert isinstance(node, lp.Project)
        node = node.input
    return min_bytes


def _path(root: lp.Node, target: lp.Node) -> list[lp.Node]:
    """The nodes from ``root`` down to ``target`` (by identity); empty when not there."""
    if root is target:
        return [root]
    for kid in lp.children(root):
        below = _path(kid, target)
        if below:
            return [root, *below]
    return []
