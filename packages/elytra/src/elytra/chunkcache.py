"""Chunks this platform fetched from replicas, kept for the next job: a bounded disk cache.

Without Ray a query runs on the pool of the platform that takes it, which fetches the chunks
it lacks from replicas (issue 34). They went with the job's directory, so every query fetched
them again: on three platforms at TPC-H SF 1, 119 MiB of lineitem per query, most of q06's
700 ms. Fetched chunks are now kept in one directory, named by their hash (checked when
fetched, so a copy is never stale), up to a byte bound, the least recently used dropped
first. A job hard-links the copies it reads into its own directory, so a trim never takes a
file from under a running task.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from .chunkrefs import pin_or_fetch

__all__ = ["cached", "trim"]

_TRIM = threading.Lock()


def cached(sha: str, fetch: Callable[[str], bytes], where: Path) -> str:
    """Chunk ``sha``'s copy in ``where``, fetched (and checked against the hash) only when
    absent; marked as used now. Raises what ``fetch`` raises, or ``PipelineError`` on bytes
    of the wrong hash (nothing is kept then)."""
    path = pin_or_fetch(sha, None, fetch, where)
    try:
        os.utime(path)  # used now: the last to go
    except FileNotFoundError:  # trimmed meanwhile by another job: fetched again
        path = pin_or_fetch(sha, None, fetch, where)
    return path


def trim(where: Path, limit: int, keep: Iterable[str] = ()) -> None:
    """Drop the least recently used copies in ``where`` past ``limit`` bytes, never those in
    ``keep`` (the ones the caller is about to read)."""
    kept = set(keep)
    with _TRIM:
        files = []
        try:
            for entry in os.scandir(where):
                if entry.name.startswith("."):
                    continue  # a fetch still writing its temp file
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                files.append((st.st_mtime, st.st_size, entry.path))
        except FileNotFoundError:
            return
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= limit:
                break
            if path in kept:
                continue
            Path(path).unlink(missing_ok=True)
            total -= size
