"""Ray nodes as lake nodes (issue 34 item 2): which lake node a platform's Ray node serves, and
how a task placed there finds that node's chunks.

A platform started with ``--ray`` gives its Ray node a custom resource ``lake-node:<id>``
(one unit that no task asks for: it only names the node) and variables that every Ray worker
of the node inherits: the lake node's id, its chunk directory, and a work directory under the
platform's home. The driver maps lake node ids to Ray node ids through ``ray.nodes()``
(:func:`lake_nodes`, asked through :class:`~.rayhealth.RayHealth`, never without a bound); a task placed on a node resolves its chunk names (``lake-chunk:<sha>``)
against that node's directory (:func:`resolved_here`), its spill and pinned chunks in a
directory of its own under the work directory, removed when it ends. A chunk the node no
longer holds (moved, trimmed) is not fetched here: the task comes back unrun and runs on the
driver's node, which fetches it from a replica (:class:`NotHere`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..chunkrefs import resolve_chunks
from ..shuffle import Shuffle
from ..task import Task
from .rayobjects import chunks_besides_objects, unpack

if TYPE_CHECKING:
    from platform_core import PlatformSettings

__all__ = [
    "CHUNKS_VAR",
    "NODE_VAR",
    "RESOURCE",
    "WORK_VAR",
    "NotHere",
    "lake_nodes",
    "ray_node_marks",
    "resolved_here",
    "sweep",
    "work_dir",
]

RESOURCE = "lake-node:"
"""The prefix of the custom resource naming a Ray node's lake node."""
NODE_VAR = "PLATFORM_LAKE_NODE"
CHUNKS_VAR = "PLATFORM_LAKE_CHUNKS"
WORK_VAR = "PLATFORM_RAY_WORK"


def ray_node_marks(settings: PlatformSettings | None) -> tuple[dict[str, float], dict[str, str]]:
    """The resources and environment a platform's Ray node carries: its lake node's id (made
    once in the home if the lake has not run yet), its chunk directory, a work directory."""
    from lake import lake_settings, node_identity

    ls = lake_settings(settings)
    node_id, chunks = node_identity(ls)
    env = {NODE_VAR: node_id, CHUNKS_VAR: str(chunks), WORK_VAR: str(work_dir(Path(ls.home)))}
    return {RESOURCE + node_id: 1.0}, env


def work_dir(home: Path) -> Path:
    """Where the Ray node of the platform on ``home`` keeps its placed tasks' files."""
    return Path(home) / "elytra" / "ray-tasks"


def lake_nodes(nodes: list[dict[str, Any]]) -> dict[str, tuple[str, int]]:
    """Lake node id -> (Ray node id, its CPUs), for the live Ray nodes a platform started,
    from ``ray.nodes()``' answer."""
    out: dict[str, tuple[str, int]] = {}
    for node in nodes:
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        for name in resources:
            if name.startswith(RESOURCE):
                cpus = max(1, int(resources.get("CPU", 1)))
                out[name[len(RESOURCE) :]] = (str(node["NodeID"]), cpus)
    return out


class NotHere(Exception):
    """A task placed on a Ray node whose lake node lacks one of its chunks: run it elsewhere."""


@contextlib.contextmanager
def resolved_here(
    task: Task, objects: dict[str, list[bytes] | None] | None = None
) -> Iterator[Task]:
    """``task`` with its chunk names resolved against this Ray node's lake node and its
    exchange objects (``objects``: key -> the files' bytes, :mod:`.rayobjects`) written as
    files, in a directory of its own under the node's work directory (its spill and its
    partition files too), removed on exit. Raises :class:`NotHere` when this node serves no
    lake node, lacks one of the chunks, or the task reads a file of the driver's machine."""
    chunks, work = os.environ.get(CHUNKS_VAR), os.environ.get(WORK_VAR)
    shas = chunks_besides_objects(task)
    if shas is None:
        raise NotHere("the task reads files other than lake chunks")
    if not chunks or not work:
        raise NotHere("this Ray node serves no lake node (not started by `platform up --ray`)")
    root = Path(chunks)
    missing = [s for s in shas if not (root / f"{s}.parquet").is_file()]
    if missing:
        raise NotHere(f"lake node {os.environ.get(NODE_VAR, '?')} lacks chunk {missing[0][:12]}")
    sweep(Path(work))
    own = Path(work) / f"{task.id}.a{task.attempt}.{os.getpid()}"
    own.mkdir(parents=True, exist_ok=True)
    try:

        def locate(sha: str) -> str | None:
            path = root / f"{sha}.parquet"
            return str(path) if path.is_file() else None

        try:
            ready = resolve_chunks(task, locate, None, own / "chunks")
        except Exception as exc:  # dropped between the check and the link
            raise NotHere(str(exc)) from None
        ready = unpack(ready, objects or {}, own / "objects")
        if ready.exchange:  # its partitions are written here, then sent as objects
            shuffle = Shuffle.from_json(ready.exchange)
            ready = replace(ready, exchange=replace(shuffle, directory=str(own / "ex")).to_json())
        yield replace(ready, spill_dir=str(own / "spill"), result_file="")
    finally:
        shutil.rmtree(own, ignore_errors=True)


def sweep(work: Path) -> int:
    """Remove the directories of tasks whose Ray worker died (``ray.cancel(force=True)``, a
    SIGKILL: their own removal never ran), and so their links to chunks the lake may since
    have dropped. A directory is named ``<task>.a<attempt>.<pid>``; it goes once that pid is
    gone. Returns how many went."""
    gone = 0
    try:
        entries = list(work.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        pid = entry.name.rpartition(".")[2]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        gone += 1
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True
