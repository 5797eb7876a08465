"""Small tables a peer keeps, copied here for the planner: it counts on files of this node.

The planner weighs a join side by its Parquet footers and counts what its filters keep on a
file of it here (``sidesize.py``); a chain's joined rows are counted with every broadcast
side read whole (``reducers.py``). On a cluster, a tiny table that only peers keep (TPC-H's
nation, 3 KB, on two of three platforms) left those counts unknown: on three Ray platforms,
q21's EXISTS group-by then ran unreduced and 38 MiB of its partial states reached the
coordinator. So the chunks this node lacks of a table of at most ``SMALL_SOURCE_BYTES`` are
fetched from a replica into the platform's chunk cache (``chunkcache.py``) before planning,
and the pipeline reads those copies as it reads this node's own chunks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path

from .chunkcache import cached, trim
from .sources import LakeSource, Source

__all__ = ["SMALL_SOURCE_BYTES", "WAIT_SECONDS", "planner_copies"]

SMALL_SOURCE_BYTES = 1 << 20
"""The largest table whose chunks are fetched for the planner: a dimension table (TPC-H's
nation, region), never a fact table's chunks, however small the lake cuts them."""

FETCHES = 4
"""Copies fetched at once (each a call to one replica)."""

WAIT_SECONDS = 2.0
"""The longest the planner waits for its copies: a hung replica must not hold a query."""


def planner_copies(
    sources: Iterable[Source],
    fetch: Callable[[str, str], bytes] | None,
    where: Path,
    limit: int,
    cancel: threading.Event | None = None,
) -> dict[str, str]:
    """sha256 -> a copy in the chunk cache ``where`` (``limit`` bytes) of each chunk this node lacks of each table of at most
    ``SMALL_SOURCE_BYTES`` that ``sources`` read (see the module); empty outside a cluster.
    A chunk no replica gives within ``WAIT_SECONDS`` (or before ``cancel`` is set) is left
    out: the planner weighs it as one it cannot see, and the job fetches it as before."""
    wanted = {
        sha: src.origin
        for src in sources
        if isinstance(src, LakeSource) and sum(n for _, _, n in src.chunks) <= SMALL_SOURCE_BYTES
        for sha, path, _ in src.chunks
        if not path
    }
    if fetch is None or not wanted:
        return {}
    deadline = time.monotonic() + WAIT_SECONDS
    pool = ThreadPoolExecutor(FETCHES, thread_name_prefix="elytra-plan-fetch")
    try:
        futures = {
            sha: pool.submit(_copy, sha, origin, fetch, where) for sha, origin in wanted.items()
        }
        pending = set(futures.values())
        while pending and time.monotonic() < deadline and not (cancel and cancel.is_set()):
            _, pending = wait(pending, timeout=0.1)
    finally:  # a hung replica's call ends on its own; the planner does not wait for it
        pool.shutdown(wait=False, cancel_futures=True)
    out = {sha: f.result() for sha, f in futures.items() if f.done() and not f.cancelled()}
    copies = {sha: path for sha, path in out.items() if path is not None}
    trim(where, limit, keep=copies.values())
    return copies


def _copy(sha: str, origin: str, fetch: Callable[[str, str], bytes], where: Path) -> str | None:
    """Chunk ``sha``'s copy in the cache ``where``; None when no replica gave it, or gave
    the wrong bytes."""
    try:
        return cached(sha, partial(_from, fetch, origin), where)
    except Exception:  # any failure of a replica: the planner goes without the copy
        return None


def _from(fetch: Callable[[str, str], bytes], origin: str, sha: str) -> bytes:
    return fetch(sha, origin)
