"""Small tables a peer keeps, copied here for the planner: it counts on files of this node.

The planner weighs a join side by its Parquet footers and counts what its filters keep on a
file of it here (``sidesize.py``); a chain's joined rows are counted with every broadcast
side read whole (``reducers.py``). On a cluster, a tiny table that only peers keep (TPC-H's
nation, 3 KB, on two of three platforms) left those counts unknown: on three Ray platforms,
q21's EXISTS group-by then ran unreduced and 38 MiB of its partial states reached the
coordinator. So the chunks this node lacks of a table of at most ``SMALL_SOURCE_BYTES`` are
fetched from a replica into a cache in the spill directory, checked against their hash (and
named by it, so never stale), at most ``CACHE_BYTES`` kept, the least recently used dropped
first. A job on this platform's pool reads the copies as it reads this node's own chunks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path

from .chunkrefs import pin_or_fetch
from .sources import LakeSource, Source

__all__ = ["CACHE_BYTES", "SMALL_SOURCE_BYTES", "WAIT_SECONDS", "planner_copies"]

SMALL_SOURCE_BYTES = 1 << 20
"""The largest table whose chunks are fetched for the planner: a dimension table (TPC-H's
nation, region), never a fact table's chunks, however small the lake cuts them."""

CACHE_BYTES = 64 << 20
"""The most the planner's copies hold on disk."""

FETCHES = 4
"""Copies fetched at once (each a call to one replica)."""

WAIT_SECONDS = 2.0
"""The longest the planner waits for its copies: a hung replica must not hold a query."""

_TRIM = threading.Lock()


def planner_copies(
    sources: Iterable[Source],
    fetch: Callable[[str, str], bytes] | None,
    where: Path,
    cancel: threading.Event | None = None,
) -> dict[str, str]:
    """sha256 -> a copy in ``where`` of each chunk this node lacks of each table of at most
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
    with _TRIM:
        _trim(where, keep=set(copies.values()))
    return copies


def _copy(sha: str, origin: str, fetch: Callable[[str, str], bytes], where: Path) -> str | None:
    """Chunk ``sha``'s copy in ``where`` (fetched once), marked used now; None when no
    replica gave it or gave the wrong bytes."""
    try:
        path = pin_or_fetch(sha, None, partial(_from, fetch, origin), where)
        os.utime(path)  # used now: the last to go
    except Exception:  # any failure of a replica: the planner goes without the copy
        return None
    return path


def _from(fetch: Callable[[str, str], bytes], origin: str, sha: str) -> bytes:
    return fetch(sha, origin)


def _trim(where: Path, keep: set[str]) -> None:
    """Drop the least recently used copies in ``where`` past ``CACHE_BYTES`` (not ``keep``)."""
    files = []
    try:
        for entry in os.scandir(where):
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # a temp file renamed meanwhile
            files.append((st.st_mtime, st.st_size, entry.path))
    except FileNotFoundError:
        return
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= CACHE_BYTES:
            break
        if path in keep:
            continue
        Path(path).unlink(missing_ok=True)
        total -= size
