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
from pathlib import Path

from .chunkcache import cached, lookup, trim
from .sources import LakeSource, Source

__all__ = ["SMALL_SOURCE_BYTES", "WAIT_SECONDS", "planner_copies", "small_table"]

SMALL_SOURCE_BYTES = 1 << 20
"""The largest table whose chunks are fetched for the planner: a dimension table (TPC-H's
nation, region), never a fact table's chunks, however small the lake cuts them."""

SMALL_SOURCE_CHUNKS = 8
"""The most chunks such a table may have (one fetch each)."""

WAIT_SECONDS = 2.0
"""The longest a query's planning waits for its copies: a hung replica must not hold it."""

RETRY_SECONDS = 60.0
"""A chunk whose fetch failed is not asked for again for this long (the job fetches it)."""

_LOCK = threading.Lock()
_FETCHING: dict[str, threading.Event] = {}
"""Fetches under way, by chunk: a later query waits on the same one (or not at all)."""
_FAILED: dict[str, float] = {}
"""When each chunk's last fetch failed (``time.monotonic``)."""


def small_table(src: LakeSource) -> bool:
    """Whether ``src`` is a table the planner copies (``SMALL_SOURCE_BYTES`` in at most
    ``SMALL_SOURCE_CHUNKS``)."""
    return (
        len(src.chunks) <= SMALL_SOURCE_CHUNKS
        and sum(n for _, _, n in src.chunks) <= SMALL_SOURCE_BYTES
    )


def planner_copies(
    sources: Iterable[Source],
    fetch: Callable[[str, str], bytes] | None,
    where: Path,
    limit: int,
    cancel: threading.Event | None = None,
) -> dict[str, str]:
    """sha256 -> a copy in the chunk cache ``where`` (``limit`` bytes) of each chunk this
    node lacks of each table of at most ``SMALL_SOURCE_BYTES`` in ``SMALL_SOURCE_CHUNKS``
    that ``sources`` read (see the module); empty outside a cluster. Fetches run on daemon
    threads, one per chunk however many queries want it; the planner waits for them at most
    ``WAIT_SECONDS`` (less if ``cancel`` is set), and only for a fetch it started: a chunk
    still being fetched for an earlier query, or whose fetch failed lately, is left out (the
    planner weighs it as one it cannot see, and the job fetches it as before)."""
    wanted = {
        sha: src.origin
        for src in sources
        if isinstance(src, LakeSource) and small_table(src)
        for sha, path, _ in src.chunks
        if not path
    }
    if fetch is None or not wanted:
        return {}
    started: list[threading.Event] = []
    now = time.monotonic()
    with _LOCK:
        for sha, origin in wanted.items():
            if sha in _FETCHING or now - _FAILED.get(sha, -RETRY_SECONDS) < RETRY_SECONDS:
                continue
            if lookup(sha, where) is not None:
                continue
            done = _FETCHING[sha] = threading.Event()
            started.append(done)
            threading.Thread(
                target=_copy,
                args=(sha, origin, fetch, where, done),
                name=f"elytra-plan-fetch-{sha[:8]}",
                daemon=True,  # a hung replica must not hold the process at exit
            ).start()
    deadline = time.monotonic() + WAIT_SECONDS
    for done in started:
        while not done.wait(0.05):
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                break
    copies = {sha: path for sha in wanted if (path := lookup(sha, where)) is not None}
    trim(where, limit, keep=copies.values())
    return copies


def _copy(
    sha: str, origin: str, fetch: Callable[[str, str], bytes], where: Path, done: threading.Event
) -> None:
    """Fetch chunk ``sha`` into the cache ``where``; a failure (a replica down, the wrong
    bytes, a cache that is not a directory) is remembered for ``RETRY_SECONDS``."""
    try:
        cached(sha, lambda s: fetch(s, origin), where)
    except Exception:  # any failure: the planner goes without the copy
        now = time.monotonic()
        with _LOCK:
            for old in [k for k, t in _FAILED.items() if now - t >= RETRY_SECONDS]:
                del _FAILED[old]
            _FAILED[sha] = now
    finally:
        with _LOCK:
            _FETCHING.pop(sha, None)
        done.set()
