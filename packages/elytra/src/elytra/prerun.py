"""Join sides run first: a side that reduces its input (a group-by, DISTINCT, a top-k) is
computed before the rest of the job, so that the other side's tasks can read it whole.

Without this, such a side is not a chain (its aggregate merges in the driver), so its join
runs in the driver's merge, and the other side's rows all come to the driver to meet it:
TPC-H q18 joins lineitem (6 M rows at SF 1) with the 57 orders its IN subquery keeps, and
all of lineitem's joined rows went to the coordinator (654 MiB on three platforms). Run
first, the side's rows go to a Parquet file in the job's directory, which is then a source
like any other: a broadcast side when it is small (the join is part of the big side's tasks,
an aggregate above it partial per task), else a side of a hash exchange. The answer is the
same: it is the same side, computed by the same engine.

A side is run first when it is known to keep few rows (an aggregate without group keys, one
under a HAVING or a limit, or a group-by of a chain small enough to broadcast) and its join could then be cut into the other side's tasks:
the other side is a chain (scans, filters, projections, broadcast joins) and the join type
lets the reduced side be the one read whole. Its own sides run first in turn (the side is planned as
a job of its own).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from emsqrt import plan as lp

from .reducers import reduces_a_group_by
from .sidesize import Broadcastable
from .sources import Source
from .stages import BROADCAST_LEFT, BROADCAST_RIGHT, chain_source

__all__ = ["first_side", "keeps_few_rows", "sides_first"]

_ABOVE = (lp.Project, lp.Map, lp.Filter, lp.Limit, lp.TopK)
"""What may stand between a join side's top and the aggregate that reduces it."""


def sides_first(root: lp.Node, sources: dict[str, Source], small: Broadcastable) -> list[lp.Node]:
    """Every join side of ``root`` to run first, outermost first (see the module)."""
    return list(_candidates(root, sources, small))


def first_side(root: lp.Node, sources: dict[str, Source], small: Broadcastable) -> lp.Node | None:
    """The outermost join side of ``root`` to run first, or None."""
    return next(_candidates(root, sources, small), None)


def _candidates(
    root: lp.Node, sources: dict[str, Source], small: Broadcastable
) -> Iterator[lp.Node]:
    yield from _repeated(root, sources)
    yield from _sides(root, sources, small)


def _repeated(root: lp.Node, sources: dict[str, Source]) -> Iterator[lp.Node]:
    """The outermost subtrees that occur more than once in ``root`` and aggregate: a CTE used
    twice (TPC-H q15's ``revenue0``, a group-by of lineitem) is planned at each use, and
    would be computed at each. Run first, its rows are computed once and every use reads
    them (the driver replaces each equal subtree: equal plans give equal rows)."""
    counts: Counter[lp.Node] = Counter()
    todo = [root]
    while todo:
        node = todo.pop()
        counts[node] += 1
        todo.extend(lp.children(node))
    if all(n < 2 for n in counts.values()):
        return

    seen: set[lp.Node] = set()

    def outermost(node: lp.Node) -> Iterator[lp.Node]:
        if counts[node] > 1 and _aggregates(node) and _over_sources(node, sources):
            if node not in seen:
                seen.add(node)
                yield node
            return
        for kid in lp.children(node):
            yield from outermost(kid)

    yield from outermost(root)


def _aggregates(node: lp.Node) -> bool:
    """Whether an aggregate is in ``node``'s subtree."""
    return isinstance(node, lp.Aggregate) or any(_aggregates(k) for k in lp.children(node))


def _sides(node: lp.Node, sources: dict[str, Source], small: Broadcastable) -> Iterator[lp.Node]:
    if isinstance(node, lp.Join):
        for reduced, other, allowed in (
            (node.right, node.left, BROADCAST_RIGHT),
            (node.left, node.right, BROADCAST_LEFT),
        ):
            if node.how in allowed and _worth_running_first(reduced, other, sources, small):
                yield reduced
                return  # its join is settled; what is above it is seen on the next pass
        chain = reduces_a_group_by(node, sources, small)
        if chain is not None and _over_sources(chain, sources):
            yield chain  # its keys reduce the group-by it meets (``reducers.py``)
            return
    for kid in lp.children(node):
        yield from _sides(kid, sources, small)


def _worth_running_first(
    reduced: lp.Node, other: lp.Node, sources: dict[str, Source], small: Broadcastable
) -> bool:
    if not keeps_few_rows(reduced, sources, small):
        return False  # a chain already (broadcast or exchanged as it is), or not reducing
    return chain_source(other, sources, small) is not None


def keeps_few_rows(node: lp.Node, sources: dict[str, Source], small: Broadcastable) -> bool:
    """Whether ``node`` is a join side of the kind run first: one known to keep few rows
    (:func:`_reduces`, :func:`_groups_a_small_chain`) over the job's sources."""
    if chain_source(node, sources) is not None or not _over_sources(node, sources):
        return False
    return _reduces(node) or _groups_a_small_chain(node, sources, small)


def _reduces(node: lp.Node) -> bool:
    """Whether ``node`` is known to keep few rows before it runs: an aggregate without group
    keys (one row), or one under a filter (a HAVING: q18's 57 of 1.5 M orders) or a limit.
    A plain group-by may keep as many groups as rows (q21's by order key: 1.5 M), and run
    first it would only add a round: its rows would be exchanged all the same."""
    reduced = False
    while isinstance(node, _ABOVE):
        reduced = reduced or isinstance(node, lp.Filter | lp.Limit | lp.TopK)
        node = node.input
    return isinstance(node, lp.Aggregate) and (reduced or not node.group_by)


def _groups_a_small_chain(node: lp.Node, sources: dict[str, Source], small: Broadcastable) -> bool:
    """Whether ``node`` is a group-by of a chain small enough to broadcast: it keeps at most
    that chain's rows (an ``IN`` subquery's distinct keys, TPC-H q20's parts named 'forest%')."""
    while isinstance(node, _ABOVE):
        node = node.input
    if not isinstance(node, lp.Aggregate):
        return False
    src = chain_source(node.input, sources)
    return src is not None and small(node.input, src)


def _over_sources(node: lp.Node, sources: dict[str, Source]) -> bool:
    """Whether every leaf under ``node`` is one of ``sources`` (not a merge's input)."""
    kids = lp.children(node)
    if not kids:
        return isinstance(node, lp.Input) and node.name in sources
    return all(_over_sources(k, sources) for k in kids)
