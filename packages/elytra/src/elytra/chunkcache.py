"""Chunks this platform fetched from replicas, kept for the next job: a bounded disk cache.

Without Ray a query runs on the pool of the platform that takes it, which fetches the chunks
it lacks from replicas (issue 34). They went with the job's directory, so every query fetched
them again: on three platforms at TPC-H SF 1, 119 MiB of lineitem per query, most of q06's
700 ms. Fetched chunks are now kept in one directory, named by their hash, up to a byte
bound, the least recently used (by access time) dropped first. A job hard-links the copies
it reads into its own directory (:func:`pin`), so a trim never takes a file from under a
running task.

A copy is trusted only as this process checked it: its hash when it was fetched, or when a
copy already there is first used (a file a crash left short, or one changed since, is then
dropped and fetched again). The check is remembered by the file's inode, size and
modification time (marking a copy used sets only its access time), and a job's hard link
must be of the inode checked, else the job fetches its own copy. A rewrite in place that
keeps all three (by someone who can write the platform's own directories, as they could its
lake chunks) is seen only by a new process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from platform_core.integrity import sha256_file

from .chunkrefs import pin_chunk, pin_or_fetch

__all__ = ["cached", "lookup", "pin", "trim"]

_CHECKED: OrderedDict[tuple[str, int, int, int], None] = OrderedDict()
"""Copies whose hash this process checked, by (path, inode, size, mtime_ns)."""
_CHECKED_MAX = 4096
_LOCK = threading.Lock()


def pin(sha: str, fetch: Callable[[str], bytes], cache: Path, where: Path) -> str:
    """Chunk ``sha`` in the job's directory ``where``: the cache's checked copy hard-linked
    there (fetched into the cache first when absent), or, where the link is not of the inode
    checked (the copy was replaced meanwhile) or the cache cannot hold it, fetched there for
    this job alone."""
    try:
        copy = cached(sha, fetch, cache)
        checked = os.stat(copy)
    except OSError:  # a cache that cannot hold it (not a directory, a full disk)
        return pin_or_fetch(sha, None, fetch, where)
    target = where / f"{sha}.parquet"
    linked = pin_chunk(copy, target)
    if linked is not None:
        st = os.stat(linked)
        if (st.st_ino, st.st_size, st.st_mtime_ns) == (
            checked.st_ino,
            checked.st_size,
            checked.st_mtime_ns,
        ):
            return linked
        target.unlink(missing_ok=True)
    return pin_or_fetch(sha, None, fetch, where)


def cached(sha: str, fetch: Callable[[str], bytes], where: Path) -> str:
    """Chunk ``sha``'s checked copy in ``where``, fetched (and checked against the hash) only
    when no good copy is there; marked as used now. Raises what ``fetch`` raises,
    ``PipelineError`` on bytes of the wrong hash (nothing is kept then), or ``OSError`` when
    ``where`` cannot hold it (a bad copy there that cannot be removed, too)."""
    found = lookup(sha, where)
    if found is not None:
        return found
    path = where / f"{sha}.parquet"
    if os.path.lexists(path):
        raise OSError(f"the chunk cache's {path} is not a good copy and cannot be replaced")
    fetched = pin_or_fetch(sha, None, fetch, where)
    _touch_and_remember(fetched)
    return fetched


def lookup(sha: str, where: Path) -> str | None:
    """Chunk ``sha``'s copy in ``where`` if there is one whose hash matches (checked once per
    process and file version; a bad one is removed where it can be), marked as used now;
    else None."""
    path = where / f"{sha}.parquet"
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _LOCK:
        known = key in _CHECKED
    if not known and (not path.is_file() or _sha256(path) != sha):
        with contextlib.suppress(OSError):  # a directory, a read-only cache: left there
            path.unlink()  # short or changed: fetched again
        return None
    _touch_and_remember(str(path))
    return str(path)


def trim(where: Path, limit: int, keep: Iterable[str] = ()) -> None:
    """Drop the least recently used copies in ``where`` past ``limit`` bytes, never those in
    ``keep`` (the ones the caller is about to read); what cannot be listed or removed (not a
    directory, read-only) is left as it is."""
    kept = set(keep)
    with _LOCK:
        files = []
        try:
            for entry in os.scandir(where):
                if entry.name.startswith("."):
                    _drop_if_orphaned(entry.path)  # a fetch's temp file, its process gone
                    continue
                if not entry.name.endswith(".parquet"):
                    continue
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
            try:
                Path(path).unlink(missing_ok=True)
            except OSError:
                continue
            total -= size


def _drop_if_orphaned(path: str) -> None:
    """Remove a fetch's temp file (``.<sha>.<pid>.<thread>.tmp``, ``chunkrefs.pin_or_fetch``)
    whose process is gone (a SIGKILL mid-fetch); one still writing stays."""
    parts = os.path.basename(path).split(".")
    try:
        os.kill(int(parts[2]), 0)
    except (IndexError, ValueError):
        return  # not a fetch's temp file: not ours to remove
    except ProcessLookupError:
        with contextlib.suppress(OSError):
            os.unlink(path)
    except OSError:
        return  # alive, another user's


def _sha256(path: Path) -> str:
    """``path``'s hash, or "" when it cannot be read (it is then no good copy)."""
    try:
        return sha256_file(path)
    except OSError:
        return ""


def _touch_and_remember(path: str) -> None:
    """Mark ``path`` used now (its access time; the modification time stays) and remember
    it as checked."""
    try:
        st = os.stat(path)
        os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
    except OSError:
        return  # trimmed meanwhile: the caller's hard link (or a fetch) still has it
    with _LOCK:
        _CHECKED[(path, st.st_ino, st.st_size, st.st_mtime_ns)] = None
        while len(_CHECKED) > _CHECKED_MAX:
            _CHECKED.popitem(last=False)
