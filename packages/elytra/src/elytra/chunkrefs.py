"""Lake chunks named by hash in a task (``lake-chunk:<sha256>``), resolved where it runs.

In a cluster a task may run on any platform, and each keeps a chunk under its own directory,
so the driver names a dataset's chunks by their hash instead of by a path. The platform that
runs the task resolves each name to its own copy, or fetches the chunk (checked against its
hash) from a replica into the task's directory (Ray's placed tasks, :mod:`.backends.raynodes`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .task import Task

__all__ = [
    "CHUNK_REF",
    "chunk_ref",
    "chunk_shas",
    "pin_chunk",
    "pin_or_fetch",
    "repathed",
    "resolve_chunks",
    "rewrite_scans",
    "sha_of",
]

CHUNK_REF = "lake-chunk:"
_SHA = re.compile(r"[0-9a-f]{64}")


def chunk_ref(sha: str) -> str:
    """The name a task gives lake chunk ``sha``."""
    return CHUNK_REF + sha


def sha_of(path: str) -> str | None:
    """The chunk hash ``path`` names, or None when it is not a chunk name."""
    if not path.startswith(CHUNK_REF):
        return None
    sha = path[len(CHUNK_REF) :]
    if not _SHA.fullmatch(sha):
        raise PipelineError(f"{path[:90]!r} is not a lake chunk name (lake-chunk:<64 hex digits>)")
    return sha


def chunk_shas(task: Task) -> list[str] | None:
    """The chunks ``task`` reads, or None when it reads anything else (a local file, an
    exchange's partition): such a task runs only on the platform that planned it."""
    shas = [sha_of(f) for f in task.files]
    if not shas or any(s is None for s in shas):
        return None
    return [s for s in shas if s is not None]


def rewrite_scans(node: Any, paths: dict[str, str]) -> Any:
    """Plan JSON ``node`` with each scan of a path in ``paths`` reading its new path."""
    if isinstance(node, dict):
        out = {k: rewrite_scans(v, paths) for k, v in node.items()}
        if out.get("op") == "scan" and out.get("path") in paths:
            out["path"] = paths[out["path"]]
        return out
    if isinstance(node, list):
        return [rewrite_scans(v, paths) for v in node]
    return node


def repathed(task: Task, paths: dict[str, str], files: tuple[str, ...]) -> Task:
    """``task`` reading each path in ``paths`` at its new path, in its plan and in its
    query's scans (``nativesql``), its ``files`` now ``files``."""
    plan = task.plan  # none for a query run before it was planned (``nativequery``)
    if plan:
        plan = json.dumps(rewrite_scans(json.loads(plan), paths), separators=(",", ":"))
    sql = task.sql
    if sql:
        sql = json.dumps(rewrite_scans(json.loads(sql), paths), separators=(",", ":"))
    return replace(task, plan=plan, sql=sql, files=files)


def pin_chunk(path: str | None, target: Path) -> str | None:
    """This platform's copy of a chunk, hard-linked as ``target`` in the job's directory so
    that the lake can drop or move its copy while the task reads (it trims a replica it no
    longer needs; the file went between locating and reading, and the query failed). The copy
    itself where no link can be made (another file system); None when it is gone already."""
    if path is None:
        return None
    if target.exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    try:
        os.link(path, tmp)
    except FileNotFoundError:
        return None  # dropped since it was located: fetched from a replica instead
    except OSError:
        return path if Path(path).is_file() else None
    os.replace(tmp, target)
    return str(target)


def pin_or_fetch(
    sha: str, here: str | None, fetch: Callable[[str], bytes] | None, where: Path
) -> str:
    """Chunk ``sha``'s file in ``where``: this platform's copy ``here`` pinned
    (:func:`pin_chunk`), else the bytes ``fetch(sha)`` gives, checked against the hash and
    written once (temp file, then rename, so a reader never sees half a chunk)."""
    target = where / f"{sha}.parquet"
    found = pin_chunk(here, target)
    if found is not None:
        return found
    if not target.exists():
        if fetch is None:
            raise PipelineError(f"chunk {sha[:12]} is not on this platform")
        data = fetch(sha)
        if hashlib.sha256(data).hexdigest() != sha:
            raise PipelineError(f"chunk {sha[:12]} came back with the wrong hash")
        where.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{sha}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return str(target)


def resolve_chunks(
    task: Task,
    locate: Callable[[str], str | None],
    fetch: Callable[[str], bytes] | None,
    where: Path,
    cached: Callable[[str], str] | None = None,
) -> Task:
    """``task`` with each chunk name replaced by a path on this platform in ``where``:
    ``locate(sha)``'s copy linked there, else the path ``cached(sha)`` gives (a copy kept
    for later jobs, ``chunkcache.pin``) when given, else the bytes ``fetch(sha)`` gives
    (checked against the hash) written there once. A task naming no chunks is returned as
    is."""

    def obtain(sha: str) -> str:
        if cached is None:
            return pin_or_fetch(sha, locate(sha), fetch, where)
        found = pin_chunk(locate(sha), where / f"{sha}.parquet")
        return found if found is not None else cached(sha)

    paths: dict[str, str] = {}
    for name in task.files:
        sha = sha_of(name)
        if sha is not None:
            paths[name] = obtain(sha)
    if not paths:
        return task
    return repathed(task, paths, tuple(paths.get(f, f) for f in task.files))
