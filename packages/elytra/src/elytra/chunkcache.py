"""Chunks this platform fetched from replicas, kept for the next job: a bounded disk cache.

Without Ray a query runs on the pool of the platform that takes it, which fetches the chunks
it lacks from replicas (issue 34). They went with the job's directory, so every query fetched
them again: on three platforms at TPC-H SF 1, 119 MiB of lineitem per query, most of q06's
700 ms. Fetched chunks are now kept in one directory, named by their hash, up to a byte
bound, the least recently used (by access time) dropped first. A job hard-links the copies
it reads into its own directory, so a trim never takes a file from under a running task.

A copy is trusted only as this process checked it: its hash when it was fetched, or when a
copy already there is first used (a file a crash left short, or one changed since, is then
dropped and fetched again). The check is remembered by the file's size, modification time
and inode, which marking it used leaves alone.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from .chunkrefs import pin_or_fetch

__all__ = ["cached", "lookup", "trim"]

_CHECKED: OrderedDict[tuple[str, int, int, int], None] = OrderedDict()
"""Copies whose hash this process checked, by (path, size, mtime_ns, inode)."""
_CHECKED_MAX = 4096
_LOCK = threading.Lock()


def cached(sha: str, fetch: Callable[[str], bytes], where: Path) -> str:
    """Chunk ``sha``'s checked copy in ``where``, fetched (and checked against the hash) only
    when no good copy is there; marked as used now. Raises what ``fetch`` raises,
    ``PipelineError`` on bytes of the wrong hash (nothing is kept then), or ``OSError`` when
    ``where`` cannot hold it."""
    found = lookup(sha, where)
    if found is not None:
        return found
    path = pin_or_fetch(sha, None, fetch, where)
    _remember(path)
    _touch(path)
    return path


def lookup(sha: str, where: Path) -> str | None:
    """Chunk ``sha``'s copy in ``where`` if there is one whose hash matches (checked once per
    process and file version; a bad one is removed), marked as used now; else None."""
    path = where / f"{sha}.parquet"
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _LOCK:
        known = key in _CHECKED
    if not known:
        if _sha256(path) != sha:
            path.unlink(missing_ok=True)  # short or changed: fetched again
            return None
        _remember(str(path))
    _touch(str(path))
    return str(path)


def trim(where: Path, limit: int, keep: Iterable[str] = ()) -> None:
    """Drop the least recently used copies in ``where`` past ``limit`` bytes, never those in
    ``keep`` (the ones the caller is about to read); a cache that cannot be listed (not a
    directory) is left as it is."""
    kept = set(keep)
    with _LOCK:
        files = []
        try:
            for entry in os.scandir(where):
                if entry.name.startswith(".") or not entry.name.endswith(".parquet"):
                    continue  # a fetch still writing its temp file
                try:
                    st = entry.stat()
                except OSError:
                    continue
                files.append((st.st_atime_ns, st.st_size, entry.path))
        except OSError:
            return
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= limit:
                break
            if path in kept:
                continue
            Path(path).unlink(missing_ok=True)
            total -= size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


def _remember(path: str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    with _LOCK:
        _CHECKED[(path, st.st_size, st.st_mtime_ns, st.st_ino)] = None
        while len(_CHECKED) > _CHECKED_MAX:
            _CHECKED.popitem(last=False)


def _touch(path: str) -> None:
    """Mark ``path`` used now (its access time; the modification time the check keys on
    stays)."""
    try:
        st = os.stat(path)
        os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
    except OSError:
        pass  # trimmed meanwhile: the caller's hard link (or a fetch) still has it
