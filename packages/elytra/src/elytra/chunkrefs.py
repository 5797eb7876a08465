"""Lake chunks named by hash in a task (``lake-chunk:<sha256>``), resolved where it runs.

In a cluster a task may run on any platform, and each keeps a chunk under its own directory,
so the driver names a dataset's chunks by their hash instead of by a path. The platform that
runs the task resolves each name to its own copy, or fetches the chunk (checked against its
hash) from a replica into the task's directory. A task whose plan reads anything but named
chunks is refused by a peer (:func:`check_peer_task`): a peer reads no path a request names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from emsqrt import PlanError
from emsqrt.planning import plan_from_json

from .errors import PipelineError
from .task import Task

__all__ = [
    "CHUNK_REF",
    "check_peer_task",
    "chunk_ref",
    "chunk_shas",
    "resolve_chunks",
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


PEER_OPS = frozenset(
    {"scan", "filter", "project", "map", "sort", "aggregate", "limit", "topk", "union", "join"}
)
"""The plan operators a peer runs: reading, computing, ordering, joining (a broadcast join reads
its small side's chunks, which the task names too). Not ``sink`` (it writes a file where the
plan says), ``pymap`` (decoding it runs code) or ``input`` (a task over chunks has none)."""
MAX_PLAN_DEPTH = 256
"""Operators nested deeper than this are refused before anything recurses over them."""
_CHILDREN = ("input", "left", "right")


def _plan_nodes(plan: Any) -> list[dict[str, Any]]:
    """Every operator of a plan's JSON (not its expressions), checked against ``PEER_OPS``
    and ``MAX_PLAN_DEPTH`` without recursion."""
    out: list[dict[str, Any]] = []
    todo: list[tuple[Any, int]] = [(plan, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_PLAN_DEPTH:
            raise PipelineError(f"a peer's task nests operators deeper than {MAX_PLAN_DEPTH}")
        if not isinstance(node, dict) or not isinstance(node.get("op"), str):
            raise PipelineError("a peer's task plan is a tree of objects, each with an 'op'")
        if node["op"] not in PEER_OPS:
            raise PipelineError(
                f"a peer runs no {node['op'][:40]!r} operator (only {', '.join(sorted(PEER_OPS))})"
            )
        out.append(node)
        kids = [node[k] for k in _CHILDREN if k in node]
        inputs = node.get("inputs", [])
        if not isinstance(inputs, list):
            raise PipelineError("a peer's task plan has 'inputs' that are not a list")
        todo += [(k, depth + 1) for k in kids + inputs]
    return out


def check_peer_task(task: Task) -> list[str]:
    """The chunks a task sent by a peer reads; ``PipelineError`` unless its plan is one a peer
    may run: only ``PEER_OPS`` (nothing that writes a file or runs code), not too deep, and
    reading only the chunks its ``files`` name."""
    shas = chunk_shas(task)
    if shas is None:
        raise PipelineError("a task sent to a peer reads lake chunks only (lake-chunk:<sha256>)")
    try:
        tree = json.loads(task.plan)
    except (ValueError, RecursionError):
        raise PipelineError("a peer's task plan is not JSON (or nests too deep)") from None
    nodes = _plan_nodes(tree)
    try:
        plan_from_json(task.plan, trusted=False)  # its fields, as every plan is checked
    except PlanError as exc:
        raise PipelineError(f"a peer's task: {exc.message}") from None
    named = set(task.files)
    stray = [str(n.get("path")) for n in nodes if n["op"] == "scan" and n.get("path") not in named]
    if stray:
        raise PipelineError(f"the task's plan reads {stray[0][:90]!r}, which its files do not name")
    return shas


def _rewrite(node: Any, paths: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite(v, paths) for k, v in node.items()}
        if out.get("op") == "scan" and out.get("path") in paths:
            out["path"] = paths[out["path"]]
        return out
    if isinstance(node, list):
        return [_rewrite(v, paths) for v in node]
    return node


def _pinned(path: str | None, target: Path) -> str | None:
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


def resolve_chunks(
    task: Task,
    locate: Callable[[str], str | None],
    fetch: Callable[[str], bytes] | None,
    where: Path,
) -> Task:
    """``task`` with each chunk name replaced by a path on this platform in ``where``:
    ``locate(sha)``'s copy linked there, else the bytes ``fetch(sha)`` gives (checked against
    the hash) written there once. A task naming no chunks is returned as is."""
    paths: dict[str, str] = {}
    for name in task.files:
        sha = sha_of(name)
        if sha is None:
            continue
        target = where / f"{sha}.parquet"
        found = _pinned(locate(sha), target)
        if found is None:
            if not target.exists():
                if fetch is None:
                    raise PipelineError(f"chunk {sha[:12]} is not on this platform")
                data = fetch(sha)
                if hashlib.sha256(data).hexdigest() != sha:
                    raise PipelineError(f"chunk {sha[:12]} came back with the wrong hash")
                where.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{sha}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            found = str(target)
        paths[name] = found
    if not paths:
        return task
    plan = json.dumps(_rewrite(json.loads(task.plan), paths), separators=(",", ":"))
    files = tuple(paths.get(f, f) for f in task.files)
    return replace(task, plan=plan, files=files)
