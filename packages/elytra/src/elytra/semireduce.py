"""Semi-join reduction: a group-by joined on its keys reads only the keys the join can match.

TPC-H q17 joins lineitem with the 200 parts its filter keeps, and, on the part key, with the
average quantity of every part (a correlated subquery, decorrelated into a group-by of all
of lineitem by part key: 200 k groups, whose partial states all went to the driver). Only
the groups of the 200 parts can match. So the group-by's input is first semi-joined with that
filtered part side (small: broadcast into the group-by's own tasks), and it keeps 200 groups.

The rewrite is exact. A join ``J`` (inner, left or semi) whose right side is a group-by ``G``
on key ``g`` keeps only the groups whose ``g`` equals the key ``k`` of a row of ``J``'s left
side ``L``. When every row of ``L`` passed an inner (or semi) join of ``k`` with a filtered
chain ``C`` on ``L``'s spine (the joins every row of ``L`` went through), then ``k`` is always
one of ``C``'s keys, and the groups whose ``g`` is not are never matched: dropping their rows
before ``G`` changes no group ``J`` keeps. Only where ``C`` is small enough to broadcast and
``G``'s input is a chain, so that the semi join runs in ``G``'s tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from emsqrt import plan as lp
from platform_core.expr.nodes import Column

from .sidesize import Broadcastable, side_size
from .sources import FileSource, Source
from .stages import chain_source, replace_node

__all__ = ["group_key", "reduce_group_sides", "well_reduced"]

_SEMI = "__elytra_semi_key"


def reduce_group_sides(root: lp.Node, sources: dict[str, Source], small: Broadcastable) -> lp.Node:
    """``root`` with each group-by that a join can reduce semi-joined with its reducer."""
    if small.limit <= 0:
        return root
    for _ in range(16):  # each pass rewrites one group-by; a plan has few
        found = next(_rewrites(root, sources, small), None)
        if found is None:
            break
        old, new = found
        root = replace_node(root, old, new)
    return root


def _rewrites(
    node: lp.Node, sources: dict[str, Source], small: Broadcastable
) -> Iterator[tuple[lp.Aggregate, lp.Aggregate]]:
    if isinstance(node, lp.Join) and node.how in ("inner", "left", "semi"):
        for lk, rk in zip(node.left_keys, node.right_keys, strict=True):
            group = group_key(node.right, rk)
            if group is None:
                continue
            agg, g = group
            if chain_source(agg.input, sources, small) is None:
                continue
            if _reduced(agg) and not _any_run_first(sources):
                continue  # reduced already, and no side run first to reduce it further
            reducer = _reducer(node.left, lk, sources, small)
            if reducer is None:
                continue
            chain, c = reducer
            rows = agg.input
            if isinstance(rows, lp.Join) and _reduced(agg):
                # reduced already; again only by a side run first (``reducers.py``: it
                # holds the keys that reach the join, fewer than a filtered chain's), and
                # only where the chain keeps much or cannot be counted here: a round of
                # tasks is not paid for a reduction the group-by has already
                if not _run_first(chain, sources) or well_reduced(agg, sources, small):
                    continue
                rows = rows.left
            keys = lp.Project(chain, ((_SEMI, c),))
            semi = lp.Join(rows, keys, (g,), (_SEMI,), "semi")
            yield agg, replace(agg, input=semi)
            return
    for kid in lp.children(node):
        yield from _rewrites(kid, sources, small)


WELL_REDUCED = 1 / 8
"""A group-by semi-joined with a filtered chain that keeps at most this fraction of its
source (q17's 200 of 200 k parts, q20's parts named 'forest%') is reduced well: a side run
first would not pay for its round of tasks."""


def well_reduced(agg: lp.Aggregate, sources: dict[str, Source], small: Broadcastable) -> bool:
    """Whether ``agg``'s input is semi-joined already with a chain that keeps little (see
    ``WELL_REDUCED``) or with a side run first. Not when what the chain keeps cannot be
    counted here (no file of it on this platform): on a cluster, a side run first goes
    with the tasks (a Ray object) and no longer pins them to the coordinator, so a chain
    that keeps little (``reducers.py``) is run first to reduce the group-by further (TPC-H
    q21 on three Ray platforms, whose coordinator holds no chunk of the orders)."""
    rows = agg.input
    if not (isinstance(rows, lp.Join) and rows.how == "semi" and _reduced(agg)):
        return False
    if _run_first(rows.right, sources):
        return True
    src = chain_source(rows.right, sources)
    if src is None:
        return True
    size = side_size(rows.right, src, small.locate, count_above=-1)
    return size.counted and size.held <= WELL_REDUCED * max(size.read, 1)


def _any_run_first(sources: dict[str, Source]) -> bool:
    return any(isinstance(s, FileSource) and s.run_first for s in sources.values())


def _run_first(node: lp.Node, sources: dict[str, Source]) -> bool:
    """Whether the chain ``node`` reads a side run first (``prerun.py``)."""
    src = chain_source(node, sources)
    return isinstance(src, FileSource) and src.run_first


def _reduced(agg: lp.Aggregate) -> bool:
    """Whether ``agg``'s input is already semi-joined by this rewrite."""
    node = agg.input
    return isinstance(node, lp.Join) and node.how == "semi" and node.right_keys == (_SEMI,)


def _through(node: lp.Node, col: str) -> tuple[lp.Node, str] | None:
    """One step down from ``node`` keeping column ``col``'s values: a filter, a projection or
    a plain column map (renames followed); None when ``col`` is computed or dropped there,
    or ``node`` is anything else."""
    if isinstance(node, lp.Filter):
        return node.input, col
    if isinstance(node, lp.Project):
        src = dict(node.columns).get(col)
        return None if src is None else (node.input, src)
    if isinstance(node, lp.Map):
        made = [e for name, e in node.columns if name == col]
        if made and not isinstance(made[-1], Column):
            return None
        return node.input, made[-1].name if made else col  # type: ignore[attr-defined]
    return None


def group_key(node: lp.Node, col: str) -> tuple[lp.Aggregate, str] | None:
    """The group-by under ``node`` and its group key that ``node``'s column ``col`` is, when
    only renames stand between them (projections, plain column maps, filters)."""
    while not isinstance(node, lp.Aggregate):
        step = _through(node, col)
        if step is None:
            return None
        node, col = step
    return (node, col) if node.mode == "full" and col in node.group_by else None


def _reducer(
    node: lp.Node, col: str, sources: dict[str, Source], small: Broadcastable
) -> tuple[lp.Node, str] | None:
    """A filtered chain that every row of ``node`` was inner- or semi-joined with on its
    column ``col`` (or that chain itself, whose column ``col`` is), and the chain's key
    column; None when there is none."""
    while True:
        keys = _small_keys(node, col, sources, small)
        if keys is not None:
            return keys  # every row reached here through inner joins came from it
        if isinstance(node, lp.Filter | lp.Project | lp.Map):
            step = _through(node, col)
            if step is None:
                return None  # computed here, not read from a join
            node, col = step
        elif isinstance(node, lp.Join) and node.how in ("inner", "semi"):
            for lk, rk in zip(node.left_keys, node.right_keys, strict=True):
                if lk != col:
                    continue
                keys = _small_keys(node.right, rk, sources, small)
                if keys is None and node.how == "inner":
                    keys = _small_keys(node.left, lk, sources, small)
                if keys is not None:
                    return keys
            # the column comes from one side: follow it there
            side = node.left if node.how == "semi" or _has(node.left, col) else node.right
            node = side
        elif isinstance(node, lp.Join) and node.how == "left":
            node = node.left  # the left rows all pass; the right side's may not
        else:
            return None


def _small_keys(
    node: lp.Node, col: str, sources: dict[str, Source], small: Broadcastable
) -> tuple[lp.Node, str] | None:
    """A filtered broadcastable chain whose column holds every value ``node``'s ``col`` can
    hold: ``node`` itself, or the input of the group-by whose key ``col`` is (an ``IN``
    subquery's distinct keys: the chain under it has the same keys, and more rows do not
    change a semi join)."""
    if _filtered_small(node, sources, small) and _has(node, col):
        return node, col
    group = group_key(node, col)
    if group is not None and _filtered_small(group[0].input, sources, small):
        return group[0].input, group[1]
    return None


def _filtered_small(node: lp.Node, sources: dict[str, Source], small: Broadcastable) -> bool:
    """A chain over a source, with a filter (or over a side run first), that ``small``
    broadcasts."""
    src = chain_source(node, sources)
    if src is None:
        return False
    if not _filters(node) and not (isinstance(src, FileSource) and src.run_first):
        return False
    return small(node, src)


def _filters(node: lp.Node) -> bool:
    while isinstance(node, lp.Filter | lp.Project | lp.Map):
        if isinstance(node, lp.Filter):
            return True
        node = node.input
    return False


def _has(node: lp.Node, col: str) -> bool:
    from emsqrt.planning import SchemaResolver

    try:
        return col in SchemaResolver().schema(node).names
    except Exception:  # a plan part the resolver cannot type: not this side
        return False
