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
- a join of two chains where one side keeps at most ``broadcast_bytes`` (the compressed size
  of the Parquet columns its chain reads, from the footers, before any task runs, times the
  fraction of rows its filters keep, counted on one of its files; ``sidesize.py``) is a
  *broadcast join*: the small side is read whole by every
  task of the big side, so the join is part of the big side's chain (an aggregate above it is
  still partial per task) and nothing is exchanged;
- a join of two bigger chains is a hash-partitioned exchange (``exchange.py``): both stages'
  rows are written to partitions by key hash, then one task per partition joins its two
  files. The exchange's partitions are a source like any other (:class:`ExchangeSource`):
  the chain above the join (filters, projections, broadcast joins) runs in the partition's
  task and the same cuts apply above it (a partial aggregate, a top-k, sorted runs), or the
  chain is itself a side of a next exchange. Exchanges so stack into rounds of tasks (a
  stage over an exchange runs once both its sides' stages are done), and only the last
  stage's reduced rows reach the merge;
- an aggregate, top-k, limit or sort over a union of chains (of one schema) runs per branch
  as above: each branch is a stage of its own, all in the same round of tasks, and the merge
  runs over the union of their results (a union alone has nothing to reduce: its rows come
  as they are);
- anything else (a join over a merged input, ...) takes the chain's rows as they are (a
  chain over an exchange: the joined rows).

Each chain becomes one stage of tasks; in the merge plan it is replaced by an ``Input`` that
the driver feeds with the tasks' results. Partial states have the same schema on every
backend (``emsqrt.physical.aggregate.state_schema``).
"""

from __future__ import annotations

import atexit
import hashlib
import math
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from emsqrt import plan as lp
from emsqrt.planning import (
    SchemaResolver,
    memory_limit,
    plan_to_json,
    prune_columns,
    rewrite_distinct,
)
from platform_core import Schema

from .keyrange import pruned_side
from .sidesize import NO_BROADCAST, Broadcastable
from .sources import ArrowSource, Part, Source
from .task import Task

if TYPE_CHECKING:
    from .shuffle import Shuffle

__all__ = [
    "Exchange",
    "ExchangeSource",
    "Stage",
    "StagePlan",
    "broadcast_joins",
    "cut",
    "group_exchange",
]

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
    parts: list[Part] = field(default_factory=list)
    """The part of its source each task reads, in the order of ``tasks`` (set by the driver;
    a later round that replaces the tasks' plans reads the same rows through them)."""
    broadcast: tuple[Broadcast, ...] = ()
    """The broadcast joins in ``plan`` (their small sides read whole by every task)."""
    shuffle: Shuffle | None = None
    """How its tasks partition their rows themselves (set by the driver), if they do."""
    wholes: tuple[Source, ...] = ()
    """Sources every task reads whole wherever the plan names them (a whole query's stage,
    :func:`whole_query`), beside ``source``."""
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

    def as_whole(self, final: lp.Aggregate) -> None:
        """Make this group-by stage run the whole aggregate (``final`` made ``full``) over its
        source, each task for one hash partition of the keys (``reread.py``)."""
        assert isinstance(self.plan, lp.Aggregate)
        self.plan = replace(final, input=self.plan.input, mode="full", state_of=None)
        self.schema = SchemaResolver().schema(self.plan)
        self.kind = "whole aggregate per key partition, the input reread"

    def broadcast_files(self) -> tuple[str, ...]:
        """Every file the broadcast sides (and the sources read whole) read: each task reads
        them all."""
        read = [b.source for b in self.broadcast] + list(self.wholes)
        return tuple(f for src in read for part in src.parts(1 << 62) for f in part.files)

    def broadcast_bytes(self) -> int:
        return sum(source_bytes(b.source) for b in self.broadcast) + sum(
            source_bytes(s) for s in self.wholes
        )


def source_bytes(src: Source) -> int:
    """A source's size from the catalog (lake chunk sizes, file sizes), without reading it."""
    return sum(part.bytes for part in src.parts(1 << 62))


def _size(src: Source) -> int:
    """``source_bytes``, and an exchange's sources' bytes for an exchange."""
    return src.size if isinstance(src, ExchangeSource) else source_bytes(src)


# Joins whose unmatched rows come only from the big side: the small side may be read whole by
# every task of the big side (right and full joins of a small right side would repeat its
# unmatched rows once per task).
BROADCAST_RIGHT = ("inner", "left", "semi", "anti")
BROADCAST_LEFT = ("inner", "right")


@dataclass
class Exchange:
    """A join of stages ``left`` and ``right`` by partitions; its joined rows are the source
    ``name`` (an :class:`ExchangeSource`) of the stage ``reader``."""

    name: str
    join: lp.Join
    left: int
    right: int
    schema: pa.Schema
    reader: int = -1
    """The stage whose tasks (one per partition) join the partitions and run its chain."""


@dataclass(frozen=True)
class ExchangeSource(Source):
    """The joined partitions of an exchange, as the source of the chain above the join: no
    parts before its sides' tasks have run (the driver makes one task per partition then)."""

    size: int = 0
    """The bytes of the sources under it (the catalog's sizes): never broadcast."""
    keys: tuple[str, ...] = ()
    """The join's key columns in its output: the columns its rows are partitioned by."""

    def describe(self) -> str:
        return f"the partitions of {self.name}"


@dataclass
class StagePlan:
    """Stages of tasks, the exchanges joining pairs of them, and the merge plan."""

    stages: list[Stage]
    merge: lp.Node
    driver_inputs: dict[str, pa.Table]
    """Arrow sources, which the merge plan reads as they are."""
    exchanges: list[Exchange] = field(default_factory=list)

    def over(self, stage: int) -> Exchange | None:
        """The exchange stage ``stage`` reads the partitions of, if it reads one."""
        name = self.stages[stage].source.name
        return next((ex for ex in self.exchanges if ex.name == name), None)

    def level(self, stage: int) -> int:
        """The round of tasks ``stage`` runs in: 0 over a plain source, else one past the
        later of its exchange's two sides."""
        ex = self.over(stage)
        return 0 if ex is None else 1 + max(self.level(ex.left), self.level(ex.right))

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


def _walk(
    node: lp.Node, sources: dict[str, Source], small: Broadcastable
) -> tuple[lp.Node, list[Broadcast]]:
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


def broadcast_joins(
    node: lp.Node, sources: dict[str, Source], small: Broadcastable
) -> list[Broadcast]:
    """The broadcast joins down the chain ``node``, outermost first (none: a plain chain)."""
    return _walk(node, sources, small)[1]


def chain_source(
    node: lp.Node, sources: dict[str, Source], small: Broadcastable = NO_BROADCAST
) -> Source | None:
    """The source under ``node`` if ``node`` is a chain: only local operators (and broadcast
    joins of a side ``small`` takes) down to it."""
    leaf, _ = _walk(node, sources, small)
    if isinstance(leaf, lp.Input) and leaf.name in sources:
        src = sources[leaf.name]
        return None if isinstance(src, ArrowSource) else src
    return None


def broadcast_split(
    join: lp.Join, sources: dict[str, Source], small: Broadcastable
) -> Broadcast | None:
    """``join`` as a broadcast join, when one side is a plain chain over a source ``small``
    takes, on a side the join type allows (its unmatched rows must not repeat)."""
    if small.limit <= 0:
        return None
    for big, little, allowed, small_left in (
        (join.left, join.right, BROADCAST_RIGHT, False),
        (join.right, join.left, BROADCAST_LEFT, True),
    ):
        if join.how not in allowed:
            continue
        src = chain_source(little, sources)
        if src is None or isinstance(src, ExchangeSource):
            continue
        if chain_source(big, sources, small) is None or not small(little, src):
            continue
        return Broadcast(join, small_left, src)
    return None


def cut(
    root: lp.Node,
    sources: dict[str, Source],
    broadcast_bytes: int = 0,
    locate: Callable[[str], str] | None = None,
) -> StagePlan:
    """Stages and the merge plan for ``root`` (see the module docstring); a join side that
    keeps at most ``broadcast_bytes`` is broadcast (0: every join is exchanged; ``locate``:
    where this node keeps a file a task names, for the side's Parquet footers)."""
    sources = dict(sources)  # exchanges add theirs
    resolver = SchemaResolver()
    resolver.schema(root)  # unknown columns and type errors: before anything runs
    # a top-n or sort carries only the columns used above it: its tasks read, ship and
    # merge those alone (a per-task plan is optimized alone and cannot know them)
    root = prune_columns(root, resolver)
    stages: list[Stage] = []
    exchanges: list[Exchange] = []
    small = Broadcastable(broadcast_bytes, locate)

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
            over = chained(node.input)
            if isinstance(over, ExchangeSource) and keyed_by(node, over):
                # grouped by the exchange's keys: each group is in one partition, whose task
                # runs the whole aggregate (no states to merge, no second exchange)
                return stage_of(node, "whole aggregate per partition, by the join keys", over)
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

    def lift(node: lp.Node) -> lp.Node:
        """Bottom up: each join of two chains that is not a broadcast becomes an exchange
        (its sides two stages), and the join in the plan the source of its partitions."""
        kids = lp.children(node)
        if kids:
            new = tuple(lift(k) for k in kids)
            if any(a is not b for a, b in zip(new, kids, strict=True)):
                node = lp.replace_children(node, new)
        if not isinstance(node, lp.Join):
            return node
        lsrc, rsrc = chained(node.left), chained(node.right)
        if lsrc is None or rsrc is None or broadcast_split(node, sources, small) is not None:
            return node
        stage_of(node.left, "exchange: left side", lsrc)
        stage_of(node.right, "exchange: right side", rsrc)
        schema = resolver.schema(node)
        name = f"exchange{len(exchanges)}"
        exchanges.append(Exchange(name, node, len(stages) - 2, len(stages) - 1, schema))
        size = sum(_size(s) for s in (lsrc, rsrc))
        sources[name] = ExchangeSource(name, schema, size=size, keys=node.left_keys)
        return lp.Input(name, Schema.from_arrow(schema))

    root = lift(root)
    merge = visit(root)
    for ex in exchanges:
        ex.reader = next(i for i, s in enumerate(stages) if s.source.name == ex.name)
    driver_inputs = {
        name: src.table for name, src in sources.items() if isinstance(src, ArrowSource)
    }
    return StagePlan(stages, merge, driver_inputs, exchanges)


def whole_query(root: lp.Node, sources: dict[str, Source], native: bool = False) -> StagePlan:
    """``root`` as one stage of one task that reads every source whole and runs the whole
    plan (a small query: one statement on one node, as a single machine runs it); the merge
    takes its rows as they are. The biggest source is the stage's own: it places the task.
    ``native``: DuckDB runs the query's own text there, ``root`` its fallback (``nativesql``)."""
    schema = SchemaResolver().schema(root)
    used = [sources[name] for name in input_names(root)]
    main = max(used, key=source_bytes)  # an empty one (no chunk) only when all are
    wholes = tuple(s for s in used if s is not main)
    kind = "whole query, every source read whole"
    if native:
        kind += ", the query's own text run by DuckDB"
    stage = Stage("stage0", main, root, schema, kind)
    stage.wholes = wholes
    return StagePlan([stage], lp.Input("stage0", Schema.from_arrow(schema)), {})


def input_names(node: lp.Node) -> list[str]:
    """The names of the ``Input`` leaves under ``node``, each once, in the order met."""
    seen: dict[str, None] = {}

    def walk(n: lp.Node) -> None:
        if isinstance(n, lp.Input):
            seen.setdefault(n.name)
        for k in lp.children(n):
            walk(k)

    walk(node)
    return list(seen)


def whole_scan(src: Source) -> lp.Node:
    """A scan of every file of ``src`` (of no rows with its columns when it has none)."""
    files = tuple(f for p in src.parts(1 << 62) for f in p.files)
    return _scans(src, files) if files else empty_scan(src.schema)


def one_part(src: Source) -> Part:
    """Every file of ``src`` as one part (a whole query's task reads them all)."""
    parts = src.parts(1 << 62)
    return Part(tuple(f for p in parts for f in p.files), sum(p.bytes for p in parts))


def keyed_by(agg: lp.Aggregate, src: ExchangeSource) -> bool:
    """Whether every key of the exchange ``src`` reaches the group keys of ``agg`` unchanged
    (through filters, and projections and computed columns that pass it on): then equal
    groups come from one partition only."""
    origins = set()
    for column in agg.group_by:
        node = agg.input
        while not isinstance(node, lp.Input):
            if isinstance(node, lp.Project):
                column = dict(node.columns).get(column, "")
            elif isinstance(node, lp.Map):
                if column in dict(node.columns):
                    break  # computed here: not the key
            elif not isinstance(node, lp.Filter):
                break  # a broadcast join, a Python step: not followed
            node = node.input
        else:
            if node.name == src.name:
                origins.add(column)
    return bool(src.keys) and set(src.keys) <= origins


def _scans(
    src: Source, files: tuple[str, ...], ranges: tuple[tuple[int, int] | None, ...] = ()
) -> lp.Node:
    scans = [src.scan(f, r) for f, r in zip(files, ranges or (None,) * len(files), strict=True)]
    return scans[0] if len(scans) == 1 else lp.Union(tuple(scans))


def empty_scan(schema: pa.Schema) -> lp.Node:
    """A scan of no rows with ``schema``'s columns: the broadcast side of an empty source (a
    lake dataset of no chunks), which has no file of its own to read. One file per schema,
    written once (temp file, then rename) and kept for every later query."""
    global _EMPTY_DIR
    with _EMPTY_LOCK:
        if _EMPTY_DIR is None or not _EMPTY_DIR.is_dir():  # (a temp cleaner may take it)
            _EMPTY_DIR = _empty_dir()
        path = _EMPTY_DIR / f"{hashlib.sha256(schema.serialize()).hexdigest()[:32]}.parquet"
        if not path.exists():
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
            pq.write_table(schema.empty_table(), tmp)
            os.replace(tmp, path)
    return lp.Scan(str(path), "parquet", Schema.from_arrow(schema))


def _empty_dir() -> Path:
    """This user's directory of empty files in the system's temp dir (one, however many
    processes and kills: a directory per process was left behind by every SIGKILL), or one of
    this process's own when that one is not safely ours (another owner, open to others)."""
    shared = Path(tempfile.gettempdir()) / f"elytra-empty-{os.getuid()}"
    try:
        shared.mkdir(mode=0o700, exist_ok=True)
        st = shared.lstat()
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
            return shared
    except OSError:
        pass
    own = Path(tempfile.mkdtemp(prefix="elytra-empty-"))
    atexit.register(shutil.rmtree, own, True)
    return own


_EMPTY_DIR: Path | None = None
_EMPTY_LOCK = threading.Lock()


def task_plan(stage: Stage, part: Part | tuple[str, ...] | lp.Node) -> str:
    """The stage's plan over ``part`` of its source (its files, each whole or the row groups
    the part names; or the node that reads it: an exchange partition's join) and every file
    of its broadcast sides, as emsqrt plan JSON."""
    if isinstance(part, Part) and not part.files:  # an empty lake dataset: no chunk
        leaf = empty_scan(stage.source.schema)
    elif isinstance(part, Part):
        leaf = _scans(stage.source, part.files, part.row_groups)
    elif isinstance(part, lp.Node):
        leaf = part
    else:
        leaf = _scans(stage.source, part)
    joins = {id(b.join): b for b in stage.broadcast}
    wholes = {src.name: src for src in stage.wholes}
    files = part.files if isinstance(part, Part) else () if isinstance(part, lp.Node) else part

    def whole(node: lp.Node, src: Source) -> lp.Node:
        if isinstance(node, lp.Input) and node.name == src.name:
            return whole_scan(src)
        kids = lp.children(node)
        return lp.replace_children(node, tuple(whole(k, src) for k in kids)) if kids else node

    def swap(node: lp.Node) -> lp.Node:
        if isinstance(node, lp.Join) and id(node) in joins:
            # by position: a self-join's two sides are one and the same node
            b = joins[id(node)]
            if b.small_left:
                side = pruned_side(
                    node, True, whole(node.left, b.source), b.source, stage.source, files
                )
                return replace(node, left=side, right=swap(node.right))
            side = pruned_side(
                node, False, whole(node.right, b.source), b.source, stage.source, files
            )
            return replace(node, left=swap(node.left), right=side)
        if isinstance(node, lp.Input) and node.name == stage.source.name:
            return leaf
        if isinstance(node, lp.Input) and node.name in wholes:
            return whole(node, wholes[node.name])
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


HASH_TABLE_FACTOR = 4
"""About how many bytes DuckDB's hash aggregate holds per byte of a group's Arrow state
(measured, one thread, 9.5e5 groups of sum/sum/count by a string or an integer key: peak RSS
5.5-6x the answer's Arrow bytes, Parquet reading included): the partial aggregate of a part
whose groups pass the kernel's memory limit by this estimate spills."""

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

    Counted, not guessed: the groups ``g`` of the ``m`` rows the chain keeps of the first
    ``SAMPLE_ROWS`` rows of the first part, and ``h`` of the first half of them. Under
    uniform keys, ``g / h = 1 + exp(-m / 2D)`` for ``m`` rows over ``D`` distinct keys, which
    gives ``D``; a part whose chain gives its aggregate ``R`` rows (its rows times
    ``m / SAMPLE_ROWS``) then keeps ``D (1 - exp(-R / D))`` groups (about ``R`` when
    ``g / h`` is near 2, ``g`` when near 1).
    A stage whose rows could not reach ``min_bytes`` even with one group per row is not
    sampled; nor one the kernel cannot run (its partial states still move to the exchange
    once they pass ``min_bytes`` in the driver)."""
    node = stage.plan
    total = stage.source.rows()
    if not isinstance(node, lp.Aggregate) or not node.group_by or not parts or not total:
        return None
    width = _row_width(stage.schema)
    if total * width < min_bytes:
        return None
    # the chain over the first SAMPLE_ROWS rows of the part, not its first SAMPLE_ROWS rows
    # out: a chain that keeps few (a semi join with a side run first) would read it all
    capped = _capped(node.input, stage.source.name, SAMPLE_ROWS)
    only_keys = lp.Project(capped, tuple((k, k) for k in node.group_by))
    sample = replace(stage, plan=only_keys, broadcast=stage.broadcast)
    text = task_plan(sample, parts[0].files)
    got = _sample_counts(text, node.group_by, cap)
    if got is None:
        return None
    h, g, m = got
    if not g:
        return None
    per_part = total / len(parts)
    if per_part <= SAMPLE_ROWS:  # the sample was the whole first part: its groups are known
        groups = float(g)
        kept = float(m)
    else:
        kept = per_part * m / SAMPLE_ROWS  # the rows a part's chain gives its aggregate
        ratio = g / max(h, 1)
        if ratio >= 1.98:
            groups = kept
        elif ratio <= 1.02:
            groups = g
        else:
            distinct = (m / 2) / -math.log(ratio - 1)
            groups = distinct * (1 - math.exp(-kept / distinct))
    if groups * len(parts) * width < min_bytes:
        return None
    # a partial aggregate whose hash table passes the kernel's share of the cap spills in
    # every task, then partitions states about as many as its rows: partitioning the rows
    # costs less (measured at 1e8 rows, q3's 34 tasks of 9.5e5 groups: 60-68 s as states,
    # 34.5 s as rows)
    spills = groups * width * HASH_TABLE_FACTOR > memory_limit(cap)
    return "rows" if groups >= ROWS_FRACTION * kept or spills else "states"


def _capped(node: lp.Node, name: str, n: int) -> lp.Node:
    """``node`` reading at most the first ``n`` rows of its source ``name``."""
    if isinstance(node, lp.Input):
        return lp.Limit(node, n, 0) if node.name == name else node
    kids = lp.children(node)
    return lp.replace_children(node, tuple(_capped(k, name, n) for k in kids)) if kids else node


_SAMPLES: dict[tuple[str, tuple[tuple[str, int, int], ...]], tuple[int, int, int] | None] = {}
"""Group counts of samples already taken, by the sample's plan and its files' sizes and
modification times (lake chunks never change): a repeated query plans without a statement."""
_SAMPLES_LOCK = threading.Lock()


def _sample_counts(text: str, keys: tuple[str, ...], cap: int) -> tuple[int, int, int] | None:
    """(groups in the first half, groups, rows) of the sample plan ``text`` (its keys only),
    or ``None`` when the kernel cannot run it. Keys are counted by their DuckDB ``hash`` (a
    collision among 65,536 values is negligible; NULLs, -0.0 and 0.0, NaNs hash alike, as
    they group alike)."""
    import os
    import tempfile

    from emsqrt.planning import kernel_fragment, plan_from_json, run_statement
    from platform_core.expr.render import quote_identifier

    plan = plan_from_json(text, trusted=True)
    try:
        files = tuple(
            (s.path, (st := os.stat(s.path)).st_size, st.st_mtime_ns) for s in _leaf_scans(plan)
        )
    except OSError:
        files = ()
    key = (text, files)
    with _SAMPLES_LOCK:
        if files and key in _SAMPLES:
            return _SAMPLES[key]
    fragment = kernel_fragment(plan, cap)
    if fragment is None:
        return None
    hashed = "hash(" + ", ".join(quote_identifier(k) for k in keys) + ")"

    def wrap(sql: str) -> str:  # h: the groups of the first half of the rows out
        return (
            "SELECT count(DISTINCT __elytra_h) FILTER (WHERE 2 * __elytra_n <= __elytra_m), "
            "count(DISTINCT __elytra_h), count(*) FROM "
            f"(SELECT {hashed} AS __elytra_h, row_number() OVER () AS __elytra_n, "
            f"count(*) OVER () AS __elytra_m FROM ({sql}))"
        )

    with tempfile.TemporaryDirectory(prefix="elytra-sample-") as spill:
        rows = run_statement(fragment, cap, spill, wrap)
    counts = None
    if rows:
        h, g, m = (int(x or 0) for x in rows[0])
        counts = (h, g, m)
    if files:
        with _SAMPLES_LOCK:
            while len(_SAMPLES) >= 256:
                _SAMPLES.pop(next(iter(_SAMPLES)))
            _SAMPLES[key] = counts
    return counts


def _leaf_scans(node: lp.Node) -> list[lp.Scan]:
    if isinstance(node, lp.Scan):
        return [node]
    return [s for k in lp.children(node) for s in _leaf_scans(k)]


HOLISTIC = ("median", "quantile_cont", "quantile_disc")
"""Aggregates whose partial state is the values themselves."""


def rereads(final: lp.Aggregate, how: str | None) -> bool:
    """Whether a group-by with this final aggregate is exchanged by rereading its input
    (``reread.py``): its partial aggregate keeps about one group per row (``how``:
    :func:`group_exchange`'s ``"rows"``), or its states are the values (median, quantiles)."""
    if not final.group_by or any(s.agg.distinct for s in final.aggregates):
        return False
    return how == "rows" or any(s.agg.name in HOLISTIC for s in final.aggregates)


def replace_equal(node: lp.Node, old: lp.Node, new: lp.Node) -> lp.Node:
    """``node`` with every subtree equal to ``old`` replaced by ``new`` (equal plans give
    equal rows: a side run first stands for each of its copies)."""
    return _replaced(node, lambda n: n == old, new)


def replace_node(node: lp.Node, old: lp.Node, new: lp.Node) -> lp.Node:
    """``node`` with the subtree ``old`` (by identity) replaced by ``new``. Subtrees without
    ``old`` stay the same objects, so a second replacement (another stage's node, found by
    identity) still finds its node after the first."""
    return _replaced(node, lambda n: n is old, new)


def _replaced(node: lp.Node, match: Callable[[lp.Node], bool], new: lp.Node) -> lp.Node:
    if match(node):
        return new
    kids = lp.children(node)
    if not kids:
        return node
    replaced = tuple(_replaced(k, match, new) for k in kids)
    if all(a is b for a, b in zip(replaced, kids, strict=True)):
        return node
    return lp.replace_children(node, replaced)
