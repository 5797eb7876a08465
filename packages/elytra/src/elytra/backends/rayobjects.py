"""Exchanges through Ray's object store (issue 34 item 3): a shuffle that never funnels through
the driver.

A task placed on another platform's Ray node that partitions its rows (a join's side, a
group-by's partial states: ``elytra.shuffle``) writes its partition files in its own directory
on that node, as on this machine, then returns each partition's files as one Ray object of
their bytes (:func:`pack`): the remote function has one return for its answer and one per
partition, so the driver owns the objects but never reads them. The answer names each file
``ray-object:<task>-a<attempt>-p<partition>-f<i>``. A task that reads such names (the
partition's join or final aggregate) is given the objects as arguments: Ray moves them from
the node that made them to the node that runs it, which writes them to files of its own and
reads them there (:func:`unpack`). The driver places those tasks by the bytes of their inputs
each node holds, spread over the nodes (:meth:`ObjectRegistry.place`), so most of a
partition does not move and every node reads its share.

A task that reads lake chunks and a small file of the driver's machine (the result of a side
run first, which every task of its stage reads) would be tied to the driver's node by that
file. :func:`ship_files` puts each such file into the object store once per run (a one-file
object, ``ray-object:ship<n>-a0-p0-f0``), so the task goes where its chunks are, like any
other, and reads the file as it reads a partition.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..chunkrefs import chunk_shas, repathed, sha_of
from ..errors import ExchangeLostError, PipelineError
from ..task import Task

__all__ = [
    "OBJECT_REF",
    "ObjectRegistry",
    "chunks_besides_objects",
    "is_object",
    "object_keys",
    "pack",
    "ship_files",
    "unpack",
]

OBJECT_REF = "ray-object:"
_NAME = re.compile(r"ray-object:(?P<key>[A-Za-z0-9_.:-]+-a\d+-p\d+)-f(?P<file>\d+)")


def is_object(name: str) -> bool:
    """Whether ``name`` (a task's file) is a partition held in Ray's object store."""
    return name.startswith(OBJECT_REF)


def chunks_besides_objects(task: Task) -> list[str] | None:
    """The lake chunks ``task`` reads apart from its exchange objects ([] for none), or None
    when it also reads another file (one of the driver's machine)."""
    names = tuple(f for f in task.files if not is_object(f))
    return chunk_shas(replace(task, files=names)) if names else []


SHIP_BYTES = 64 << 20
"""The most bytes of driver-side files one task may have shipped (a side run first is broadcast
only under ``ELYTRA_BROADCAST_BYTES``); a task reading more stays on the driver's node."""


def ship_files(
    tasks: Sequence[Task], put: Callable[[list[bytes]], Any], limit: int = SHIP_BYTES
) -> tuple[list[Task], dict[str, Any], int]:
    """``tasks`` with each small file of this machine that a chunk-reading task reads (not a
    chunk, not an object) renamed to an object of its bytes (``put([bytes])``: one per file,
    shared by every task that reads it); the objects by key, and their bytes. A task reading
    no chunk, or more than ``limit`` bytes of such files, is left as it is."""
    shipped: dict[str, tuple[str, Any, int]] = {}  # path -> (key, object, bytes)
    out: list[Task] = []
    for task in tasks:
        local = [f for f in task.files if not is_object(f) and sha_of(f) is None]
        if not local or len(local) == len(task.files) or any(is_object(f) for f in task.files):
            out.append(task)
            continue
        try:
            sizes = {f: Path(f).stat().st_size for f in local}
        except OSError:  # not a file here (a URL, a glob): the task reads it where it runs
            out.append(task)
            continue
        if sum(sizes.values()) > limit:
            out.append(task)
            continue
        names: dict[str, str] = {}
        for f in local:
            if f not in shipped:
                key = f"ship{len(shipped)}-a0-p0"
                shipped[f] = (key, put([Path(f).read_bytes()]), sizes[f])
            names[f] = f"{OBJECT_REF}{shipped[f][0]}-f0"
        out.append(repathed(task, names, tuple(names.get(f, f) for f in task.files)))
    objects = {key: ref for key, ref, _ in shipped.values()}
    return out, objects, sum(n for _, _, n in shipped.values())


def placement_view(task: Task) -> Task:
    """``task`` as placement sees it: its chunks only (its objects go wherever it runs), the
    broadcast sides among them still counted as shared (``Task.shared_files``)."""
    objects = [i for i, f in enumerate(task.files) if is_object(f)]
    if not objects:
        return task
    tail = len(task.files) - task.shared_files
    shared = task.shared_files - sum(1 for i in objects if i >= tail)
    files = tuple(f for f in task.files if not is_object(f))
    return replace(task, files=files, shared_files=max(0, shared))


def _parse(name: str) -> tuple[str, int]:
    m = _NAME.fullmatch(name)
    if m is None:
        raise PipelineError(f"{name[:90]!r} is not an exchange object's name")
    return m["key"], int(m["file"])


def object_keys(files: tuple[str, ...] | list[str]) -> list[str]:
    """The objects (one per producing task and partition) ``files`` name, in first-seen order."""
    keys: dict[str, None] = {}
    for name in files:
        if is_object(name):
            keys.setdefault(_parse(name)[0], None)
    return list(keys)


def pack(task: Task, stats: dict[str, Any], parts: int) -> list[list[bytes] | None]:
    """The partition files a placed task wrote (``stats["exchange"]``, renamed in place to
    object names) as ``parts`` lists of file bytes (None: a partition it left empty). Read
    before the task's directory goes."""
    written = stats.get("exchange")
    out: list[list[bytes] | None] = [None] * parts
    if written is None:
        return out
    key = f"{task.id}-a{task.attempt}"
    names: list[list[str]] = []
    for p, files in enumerate(written["files"]):
        if written["rows"][p]:
            out[p] = [Path(f).read_bytes() for f in files]
            names.append([f"{OBJECT_REF}{key}-p{p}-f{i}" for i in range(len(files))])
        else:
            names.append([])
    stats["exchange"] = {**written, "directory": "", "files": names}
    return out


def unpack(task: Task, objects: dict[str, list[bytes] | None], where: Path) -> Task:
    """``task`` reading the files of ``objects`` (key -> the files' bytes) written under
    ``where`` instead of their object names. An object that is None was lost: Ray rebuilt it
    by running its task again (its node died), on a node that lacked the task's chunks."""
    paths: dict[str, str] = {}
    for name in task.files:
        if not is_object(name):
            continue
        key, i = _parse(name)
        if key in objects and objects[key] is None:
            raise ExchangeLostError(
                f"exchange partition {key} was lost with the Ray node that held it; submit "
                "the job again"
            )
        files = objects.get(key)
        if files is None or i >= len(files):
            raise PipelineError(f"exchange object {key} was not given to the task")
        target = where / f"{key}-f{i}.parquet"
        where.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[i])
        paths[name] = str(target)
    if not paths:
        return task
    return repathed(task, paths, tuple(paths.get(f, f) for f in task.files))


@dataclass
class ObjectRegistry:
    """The driver's exchange objects: key -> (its Ray object, the Ray node that made it, its
    bytes). Dropped once read (a partition is read by one task) or when the job ends."""

    _held: dict[str, tuple[Any, str, int]] = field(default_factory=dict)

    def add(self, key: str, ref: Any, node: str, nbytes: int) -> None:
        self._held[key] = (ref, node, nbytes)

    def refs(self, keys: list[str]) -> list[Any]:
        missing = [k for k in keys if k not in self._held]
        if missing:
            raise PipelineError(
                f"exchange object {missing[0]} is gone (its job ended or it was read already)"
            )
        return [self._held[k][0] for k in keys]

    def nearest(self, keys: list[str]) -> str | None:
        """The Ray node holding the most bytes of ``keys``."""
        by_node: dict[str, int] = {}
        for k in keys:
            if k in self._held:
                _, node, n = self._held[k]
                by_node[node] = by_node.get(node, 0) + n
        return max(by_node, key=lambda n: by_node[n]) if by_node else None

    def place(self, readers: dict[str, list[str]]) -> dict[str, str]:
        """Task id -> Ray node for tasks reading objects (``readers``: task id -> its keys):
        each, the biggest first, on the node holding the most of its bytes among those with
        the fewest tasks so far. Hash partitions hold about the same share of every node's
        bytes, so spreading the tasks costs little locality, while sending each to where most
        of it is put all of a join's partition tasks on one node (measured)."""
        local: dict[str, dict[str, int]] = {}
        for task, keys in readers.items():
            by_node = local.setdefault(task, {})
            for k in keys:
                if k in self._held:
                    _, node, n = self._held[k]
                    by_node[node] = by_node.get(node, 0) + n
        nodes = sorted({n for by_node in local.values() for n in by_node})
        if not nodes:
            return {}
        taken = dict.fromkeys(nodes, 0)
        out: dict[str, str] = {}
        for task in sorted(local, key=lambda t: -sum(local[t].values())):
            node = min(nodes, key=lambda n: (taken[n], -local[task].get(n, 0)))
            taken[node] += 1
            out[task] = node
        return out

    def drop(self, keys: list[str]) -> None:
        for k in keys:
            self._held.pop(k, None)

    def release(self, job: str) -> int:
        """Drop every object of job ``job``'s tasks (ids ``<job>-...``); how many went."""
        gone = [k for k in self._held if k.startswith(f"{job}-")]
        self.drop(gone)
        return len(gone)

    def __len__(self) -> int:
        return len(self._held)
