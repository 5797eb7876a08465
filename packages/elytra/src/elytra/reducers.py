"""Chains run first to reduce a group-by: the dynamic semi join of a decorrelated ``EXISTS``.

TPC-H q21 keeps the lineitems of one nation's suppliers whose orders failed (75 k of 6 M
rows: a chain over lineitem with two broadcast joins), and asks of each whether another
supplier's line of the same order exists. sqlglot decorrelates the ``EXISTS`` into a
group-by of all of lineitem by order key (1.5 M groups) joined to that chain on the key. Only
the groups of the chain's 75 k order keys can match, but none of the chain's filters is on
the key, so semi-join reduction (``semireduce.py``) has no small chain to reduce by: the keys
are known only once the chain has run. DuckDB's plan gets them the same way (a delim join
runs the outer side first and pushes its keys into the subquery).

So such a chain is run first (``prerun.py``), into a file that semireduce then uses as the
reducer: the group-by's tasks semi-join their rows with the file's keys and keep 75 k groups.
A chain qualifies when it joins a group-by on the group's key (an inner, left or semi join
with the chain on the left) and what it keeps, counted on a sample of its source with its
broadcast sides read whole, is small enough to broadcast. The count is DuckDB's over the
same rows a side's filters are counted on (``sidesize.py``), cached by plan and files.
"""

from __future__ import annotations

import os

from emsqrt import plan as lp

from .semireduce import group_key, well_reduced
from .sidesize import Broadcastable, counted_fraction, side_bytes, side_size
from .sources import Source
from .stages import Broadcast, broadcast_joins, chain_source

__all__ = ["reduces_a_group_by"]


def reduces_a_group_by(
    join: lp.Join, sources: dict[str, Source], small: Broadcastable
) -> lp.Node | None:
    """``join``'s left side, when it is a chain through broadcast joins that keeps little and
    ``join`` matches it to a group-by on the group's key (see the module); else None."""
    if join.how not in ("inner", "left", "semi") or small.limit <= 0:
        return None
    chain = join.left
    src = chain_source(chain, sources, small)
    if src is None or chain_source(chain, sources) is not None:
        return None  # not a chain, or one without joins (semireduce weighs those itself)
    groups = [g[0] for rk in join.right_keys if (g := group_key(join.right, rk)) is not None]
    if not any(_worth_reducing(g, sources, small) for g in groups):
        return None
    kept = _joined_fraction(chain, src, sources, small)
    if kept is None:
        return None
    return chain if side_bytes(chain, src, small.locate) * kept <= small.limit else None


def _worth_reducing(agg: lp.Aggregate, sources: dict[str, Source], small: Broadcastable) -> bool:
    """Whether ``agg``'s input is a chain (its tasks can semi-join) not reduced well already
    (``semireduce.well_reduced``: a side run first would not pay for its round)."""
    if chain_source(agg.input, sources, small) is None:
        return False
    return not well_reduced(agg, sources, small)


def _joined_fraction(
    chain: lp.Node, src: Source, sources: dict[str, Source], small: Broadcastable
) -> float | None:
    """The fraction of ``src``'s rows that ``chain`` keeps through its filters and joins:
    DuckDB's count over a sample of one of ``src``'s files here, each broadcast side read
    whole from its files here; None when a file is not here or the kernel cannot count."""
    locate = small.locate or (lambda f: f)
    here = [locate(f) for part in src.parts(1) for f in part.files]
    path = next((f for f in here if f.endswith(".parquet") and os.path.exists(f)), None)
    if path is None:
        return None
    passed = broadcast_joins(chain, sources, small)
    whole: dict[str, lp.Node] = {}
    for b in passed:
        paths = [locate(f) for part in b.source.parts(1 << 62) for f in part.files]
        if not paths or not all(os.path.exists(f) for f in paths):
            return _estimated_fraction(passed, src, path, small)
        scans = [b.source.scan(f) for f in paths]
        whole[b.source.name] = scans[0] if len(scans) == 1 else lp.Union(tuple(scans))
    also = tuple(s.path for n in whole.values() for s in _scans_of(n))
    return counted_fraction(_with_scans(chain, whole), src, path, _leaf_columns(chain, src), also)


def _estimated_fraction(
    passed: list[Broadcast], src: Source, path: str, small: Broadcastable
) -> float | None:
    """``_joined_fraction`` where a broadcast side is not wholly on this platform (on a
    cluster, a chunk of it only a peer keeps): the fraction ``src``'s own filters keep,
    counted on ``path``, times, for each inner or semi broadcast join, the fraction its side's
    filters keep, counted on a file of the side here (1 where none is). A join on a key the
    side holds once (TPC-H's foreign keys) keeps the big side's rows in the proportion the
    side keeps its own; filters above the joins are left out, so the estimate errs high."""
    below = passed[-1].big
    kept = counted_fraction(below, src, path, _leaf_columns(below, src))
    if kept is None:
        return None
    for b in passed:
        if b.join.how not in ("inner", "semi"):
            continue
        side = b.join.left if b.small_left else b.join.right
        size = side_size(side, b.source, small.locate, count_above=-1)
        if size.counted:
            kept *= size.held / max(size.read, 1)
    return kept


def _leaf_columns(node: lp.Node, src: Source) -> set[str] | None:
    """The columns of ``src`` that the projection right above its leaf keeps (SQL's chains
    have one), so the sample decodes only those; None: all of them."""
    above: lp.Node | None = None
    while True:
        if isinstance(node, lp.Input):
            if node.name == src.name and isinstance(above, lp.Project):
                return {c for _, c in above.columns}
            return None
        kids = [k for k in lp.children(node) if _reads(k, src.name)]
        if len(kids) != 1:
            return None
        above, node = node, kids[0]


def _reads(node: lp.Node, name: str) -> bool:
    if isinstance(node, lp.Input):
        return node.name == name
    return any(_reads(k, name) for k in lp.children(node))


def _with_scans(node: lp.Node, whole: dict[str, lp.Node]) -> lp.Node:
    """``node`` with each broadcast side's ``Input`` read whole from its files."""
    if isinstance(node, lp.Input) and node.name in whole:
        return whole[node.name]
    kids = lp.children(node)
    return lp.replace_children(node, tuple(_with_scans(k, whole) for k in kids)) if kids else node


def _scans_of(node: lp.Node) -> list[lp.Scan]:
    if isinstance(node, lp.Scan):
        return [node]
    return [s for k in lp.children(node) for s in _scans_of(k)]
