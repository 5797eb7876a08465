"""What a join side costs to broadcast: the bytes of the columns its chain reads.

A side's files hold every column, but a chain reads only some (TPC-H q05 reads 2 of
customer's 8 columns: 1 MB of its 14 MB), so the broadcast decision weighs the compressed
size of those columns' chunks, from the Parquet footers of files on this machine. A file
that is not here (a lake chunk named by hash for a peer) or not Parquet counts whole.
"""

from __future__ import annotations

import os
from functools import lru_cache

import pyarrow.parquet as pq

from emsqrt import plan as lp
from platform_core.expr import Expr
from platform_core.expr.nodes import Column, walk

from .sources import Source

__all__ = ["side_bytes"]


def _columns_used(chain: lp.Node) -> set[str] | None:
    """The source columns the chain's output needs, from the top down (a projection keeps
    what it names, a filter and a computed column add what they read); None: all of them."""
    nodes: list[lp.Node] = []
    node: object = chain
    while isinstance(node, lp.Node) and not isinstance(node, lp.Input | lp.Scan):
        if isinstance(node, lp.PyMap) or not isinstance(node, lp.Project | lp.Filter | lp.Map):
            return None  # a Python function (or anything else) may read any column
        nodes.append(node)
        node = node.input
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


def _refs(e: Expr) -> set[str]:
    return {n.name for n in walk(e) if isinstance(n, Column)}


@lru_cache(maxsize=4096)
def _column_bytes(path: str, mtime_ns: int, size: int) -> dict[str, int]:
    """Compressed bytes per top-level column of a Parquet file (its footer only)."""
    meta = pq.read_metadata(path)
    out: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for i in range(rg.num_columns):
            col = rg.column(i)
            top = col.path_in_schema.split(".", 1)[0]
            out[top] = out.get(top, 0) + col.total_compressed_size
    return out


def side_bytes(chain: lp.Node, src: Source) -> int:
    """The bytes ``chain`` reads of ``src``: its columns' share of each local Parquet file,
    the whole file otherwise."""
    used = _columns_used(chain)
    total = 0
    for part in src.parts(1 << 62):
        share = part.bytes // max(len(part.files), 1)
        for f in part.files:
            total += _file_bytes(f, used, share)
    return total


def _file_bytes(path: str, used: set[str] | None, fallback: int) -> int:
    if used is None or not path.endswith(".parquet"):
        return fallback
    try:
        st = os.stat(path)
        columns = _column_bytes(path, st.st_mtime_ns, st.st_size)
    except (OSError, ValueError, pq.lib.ArrowException):
        return fallback
    return sum(b for name, b in columns.items() if name in used)
