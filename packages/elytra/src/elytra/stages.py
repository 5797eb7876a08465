"""Cutting a logical plan into stages: per-part tasks, then a merge in the driver.

The plan is an emsqrt plan whose leaves are ``Input`` nodes naming sources. A *chain* is a
source leaf under filters, projections and computed columns: it runs on each part of the
source alone. Above a chain, the first operator decides the cut:

- an aggregate runs in emsqrt's ``partial`` mode per part and in ``final`` mode in the merge,
  over the concatenated partial states (emsqrt's documented state schema: AVG as sum and
  count, variances as (n, mean, m2), quantiles as the values, ...); COUNT(DISTINCT x) is
  first rewritten as an aggregate by (keys, x) under one by the keys, so it splits too;
- a top-k or a limit runs per part (each part keeps its own first n) and again at the merge;
- a sort sorts each part (a sorted run) and the merge sorts the runs;
- a join of two chains where one side reads at most ``broadcast_bytes`` (the compressed size of
  the Parquet columns its chain reads, from the footers, before any task runs;
  ``sidesize.py``) is a *broadcast join*: the small side is read whole by every
  task of the big side, so the join is part of the big side's chain (an aggregate above it is
  still partial per task) and nothing is exchanged;
- a join of two bigger chains is a hash-partitioned exchange (``exchange.py``): both stages'
  rows are written to partitions by key hash, then one task per partition joins its two
  files; the merge plan reads the joined rows;
- an aggregate, top-k, limit or sort over a union of chains (of one schema) runs per branch
  as above: each branch is a stage of its own, all in the same round of tasks, and the merge
  runs over the union of their results (a union alone has nothing to reduce: its rows come
  as they are);
- anything else (a join over a merged input, ...) takes the chain's rows as they are.

Each chain becomes one stage of tasks; in the merge plan it is replaced by an ``Input`` that
the driver feeds with the tasks' results. Partial states have the same schema on every
backend (``emsqrt.physical.aggregate.state_schema``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pyarrow as pa

from emsqrt import plan as lp
from emsqrt.planning import SchemaResolver, plan_to_json, prune_columns, rewrite_distinct
from platform_core import Schema

from .sidesize import side_bytes
from .sources import ArrowSource, Part, Source
from .task import Task

if TYPE_CHECKING:
    from .shuffle import Shuffle

__all__ = ["Exchange", "Stage", "StagePlan", "cut", "group_exchange"]

_LOCAL = (lp.Filter, lp.Project, lp.Map, lp.PyMap)


@dataclass
class Stage:
    """The tasks of one chain; their results feed ``Input(name)`` of the merge plan."""

    name: str
    source: Source
    plan: lp.Node
    """The per-part plan with the source leaf still an ``Input`` (see :meth:`task_plan`)."""
    schema: pa.Schema
    kind: str
    tasks: list[Task] = field(default_factory=list)
    broadcast: tuple[Broadcast, ...] = ()
    """The broadcast joins in ``plan`` (their small sides read whole by every task)."""
    shuffle: Shuffle | None = None
    """How its tasks partition their rows themselves (set by the driver), if they do."""
    raw: bool = False
    """A group-by stage whose tasks partition their input rows (``plan`` is the chain below
    the aggregate), not partial states: one task per partition runs the whole aggregate."""

    def as_rows(self) -> None:
        """Make this group-by stage send its rows, not partial states (see ``raw``)."""
        assert isinstance(self.plan, lp.Aggregate)
        self.plan = self.plan.input
        self.schema = SchemaResolver().schema(self.plan)
        self.kind = "rows partitioned for an aggregate"
        self.raw = True

    def broadcast_files(self) -> tuple[str, ...]:
        """Every file the broadcast sides read (each task reads them all)."""
        return tuple(
            f for b in self.broadcast for part in b.source.parts(1 << 62) for f in part.files
        )

    def broadcast_bytes(self) -> int:
        return sum(source_bytes(b.source) for b in self.broadcast)


def source_bytes(src: Source) -> int:
    """A source's size from the catalog (lake chunk sizes, file sizes), without reading it."""
    return sum(part.bytes for part in src.parts(1 << 62))


# Joins whose unmatched rows come only from the big side: the small side may be read whole by
# every task of the big side (right and full joins of a small right side would repeat its
# unmatched rows once per task).
_BROADCAST_RIGHT = ("inner", "left", "semi", "anti")
_BROADCAST_LEFT = ("inner", "right")


@dataclass
class Exchange:
    """A join of stages ``left`` and ``right`` by partitions; its rows feed ``Input(name)``."""

    name: str
    join: lp.Join
    left: int
    right: int
    schema: pa.Schema


@dataclass
class StagePlan:
    """Stages of tasks, the exchanges joining pairs of them, and the merge plan."""

    stages: list[Stage]
    merge: lp.Node
    driver_inputs: dict[str, pa.Table]
    """Arrow sources, which the merge plan reads as they are."""
    exchanges: list[Exchange] = field(default_factory=list)

    def exchange_sides(self) -> dict[int, tuple[Exchange, int]]:
        """Stage index -> (its exchange, side: 0 left, 1 right)."""
        out: dict[int, tuple[Exchange, int]] = {}
        for ex in self.exchanges:
            out[ex.left] = (ex, 0)
            out[ex.right] = (ex, 1)
        return out


@dataclass(frozen=True)
class Broadcast:
    """A join whose ``small_left`` (or right) side is read whole by every task of the other."""

    join: lp.Join
    small_left: bool
    source: Source
    """The small side's source."""

    @property
    def big(self) -> lp.Node:
        return self.join.right if self.small_left else self.join.left


def _walk(node: lp.Node, sources: dict[str, Source], small: int) -> tuple[lp.Node, list[Broadcast]]:
    """Down a chain's local operators and broadcast joins (their big side): the node below
    them and the broadcast joins passed, outermost first."""
    passed: list[Broadcast] = []
    while True:
        if isinstance(node, _LOCAL):
            node = node.input
            continue
        split = broadcast_split(node, sources, small) if isinstance(node, lp.Join) else None
        if split is None:
            return node, passed
        passed.append(split)
        node = split.big


def chain_source(node: lp.Node, sources: dict[str, Source], small: int = 0) -> Source | None:
    """The source under ``node`` if ``node`` is a chain: only local operators (and broadcast
    joins of a side of at most ``small`` bytes) down to it."""
    leaf, _ = _walk(node, sources, small)
    if isinstance(leaf, lp.Input) and leaf.name in sources:
        src = sources[leaf.name]
        return None if isinstance(src, ArrowSource) else src
    return None


def broadcast_split(join: lp.Join, sources: dict[str, Source], small: int) -> Broadcast | None:
    """``join`` as a broadcast join, when one side is a plain chain over a source of at most
    ``small`` bytes, on a side the join type allows (its unmatched rows must not repeat)."""
    if small <= 0:
        return None
    for big, little, allowed, small_left in (
        (join.left, join.right, _BROADCAST_RIGHT, False),
        (join.right, join.left, _BROADCAST_LEFT, True),
    ):
        if join.how not in allowed:
            continue
        src = chain_source(little, sources)
        if src is None or side_bytes(little, src) > small:
            continue
        if chain_source(big, sources, small) is None:
            continue
        return Broadcast(join, small_left, src)
    return None


def cut(root: lp.Node, sources: dict[str, Source], broadcast_bytes: int = 0) -> StagePlan:
    """Stages and the merge plan for ``root`` (see the module docstring); a join side of at
    most ``broadcast_bytes`` is broadcast (0: every join is exchanged)."""
    resolver = SchemaResolver()
    resolver.schema(root)  # unknown columns and type errors: before anything runs
    # a top-n or sort carries only the columns used above it: its tasks read, ship and
    # merge those alone (a per-task plan is optimized alone and cannot know them)
    root = prune_columns(root, resolver)
    stages: list[Stage] = []
    exchanges: list[Exchange] = []
    small = broadcast_bytes

    def chained(node: lp.Node) -> Source | None:
        return chain_source(node, sources, small)

    def stage_of(chain: lp.Node, kind: str, src: Source | None = None) -> lp.Input:
        src = src or chained(chain)
        assert src is not None
        name = f"stage{len(stages)}"
        schema = resolver.schema(chain)
        top = chain if isinstance(chain, (*_LOCAL, lp.Join)) else getattr(chain, "input", chain)
        found = tuple(_walk(top, sources, small)[1])
        if found:
            kind += ", broadcast join"
        stages.append(Stage(name, src, chain, schema, kind, broadcast=found))
        return lp.Input(name, Schema.from_arrow(schema))

    def union_of_chains(union: lp.Union) -> list[tuple[lp.Node, Source]] | None:
        """The union's inputs with their sources, when every input is a chain of the union's
        own schema (branches of other types would give partial states of other types)."""
        want = resolver.schema(union)
        out = []
        for branch in union.inputs:
            src = chained(branch)
            if src is None or not resolver.schema(branch).equals(want):
                return None
            out.append((branch, src))
        return out

    def per_branch(node: lp.Node, branches: list[tuple[lp.Node, Source]]) -> lp.Node | None:
        """An aggregate, top-k, limit or sort over a union of chains, run per branch on the
        workers (the union's branches are the tasks of one round, each its own stage) and
        merged over the union of their results: the rows do not all come to the driver."""
        n = len(branches)

        def each(kind: str, make: Callable[[lp.Node], lp.Node]) -> lp.Union:
            return lp.Union(
                tuple(
                    stage_of(make(b), f"{kind} (union branch {i + 1} of {n})", src)
                    for i, (b, src) in enumerate(branches)
                )
            )

        if isinstance(node, lp.Aggregate) and node.mode == "full":
            source = Schema.from_arrow(resolver.schema(node.input))
            partials = each("partial aggregate", lambda b: replace(node, input=b, mode="partial"))
            return replace(node, input=partials, mode="final", state_of=source)
        if isinstance(node, lp.TopK):
            return replace(node, input=each("top-k", lambda b: replace(node, input=b)))
        if isinstance(node, lp.Limit):
            kept = node.n + node.offset
            return replace(node, input=each("limit", lambda b: lp.Limit(b, kept, 0)))
        if isinstance(node, lp.Sort):
            return replace(node, input=each("sorted runs", lambda b: replace(node, input=b)))
        return None

    def visit(node: lp.Node) -> lp.Node:
        if isinstance(node, lp.Limit) and isinstance(node.input, lp.Sort):
            # sort().limit(n): each task keeps its first n + offset rows in order (a top-k),
            # instead of returning its whole chunk sorted
            top = lp.TopK(node.input.input, node.input.keys, node.n + node.offset)
            return visit(lp.Limit(top, node.n, node.offset) if node.offset else top)
        if isinstance(node, lp.Aggregate) and node.mode == "full":
            # COUNT(DISTINCT x) as an aggregate by (keys, x) under one by keys: the inner one
            # splits into partial states like any other
            rewritten = rewrite_distinct(node, resolver.schema(node.input))
            if rewritten is not None:
                return visit(rewritten)
        child = getattr(node, "input", None)
        branches = union_of_chains(child) if isinstance(child, lp.Union) else None
        if branches is not None:
            split = per_branch(node, branches)
            if split is not None:
                return split
        under = chained(child) if isinstance(child, lp.Node) else None
        if isinstance(child, lp.Node) and under is not None:
            if isinstance(node, lp.Aggregate) and node.mode == "full":
                partial = replace(node, mode="partial")
                leaf = stage_of(partial, "partial aggregate", under)
                source = Schema.from_arrow(resolver.schema(child))
                return replace(node, input=leaf, mode="final", state_of=source)
            if isinstance(node, lp.TopK):
                return replace(node, input=stage_of(node, "top-k", under))
            if isinstance(node, lp.Limit):
                local = lp.Limit(child, node.n + node.offset, 0)
                return replace(node, input=stage_of(local, "limit", under))
            if isinstance(node, lp.Sort):
                return replace(node, input=stage_of(node, "sorted runs", under))
        if isinstance(node, lp.Join):
            lsrc, rsrc = chained(node.left), chained(node.right)
            if (
                lsrc is not None
                and rsrc is not None
                and broadcast_split(node, sources, small) is None
            ):
                stage_of(node.left, "exchange: left side", lsrc)
                stage_of(node.right, "exchange: right side", rsrc)
                schema = resolver.schema(node)
                ex = Exchange(
                    f"exchange{len(exchanges)}", node, len(stages) - 2, len(stages) - 1, schema
                )
                exchanges.append(ex)
                return lp.Input(ex.name, Schema.from_arrow(schema))
        if chained(node) is not None and node is root:
            return stage_of(node, "scan")
        kids = lp.children(node)
        if not kids:
            return node
        new: list[lp.Node] = []
        for k in kids:
            if chained(k) is not None:
                new.append(stage_of(k, "scan"))
            else:
                new.append(visit(k))
        return lp.replace_children(node, tuple(new))

    merge = visit(root)
    driver_inputs = {
        name: src.table for name, src in sources.items() if isinstance(src, ArrowSource)
    }
    return StagePlan(stages, merge, driver_inputs, exchanges)


def _scans(
    src: Source, files: tuple[str, ...], ranges: tuple[tuple[int, int] | None, ...] = ()
) -> lp.Node:
    scans = [src.scan(f, r) for f, r in zip(files, ranges or (None,) * len(files), strict=True)]
    return scans[0] if len(scans) == 1 else lp.Union(tuple(scans))


def task_plan(stage: Stage, part: Part | tuple[str, ...]) -> str:
    """The stage's plan over ``part`` of its source (its files, each whole or the row groups
    the part names) and every file of its broadcast sides, as emsqrt plan JSON."""
    if isinstance(part, Part):
        leaf = _scans(stage.source, part.files, part.row_groups)
    else:
        leaf = _scans(stage.source, part)
    joins = {id(b.join): b for b in stage.broadcast}

    def whole(node: lp.Node, src: Source) -> lp.Node:
        if isinstance(node, lp.Input) and node.name == src.name:
            return _scans(src, tuple(f for p in src.parts(1 << 62) for f in p.files))
        kids = lp.children(node)
        return lp.replace_children(node, tuple(whole(k, src) for k in kids)) if kids else node

    def swap(node: lp.Node) -> lp.Node:
        if isinstance(node, lp.Join) and id(node) in joins:
            # by position: a self-join's two sides are one and the same node
            b = joins[id(node)]
            if b.small_left:
                return replace(node, left=whole(node.left, b.source), right=swap(node.right))
            return replace(node, left=swap(node.left), right=whole(node.right, b.source))
        if isinstance(node, lp.Input) and node.name == stage.source.name:
            return leaf
        kids = lp.children(node)
        return lp.replace_children(node, tuple(swap(k) for k in kids)) if kids else node

    return plan_to_json(swap(stage.plan))


SAMPLE_ROWS = 65536
"""Rows of a group-by's first part that :func:`many_groups` counts the groups of."""


def _row_width(schema: pa.Schema) -> int:
    """About how many Arrow bytes a row of ``schema`` takes (16 per variable-width column)."""
    width = 0
    for f in schema:
        try:
            width += max(f.type.bit_width // 8, 1)
        except ValueError:
            width += 16
    return width


ROWS_FRACTION = 0.7
"""A partial aggregate keeping at least this fraction of its rows as groups does not pay:
its stage partitions the rows themselves (see :func:`group_exchange`)."""


def group_exchange(stage: Stage, parts: list[Part], min_bytes: int, cap: int) -> str | None:
    """How a group-by stage (its plan a partial ``Aggregate``) goes through the exchange from
    the start: ``"states"`` when its partial states will pass ``min_bytes`` together (its
    tasks partition them instead of sending them to the driver first), ``"rows"`` when
    moreover the partial aggregate would keep about as many groups as rows (q10 of
    db-benchmark): the tasks partition their rows and skip it, and the task of each partition
    runs the whole aggregate once. ``None``: the states go to the driver (and to the
    exchange only if they pass ``min_bytes`` there).

    Counted, not guessed: the groups ``g`` of the first ``SAMPLE_ROWS`` rows of the first part
    and ``h`` of the first half of them. Under uniform keys, ``g / h = 1 + exp(-m / 2D)`` for
    ``m`` rows over ``D`` distinct keys, which gives ``D``; a part of ``R`` rows then keeps
    ``D (1 - exp(-R / D))`` groups (about ``R`` when ``g / h`` is near 2, ``g`` when near 1).
    A stage whose rows could not reach ``min_bytes`` even with one group per row is not
    sampled; nor one the kernel cannot run (its partial states still move to the exchange
    once they pass ``min_bytes`` in the driver)."""
    from emsqrt.planning import kernel_fragment, plan_from_json, run_statement
    from platform_core.expr.render import quote_identifier

    node = stage.plan
    total = stage.source.rows()
    if not isinstance(node, lp.Aggregate) or not node.group_by or not parts or not total:
        return None
    width = _row_width(stage.schema)
    if total * width < min_bytes:
        return None
    sample = replace(stage, plan=lp.Limit(node.input, SAMPLE_ROWS, 0), broadcast=stage.broadcast)
    plan = plan_from_json(task_plan(sample, parts[0].files), trusted=True)
    fragment = kernel_fragment(plan, cap)
    if fragment is None:
        return None
    keys = ", ".join(quote_identifier(k) for k in node.group_by)
    half = SAMPLE_ROWS // 2

    def wrap(sql: str) -> str:
        return (
            f"SELECT count(DISTINCT row({keys})) FILTER (WHERE __elytra_n <= {half}), "
            f"count(DISTINCT row({keys})), count(*) FROM "
            f"(SELECT *, row_number() OVER () AS __elytra_n FROM ({sql}))"
        )

    import tempfile

    with tempfile.TemporaryDirectory(prefix="elytra-sample-") as spill:
        got = run_statement(fragment, cap, spill, wrap)
    if not got:
        return None
    h, g, m = (int(x or 0) for x in got[0])
    if not g:
        return None
    per_part = total / len(parts)
    if m < SAMPLE_ROWS:  # the sample was the whole first part: its groups are known
        groups = float(g)
    else:
        ratio = g / max(h, 1)
        if ratio >= 1.98:
            groups = per_part
        elif ratio <= 1.02:
            groups = g
        else:
            distinct = (m / 2) / -math.log(ratio - 1)
            groups = distinct * (1 - math.exp(-per_part / distinct))
    if groups * len(parts) * width < min_bytes:
        return None
    return "rows" if groups >= ROWS_FRACTION * per_part else "states"


def replace_node(node: lp.Node, old: lp.Node, new: lp.Node) -> lp.Node:
    """``node`` with the subtree ``old`` (by identity) replaced by ``new``. Subtrees without
    ``old`` stay the same objects, so a second replacement (another stage's node, found by
    identity) still finds its node after the first."""
    if node is old:
        return new
    kids = lp.children(node)
    if not kids:
        return node
    replaced = tuple(replace_node(k, old, new) for k in kids)
    if all(a is b for a, b in zip(replaced, kids, strict=True)):
        return node
    return lp.replace_children(node, replaced)
