"""What a join side costs to broadcast: the bytes its chain reads, and the bytes it keeps.

A side's files hold every column, but a chain reads only some (TPC-H q05 reads 2 of
customer's 8 columns: 1 MB of its 14 MB), so the broadcast decision weighs the compressed
size of those columns' chunks, from the Parquet footers of files on this machine. A lake
chunk a task names by hash (``lake-chunk:``) is weighed where this node keeps it; one kept
only by a peer counts as its size times the share those columns take of the chunks here (or,
when none is here, of a row's width by the columns' types).

A side's filters keep a fraction of what it reads (q05's orders of one year: a seventh). That
fraction is counted, not guessed: the chain runs over up to eight row groups spread over one
file of the side that is on this machine (its columns only, one DuckDB statement, cached by
the file and the plan), and the rows it keeps over those rows scale what the side reads into
what it holds.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

import pyarrow as pa
import pyarrow.parquet as pq

from emsqrt import plan as lp
from emsqrt.planning import kernel_fragment, plan_to_json, run_statement
from platform_core.expr import Expr
from platform_core.expr.nodes import Column, walk

from .sources import Source

__all__ = [
    "NO_BROADCAST",
    "Broadcastable",
    "SideSize",
    "anonymous",
    "counted_fraction",
    "sample_rows",
    "side_bytes",
    "side_size",
]

SAMPLE_CAP = 64 << 20
"""The cap the planner's count of a side's kept rows runs under (one statement, one thread,
in the driver's process, over a sample of at most 64 k rows)."""

SAMPLE_ROWS_PER_GROUP = 8192
"""Rows the count keeps of each row group it samples: slices spread over the group."""

_SLICE = 1024

SAMPLE_GROUPS = 8
"""Row groups of one file the count reads at most: planning stays cheap on a big file."""

READ_FACTOR = 4
"""A side whose filters keep little is broadcast only while it reads at most this many times
the broadcast limit: every task of the other side reads it whole."""


@dataclass(frozen=True)
class SideSize:
    """A join side's compressed bytes: what its tasks read, and what its filters keep."""

    read: int
    held: int
    counted: bool = False
    """Whether ``held`` was counted on a sample (else it is ``read``: no file of the side
    here, no filter, or the kernel could not count)."""


def _columns_used(chain: lp.Node) -> set[str] | None:
    """The source columns the chain's output needs, from the top down (a projection keeps
    what it names, a filter and a computed column add what they read); None: all of them."""
    nodes = _local_nodes(chain)
    if nodes is None:
        return None
    needed: set[str] | None = None
    for n in nodes:
        if isinstance(n, lp.Project):
            needed = {src for out, src in n.columns if needed is None or out in needed}
        elif isinstance(n, lp.Filter) and needed is not None:
            needed |= _refs(n.predicate)
        elif isinstance(n, lp.Map) and needed is not None:
            for name, e in reversed(n.columns):
                if name in needed:
                    needed.discard(name)
                    needed |= _refs(e)
    return needed


def _local_nodes(chain: lp.Node) -> list[lp.Node] | None:
    """The chain's projections, filters and computed columns from the top down; None when
    it holds anything else (a Python function may read any column)."""
    nodes: list[lp.Node] = []
    node: object = chain
    while isinstance(node, lp.Node) and not isinstance(node, lp.Input | lp.Scan):
        if isinstance(node, lp.PyMap) or not isinstance(node, lp.Project | lp.Filter | lp.Map):
            return None
        nodes.append(node)
        node = node.input
    return nodes


def _refs(e: Expr) -> set[str]:
    return {n.name for n in walk(e) if isinstance(n, Column)}


@lru_cache(maxsize=4096)
def _column_bytes(path: str, mtime_ns: int, size: int) -> dict[str, int]:
    """Compressed bytes per top-level column of a Parquet file (its footer only)."""
    meta = pq.read_metadata(path)
    # each leaf column to its top-level field by position: a name may hold a dot ("big.col"
    # is one flat column, found from outside), so the leaf's dotted path cannot tell
    tops = [f.name for f in meta.schema.to_arrow_schema() for _ in range(_leaves(f.type))]
    if len(tops) != meta.num_columns:  # a layout this does not know: by the dotted path
        tops = [meta.schema.column(i).path.split(".", 1)[0] for i in range(meta.num_columns)]
    out: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for i in range(rg.num_columns):
            out[tops[i]] = out.get(tops[i], 0) + rg.column(i).total_compressed_size
    return out


def _leaves(t: pa.DataType) -> int:
    """How many Parquet leaf columns a value of type ``t`` is stored in."""
    if pa.types.is_struct(t):
        return sum(_leaves(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _leaves(t.key_type) + _leaves(t.item_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _leaves(t.value_type)
    return 1


def side_bytes(chain: lp.Node, src: Source, locate: Callable[[str], str] | None = None) -> int:
    """The bytes ``chain`` reads of ``src``: its columns' share of each Parquet file here
    (``locate``: where this node keeps a file a task names), scaled for the others."""
    return _read(chain, src, locate or (lambda f: f))[0]


def plan_read_bytes(
    root: lp.Node, sources: Mapping[str, Source], locate: Callable[[str], str] | None = None
) -> int:
    """The bytes ``root`` reads of its sources: for each place it reads one (a source read
    twice counts twice), the share of its files that the columns used there take
    (:func:`side_bytes` of the projections, filters and computed columns right above)."""
    total = 0

    def visit(node: lp.Node, chain: lp.Node | None) -> None:
        nonlocal total
        if isinstance(node, lp.Input):
            total += side_bytes(chain or node, sources[node.name], locate)
            return
        local = isinstance(node, lp.Project | lp.Filter | lp.Map)  # no Python function
        for kid in lp.children(node):
            visit(kid, (chain or node) if local else None)

    visit(root, None)
    return total


def side_size(
    chain: lp.Node,
    src: Source,
    locate: Callable[[str], str] | None = None,
    count_above: int = 0,
) -> SideSize:
    """What ``chain`` reads of ``src`` and what its filters keep of it (see the module); the
    kept rows are counted only for a side reading more than ``count_above`` bytes."""
    read, sample = _read(chain, src, locate or (lambda f: f))
    filtered = any(isinstance(n, lp.Filter) for n in _local_nodes(chain) or ())
    if sample is None or not filtered or read <= count_above:
        return SideSize(read, read)
    kept = counted_fraction(chain, src, sample, _columns_used(chain))
    return SideSize(read, read) if kept is None else SideSize(read, int(read * kept), True)


@dataclass(frozen=True)
class Broadcastable:
    """Which join sides are broadcast: those that keep at most ``limit`` bytes after their
    filters and read at most ``READ_FACTOR`` times that (``locate``: where this node keeps a
    file a task names)."""

    limit: int
    locate: Callable[[str], str] | None = None

    def __call__(self, chain: lp.Node, src: Source) -> bool:
        if self.limit <= 0:
            return False
        if side_bytes(chain, src, self.locate) > READ_FACTOR * self.limit:
            return False  # refused whatever its filters keep: no statement to count them
        size = side_size(chain, src, self.locate, count_above=self.limit)
        if size.read > READ_FACTOR * self.limit:
            return False
        return size.held <= self.limit


NO_BROADCAST = Broadcastable(0)
"""Every join exchanged."""


def _read(chain: lp.Node, src: Source, locate: Callable[[str], str]) -> tuple[int, str | None]:
    """(the bytes ``chain`` reads of ``src``, a Parquet file of it on this machine or None)."""
    used = _columns_used(chain)
    here_used = here_all = elsewhere = 0
    sample: str | None = None
    for part in src.parts(1):  # a part per file where the source can: each file's own size
        share = part.bytes // max(len(part.files), 1)
        for f in part.files:
            columns = _parquet_columns(locate(f))
            if columns is None:
                elsewhere += share
                continue
            sample = sample or locate(f)
            here_all += sum(columns.values())
            here_used += share if used is None else sum(b for n, b in columns.items() if n in used)
    if used is None:
        return here_used + elsewhere, sample
    if not here_all:  # no file of it here: the columns' share of a row's width
        return int(
            elsewhere * _width_share(src.schema, used)
        ) if src.splittable() else elsewhere, None
    return here_used + elsewhere * here_used // here_all, sample


def _width_share(schema: pa.Schema, used: set[str]) -> float:
    """The share of a row's bytes that the ``used`` columns take, by their types' widths (16
    bytes for a variable-width value): the footers' share when no file is here to read."""

    def width(t: pa.DataType) -> int:
        try:
            return max(int(t.bit_width) // 8, 1)
        except ValueError:
            return 16

    total = sum(width(f.type) for f in schema)
    return sum(width(f.type) for f in schema if f.name in used) / max(total, 1)


def _parquet_columns(path: str) -> dict[str, int] | None:
    """Compressed bytes per column of the Parquet file at ``path``; None when it is not one
    here (a chunk only a peer keeps, a CSV file)."""
    if not path.endswith(".parquet"):
        return None
    try:
        st = os.stat(path)
        return _column_bytes(path, st.st_mtime_ns, st.st_size)
    except (OSError, ValueError, pa.ArrowException):
        return None


_KEPT: dict[tuple[str, tuple[tuple[int, int, int, int], ...]], float | None] = {}
"""Fractions already counted, by plan (its source's name and its files' paths left out: each
read of the same files is a source of another name, and a job reads its own hard links) and
its files' device, inode, size and modification time (chunks never change): a repeated query
plans without a statement."""
_KEPT_LOCK = threading.Lock()


def counted_fraction(
    chain: lp.Node,
    src: Source,
    path: str,
    used: set[str] | None,
    also: tuple[str, ...] = (),
) -> float | None:
    """The fraction of ``path``'s rows that ``chain`` keeps, counted by DuckDB over about
    ``SAMPLE_ROWS_PER_GROUP`` rows of each of at most ``SAMPLE_GROUPS`` row groups spread over
    the file (:func:`sample_rows`, columns ``used``; rows sorted by the filtered column still
    give a fair count), so the count holds a few MiB whatever the groups' size. ``also``: the
    files the chain's other scans read (a join's broadcast sides), part of the cache key.
    None when a file is gone, the kernel cannot run the chain or the sample has no rows."""
    files = (path, *also)
    try:
        stats = tuple(
            (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) for st in map(os.stat, files)
        )
    except OSError:
        return None
    text = plan_to_json(anonymous(chain, src.name))
    for i, f in enumerate(files):  # a file by what it is, not where: a job's own hard link
        text = text.replace(json.dumps(f), f'"@file{i}"')
    key = (text, stats)
    with _KEPT_LOCK:
        if key in _KEPT:
            return _KEPT[key]
    fraction = None
    sample = sample_rows(path, src, used)
    fragment = None
    if sample is not None and sample.num_rows:
        fragment = kernel_fragment(chain, SAMPLE_CAP, {src.name: sample.to_batches()})
    if fragment is not None and sample is not None:
        with tempfile.TemporaryDirectory(prefix="elytra-side-") as spill:
            got = run_statement(fragment, SAMPLE_CAP, spill, _count)
        if got:
            fraction = min(int(got[0][0] or 0) / sample.num_rows, 1.0)
    with _KEPT_LOCK:
        while len(_KEPT) >= 256:
            _KEPT.pop(next(iter(_KEPT)))
        _KEPT[key] = fraction
    return fraction


def sample_rows(path: str, src: Source, used: set[str] | None) -> pa.Table | None:
    """The rows a side's kept fraction is counted on (see :func:`counted_fraction`): slices of
    at most ``SAMPLE_GROUPS`` row groups spread over the Parquet file at ``path``. The last
    ``SAMPLES_KEPT`` are kept by file and columns: a side joined with a file a job made (a
    side run first) is counted again each job, its own rows need not be read again (TPC-H
    q20's partsupp: 40 ms a query on three platforms)."""
    try:
        st = os.stat(path)
        key = (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            src.leaf().schema.to_arrow().to_string(),
            tuple(sorted(used)) if used is not None else None,
        )
    except OSError:
        return None
    with _KEPT_LOCK:
        if key in _SAMPLES:
            _SAMPLES.move_to_end(key)
            return _SAMPLES[key]
    try:
        groups = _spread(pq.read_metadata(path).num_row_groups)
    except (OSError, ValueError, pa.ArrowException):
        return None
    sample = _sample(path, groups, src, used)
    if sample is not None and sample.nbytes > SAMPLE_KEPT_BYTES:
        return sample
    with _KEPT_LOCK:
        _SAMPLES[key] = sample
        while len(_SAMPLES) > SAMPLES_KEPT:
            _SAMPLES.popitem(last=False)
    return sample


SAMPLES_KEPT = 16
"""Samples :func:`sample_rows` keeps, each of at most ``SAMPLE_KEPT_BYTES``."""
SAMPLE_KEPT_BYTES = 4 << 20
_SAMPLES: OrderedDict[tuple[object, ...], pa.Table | None] = OrderedDict()


def anonymous(chain: lp.Node, name: str) -> lp.Node:
    """``chain`` with its leaf ``Input(name)`` named ``__side``: plans over two reads of the
    same files (sources of two names) compare equal for a cache keyed by files too."""
    if isinstance(chain, lp.Input):
        return replace(chain, name="__side") if chain.name == name else chain
    kids = lp.children(chain)
    return lp.replace_children(chain, tuple(anonymous(k, name) for k in kids)) if kids else chain


def _sample(path: str, groups: list[int], src: Source, used: set[str] | None) -> pa.Table | None:
    """The first rows of each of ``groups`` in the source's (decoded) schema: the columns the
    chain reads from the file, the others as nulls (it does not read them)."""
    want = src.leaf().schema.to_arrow()
    try:
        f = pq.ParquetFile(path)
        names = [n for n in f.schema_arrow.names if n in want.names and (used is None or n in used)]
        batches = []
        for g in groups:
            # every k-th slice of the group, so that sorted rows give a fair count too; one
            # slice held at a time (the group's pages are decoded, not kept)
            slices = -(-f.metadata.row_group(g).num_rows // _SLICE)
            every = max(1, slices // (SAMPLE_ROWS_PER_GROUP // _SLICE))
            it = f.iter_batches(batch_size=_SLICE, row_groups=[g], columns=names)
            batches += [b for i, b in enumerate(it) if i % every == 0]
        read = pa.Table.from_batches(batches) if batches else None
    except (OSError, ValueError, pa.ArrowException):
        return None
    if read is None:
        return None
    columns = [
        read.column(field.name).cast(field.type)
        if field.name in read.column_names
        else pa.nulls(read.num_rows, field.type)
        for field in want
    ]
    try:
        return pa.Table.from_arrays(columns, schema=want)
    except (ValueError, pa.ArrowException):
        return None


def _spread(n: int) -> list[int]:
    """At most ``SAMPLE_GROUPS`` row groups of ``n``, evenly spaced from the first."""
    if n <= SAMPLE_GROUPS:
        return list(range(n))
    return sorted({i * n // SAMPLE_GROUPS for i in range(SAMPLE_GROUPS)})


def _count(sql: str) -> str:
    return f"SELECT count(*) FROM ({sql})"
