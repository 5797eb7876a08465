"""The Ray backend: each task a Ray remote function running the same ``execute`` code.

``RayBackend()`` starts Ray on this machine (``ray.init()``) unless this process already has
it; ``address="auto"``, ``"host:port"`` or ``"ray://host:port"`` joins a cluster (``node_dir``: the temp dir of the
node to attach to, where one machine runs several). An address
nobody answers on fails within ``connect_timeout`` seconds (its port is probed before Ray is
asked), never hangs. Results travel as Arrow tables
through Ray's object store. A worker that dies is retried by Ray (``max_retries``); an error
the task raises comes back as data, so retryable ones are resubmitted here with the next
attempt number and the others are raised as their own type, as on every backend.

A Ray this backend starts runs its workers at the scheduling priority of the local pool's
(``worker_niceness`` 0; Ray's own default is 15, which leaves the tasks little CPU on a
machine with other work); a cluster it joins keeps its own setting.

Placement. Alone, a task reads its chunks by path on the driver's machine (the driver fetches
the chunks this node lacks from a replica first), so every task is pinned to the driver's Ray
node (``NodeAffinitySchedulingStrategy``, not soft). On a cluster of platforms started with
``--ray`` (:meth:`RayBackend.attach` gives it the lake cluster), the driver names chunks by
hash and a task that reads only lake chunks is placed on the Ray node of a platform holding
them (:func:`~elytra.backends.placement.place`, soft affinity), which resolves them against
its own chunk directory (:mod:`.raynodes`) and sends its rows back through Ray's object
store; a node that lacks a chunk gives the task back unrun, and it runs on the driver's node
with the chunk fetched from a replica. Every other task runs on the driver's node. The
driver fetches no chunk for a task placed elsewhere.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from platform_core import address_space, widen_cap

from .._ray import import_ray, ray_init_hint
from ..chunkcache import pin, trim
from ..chunkrefs import chunk_shas, resolve_chunks, sha_of
from ..errors import BackendUnavailableError, ExchangeLostError, PipelineError
from ..scheduler import Failed, Moved, Outcome, Scheduler, Watch
from ..shuffle import Shuffle
from ..task import Task, TaskResult, execute
from .base import describe_error, failure
from .placement import place
from .rayhealth import RayHealth
from .raynodes import NODE_VAR, NotHere, lake_nodes, resolved_here
from .rayobjects import (
    ObjectRegistry,
    is_object,
    object_keys,
    pack,
    placement_view,
    ship_files,
    unpack,
)

if TYPE_CHECKING:
    from .chunkcluster import ChunkCluster

__all__ = ["RayBackend"]


def _run(
    text: str, placed: bool = False, returns: int = 1, keys: Sequence[str] = (), *objects: Any
) -> Any:
    """The remote side: a task's result, or its error as data (never a RayTaskError).
    ``placed``: the task names lake chunks, resolved on this node (``moved`` when it lacks
    one: the task did not run). ``keys`` name the exchange ``objects`` it reads
    (:mod:`.rayobjects`); with ``returns`` > 1 it answers with its partitions too, one object
    each, instead of files (a placed task's disk is not the driver's)."""
    task = Task.from_json(text)
    given = dict(zip(keys, objects, strict=True))
    parts: list[list[bytes] | None] = []
    try:
        if placed:
            with resolved_here(task, given) as ready:
                result = execute(ready)
                parts = pack(ready, result.stats, returns - 1) if returns > 1 else []
        else:
            result = execute(unpack(task, given, Path(task.spill_dir) / "objects"))
    except NotHere as exc:
        return _answer({"ok": False, "moved": str(exc)}, returns)
    except Exception as exc:
        error = describe_error(exc)
        if isinstance(exc, ExchangeLostError):  # a lost partition: no retry brings it back
            error["retryable"] = False
        return _answer({"ok": False, "error": error}, returns)
    import ray

    stats = {
        **result.stats,
        "node": os.environ.get(NODE_VAR, ""),
        "ray_node": ray.get_runtime_context().get_node_id(),
    }
    answer = {"ok": True, "table": result.table, "seconds": result.seconds, "stats": stats}
    return _answer(answer, returns, parts)


def _answer(answer: dict[str, Any], returns: int, parts: Sequence[Any] = ()) -> Any:
    """``answer`` alone, or with one return per partition (None where there is none)."""
    if returns == 1:
        return answer
    return (answer, *parts, *[None] * (returns - 1 - len(parts)))


def _probe(address: str, timeout: float) -> None:
    """Fail fast when nothing listens at ``address`` (``host:port`` or ``ray://host:port``)."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    host, port = parts.hostname, parts.port
    if host is None or port is None:
        raise BackendUnavailableError(
            f"Ray address {address!r} is not host:port, ray://host:port or 'auto'"
        )
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            pass
    except OSError as exc:
        raise BackendUnavailableError(
            f"no Ray cluster answers at {address} ({exc}); start one (`ray start --head`) or "
            "leave the address out to run Ray on this machine"
        ) from None


class RayBackend:
    """Tasks as Ray remote functions; see the module docstring."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        max_attempts: int = 3,
        connect_timeout: float = 15.0,
        num_cpus: int | None = None,
        object_store_memory: int = 256 << 20,
        node_dir: str | None = None,
        chunk_cache: Path | None = None,
        chunk_cache_bytes: int = 0,
    ) -> None:
        ray = import_ray()  # without the [ray] extra, or out of range: one clear error

        self.max_attempts = max_attempts
        self._started = False
        if address not in (None, "auto", "local"):
            _probe(address, connect_timeout)  # also when Ray runs here: say so, do not ignore it
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "ignore_reinit_error": True,
            }
            if address is None or address == "local":
                kwargs |= {
                    # a new Ray of its own: left to itself, ray.init() joins whatever cluster
                    # /tmp/ray/ray_current_cluster names, even one that has since died
                    "address": "local",
                    "num_cpus": num_cpus,
                    "object_store_memory": object_store_memory,
                    # Ray starts its workers at nice 15 (its ``worker_niceness``): on a shared
                    # machine the tasks then get a sliver of the cores the local pool's
                    # workers (nice 0) get, 2-3x its wall time for the same CPU seconds
                    "_system_config": {"worker_niceness": 0},
                }
            else:
                kwargs["address"] = address
                if node_dir is not None:  # this platform's own node, not the head's
                    kwargs["_temp_dir"] = node_dir
            self._init(ray, kwargs, connect_timeout)
            self._started = True
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.node_id = ray.get_runtime_context().get_node_id()
        remote = ray.remote(max_retries=max(0, max_attempts - 1))(_run)
        self._remote = remote.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=self.node_id, soft=False)
        )
        self._placed = _Placed(remote)
        self._health = RayHealth(self.node_id)
        self.objects = ObjectRegistry()
        """Exchange partitions held in Ray's object store (:mod:`.rayobjects`)."""
        self._cluster: Callable[[], ChunkCluster | None] | None = None
        self.chunk_cache = chunk_cache if chunk_cache_bytes > 0 else None
        """Where chunks a task run on this node lacks are kept for later jobs
        (``chunkcache.py``), up to ``chunk_cache_bytes``; None: fetched for each job."""
        self.chunk_cache_bytes = chunk_cache_bytes
        self.stats: dict[str, int] = dict.fromkeys(
            ("here", "placed", "moved", "exchanged_bytes", "shipped_bytes"), 0
        )
        """Tasks run on the driver's node, placed on a node holding their chunks (or their
        exchange objects), and given back by such a node (it lacked a chunk) to run here; the
        partition bytes placed tasks sent as objects; and the bytes of this machine's files
        (sides run first) sent with tasks as objects (``platform status``)."""

    def attach(self, cluster: Callable[[], ChunkCluster | None]) -> None:
        """Place tasks that read lake chunks on the Ray nodes of the platforms holding them
        (``cluster()``: the lake cluster this platform runs in, None while it runs alone)."""
        self._cluster = cluster

    def _chunk_cluster(self) -> ChunkCluster | None:
        if self._cluster is None:
            return None
        try:
            return self._cluster()
        except Exception:  # the lake node is starting or stopping: place nothing
            return None

    @property
    def resolves_chunks(self) -> bool:
        """Whether the driver names chunks by hash: a cluster with a peer whose Ray node can
        take tasks (else the driver reads what its node lacks first, and keeps its exchanges
        on the workers of this machine)."""
        cluster = self._chunk_cluster()
        if cluster is None:
            return False
        nodes = lake_nodes(self._health.nodes())
        return any(p.id in nodes and nodes[p.id][0] != self.node_id for p in cluster.peers())

    @property
    def machine_slots(self) -> int | None:
        """When all of Ray's live nodes are one machine (platforms joined on one host), the
        CPUs of the largest: the threads a task alone in its run gets, and so the one-CPU
        tasks it stands for (``Driver.whole_cap``); else None. Not the sum over the nodes:
        each one-task job still asks Ray for one CPU (``_RayAttempts.cpus``), so a node may
        run as many such jobs at once as it has CPUs, each under that many tasks' caps."""
        try:
            nodes = [n for n in self._health.nodes() if n.get("Alive")]
        except Exception:  # Ray is gone or silent: the run says so
            return None
        hosts = {n.get("NodeManagerAddress") for n in nodes}
        if not nodes or len(hosts) != 1 or None in hosts:
            return None
        return max(max(1, int(n.get("Resources", {}).get("CPU", 1))) for n in nodes)

    @staticmethod
    def _init(ray: Any, kwargs: dict[str, Any], timeout: float) -> None:
        # In the calling thread: Ray ties the processes it starts to the thread that started
        # them (they die with it), so it cannot be bounded by a helper thread. A remote
        # address was probed first, so Ray is only asked where something listens.
        before = address_space()
        try:
            ray.init(**kwargs)
        except Exception as exc:
            where = kwargs.get("address", "this machine")
            raise BackendUnavailableError(
                f"Ray could not start or connect at {where}: {exc}{ray_init_hint(exc)}"
            ) from None
        after = address_space()
        if before is not None and after is not None:
            # the object store mapped whole (30 % of RAM by default): bounded by Ray, not a
            # part of this process's own headroom (a gateway whose cap counted it aborted in
            # a Ray thread at TPC-H SF 10, its own memory far below the cap)
            widen_cap(after - before)

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]:
        cluster = self._chunk_cluster()
        where: dict[str, str] = {}
        shipped: dict[str, Any] = {}
        if cluster is not None and self.resolves_chunks:  # a side run first goes with them
            tasks, shipped, nbytes = ship_files(tasks, self._put)
            self.stats["shipped_bytes"] += nbytes
        views = [placement_view(t) for t in tasks]
        if cluster is not None and any(chunk_shas(t) is not None for t in views):
            where = self._placement(views, cluster)
        readers = {
            t.id: object_keys(t.files)
            for t in tasks
            if t.files and all(is_object(f) for f in t.files)
        }
        where.update(self.objects.place(readers))  # an exchange's partitions where their bytes are
        attempts = _RayAttempts(self, where, cluster, shipped)
        if len(tasks) == 1:  # a task alone runs DuckDB on its node's cores
            attempts.cpus = {ray_id: cpus for ray_id, cpus in self._node_cpus()}
        scheduler = Scheduler(attempts, max_attempts=self.max_attempts)
        return scheduler.run(tasks, cancel, started)

    def _placement(self, tasks: Sequence[Task], cluster: ChunkCluster) -> dict[str, str]:
        """Task id -> the Ray node to run it on (the driver's own for those it keeps), for
        the tasks that read only lake chunks: by :func:`place` over the lake nodes that
        have a Ray node, each weighed by its Ray CPUs."""
        me = cluster.me()
        nodes = lake_nodes(self._health.nodes())
        peers = [p.id for p in cluster.peers() if p.id in nodes and nodes[p.id][0] != self.node_id]
        if not peers:
            return {}
        slots = {n: nodes[n][1] if n in nodes else 1 for n in [me, *peers]}

        def holds(node: str, sha: str) -> bool:
            if node == me:
                return cluster.locate(sha) is not None
            return node in cluster.holders(sha)

        placed = place(tasks, me, peers, holds, slots, complete=True)
        return {tid: nodes[n][0] if n in nodes else self.node_id for tid, n in placed.items()}

    def _node_cpus(self) -> list[tuple[str, int]]:
        """(Ray node id, its CPUs) of every live node; none while Ray does not answer."""
        try:
            nodes = self._health.nodes()
        except Exception:  # the run itself says what is wrong with Ray
            return []
        return [
            (str(n["NodeID"]), max(1, int(n.get("Resources", {}).get("CPU", 1))))
            for n in nodes
            if n.get("Alive")
        ]

    @staticmethod
    def _put(files: list[bytes]) -> Any:
        import ray

        return ray.put(files)

    def release(self, job: str) -> None:
        """Let go of job ``job``'s exchange objects still held (Ray frees them)."""
        self.objects.release(job)

    def close(self) -> None:
        """Shut Ray down if this backend started it (never a Ray someone else runs)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


class _Placed:
    """The remote function with a soft affinity to one node (and a number of returns), one
    ``options`` per pair."""

    def __init__(self, remote: Any) -> None:
        self._remote = remote
        self._by_node: dict[tuple[str, int], Any] = {}

    def on(self, node: str, returns: int = 1) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if (node, returns) not in self._by_node:
            strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=True)
            self._by_node[(node, returns)] = self._remote.options(
                scheduling_strategy=strategy, num_returns=returns
            )
        return self._by_node[(node, returns)]


class _RayAttempts:
    """Attempts as Ray tasks: all submitted at once (Ray queues them on its workers), polled
    with ``ray.wait``, killed with ``ray.cancel``. Ray itself re-runs a task whose worker died
    (``max_retries``); a worker that died on every try fails the run at once. A task in
    ``where`` goes to that node (its chunks resolved there), as does one reading only
    exchange objects (to the node holding most of their bytes); one given back (``Moved``)
    and every other runs on the driver's node, its chunk names resolved here."""

    def __init__(
        self,
        backend: RayBackend,
        where: dict[str, str],
        cluster: ChunkCluster | None,
        shipped: dict[str, Any] | None = None,
    ) -> None:
        self._remote, self._placed, self._where = backend._remote, backend._placed, where
        self._shipped = shipped or {}
        """Files of this machine the run's tasks read, as objects (:func:`ship_files`): held
        until the run ends, as every task of a stage may read them."""
        self._cluster, self._stats = cluster, backend.stats
        self._tasks: dict[Any, Task] = {}
        self._parts: dict[Any, list[Any]] = {}  # a placed task's partition objects
        self._here: set[str] = set()  # tasks given back by the node they were placed on
        self.health: RayHealth | None = backend._health
        """Fails the run once Ray is gone (its tasks would never finish)."""
        self.objects = backend.objects
        self.node_id = backend.node_id
        """The driver's Ray node."""
        self.cpus: dict[str, int] = {}
        """Ray node id -> its CPUs, for a run of one task: DuckDB runs on that many threads.
        Ray is still asked for one CPU: a task asking for every CPU of a node waits until
        all are free at once, which a stream of one-CPU tasks can put off for minutes (found
        from outside: 70 and 120 s for a query of 0.4 s)."""
        self._cache, self._cache_bytes = backend.chunk_cache, backend.chunk_cache_bytes
        self._since = time.monotonic()

    def free(self) -> int:
        return 1 << 30

    def _node(self, task: Task, keys: list[str]) -> str | None:
        """Where ``task`` is placed off the driver's node, or None (it runs here)."""
        if task.id in self._here:
            return None
        node = self._where.get(task.id)
        if node is None and keys and all(is_object(f) for f in task.files):
            node = self.objects.nearest(keys)
        if node == self.node_id and not task.exchange and (not keys or _reads_chunks(task)):
            # a task of chunks (with a side run first, perhaps) on the driver's node runs
            # here, its chunks pinned or fetched: placed, it would be given back unrun when
            # this node lacks one (found from outside: every such task went twice)
            return None
        # one that partitions its rows sends them as objects from the driver's node too, so
        # that the partition's task is not tied to this machine's disk
        return node

    def submit(self, task: Task) -> Hashable:
        keys = object_keys(task.files)
        node = self._node(task, keys)
        try:
            exchanged = [k for k in keys if k not in self._shipped]
            held = dict(zip(exchanged, self.objects.refs(exchanged), strict=True))
            refs = [self._shipped[k] if k in self._shipped else held[k] for k in keys]
            threads = self.cpus.get(node or self.node_id, 1)
            if node is not None:
                returns = 1 + Shuffle.from_json(task.exchange).parts if task.exchange else 1
                text = replace(task, result_file="", threads=threads).to_json()
                remote = self._placed.on(node, returns)
                out = remote.remote(text, True, returns, keys, *refs)
                self._stats["placed"] += 1
            else:
                returns = 1
                text = replace(self._resolved(task), threads=threads).to_json()
                out = self._remote.remote(text, False, 1, keys, *refs)
                self._stats["here"] += 1
        except PipelineError:
            raise
        except Exception as exc:
            raise _unavailable(exc) from None
        ref = out[0] if returns > 1 else out
        self._tasks[ref] = task
        if returns > 1:
            self._parts[ref] = list(out[1:])
        return ref  # type: ignore[no-any-return]

    def _resolved(self, task: Task) -> Task:
        """``task`` with its chunk names resolved on this platform (fetched from a replica
        into the job's directory when this node lacks one); as is when it names none. A task
        that also reads a file of this machine (a side run first) has its chunks resolved
        too: it can run only here."""
        c = self._cluster
        if c is None or not _reads_chunks(task):
            return task
        where = Path(task.spill_dir).parent / "chunks"
        cache = self._cache
        if cache is None:
            return resolve_chunks(task, c.locate, c.fetch, where)
        ready = resolve_chunks(
            task, c.locate, c.fetch, where, lambda sha: pin(sha, c.fetch, cache, where)
        )
        # back within its bound; the task's own files kept (a copy not linked, another file
        # system: the cache's own, found from outside)
        trim(cache, self._cache_bytes, keep=ready.files)
        return ready

    def _took(self, ref: Any, task: Task, stats: dict[str, Any]) -> None:
        """A task's answer is accepted: hold the partitions it sent as objects, and let go of
        the objects it read (one task reads a partition)."""
        parts = self._parts.pop(ref, None)
        written = stats.get("exchange")
        if parts is not None and written is not None:
            key = f"{task.id}-a{task.attempt}"
            for p, names in enumerate(written["files"]):
                if names:
                    nbytes = int(written["bytes"][p])
                    self.objects.add(f"{key}-p{p}", parts[p], stats["ray_node"], nbytes)
                    self._stats["exchanged_bytes"] += nbytes
        self.objects.drop(object_keys(task.files))

    def poll(self, timeout: float, watch: Watch) -> list[tuple[Hashable, Outcome]]:
        import ray

        if not self._tasks:
            return []
        ready, _ = ray.wait(list(self._tasks), num_returns=1, timeout=timeout)
        if not ready and self.health is not None:
            self.health.check(self._since)
        out: list[tuple[Hashable, Outcome]] = []
        for ref in ready:
            task = self._tasks.pop(ref)
            fetched = time.perf_counter()
            try:
                got = ray.get(ref)
            except ray.exceptions.LocalRayletDiedError as exc:
                raise _unavailable(exc) from None
            except ray.exceptions.RayError as exc:  # the worker died on every retry
                self._parts.pop(ref, None)
                raise failure(task, exc) from None
            if got.get("moved"):
                self._parts.pop(ref, None)
                self._here.add(task.id)
                self._stats["moved"] += 1
                out.append((ref, Moved(got["moved"])))
            elif got["ok"]:
                stats = {**got["stats"], "attempt": task.attempt}
                if not stats.get("node") and self._cluster is not None:
                    stats["node"] = self._cluster.me()
                stats["transfer_seconds"] = time.perf_counter() - fetched
                self._took(ref, task, stats)
                out.append((ref, TaskResult(task.id, got["table"], got["seconds"], stats)))
            else:
                self._parts.pop(ref, None)
                out.append((ref, Failed(got["error"], "a Ray worker")))
        return out

    def kill(self, handle: Hashable) -> None:
        import ray

        self._tasks.pop(handle, None)
        self._parts.pop(handle, None)
        ray.cancel(handle, force=True)


def _reads_chunks(task: Task) -> bool:
    return any(sha_of(f) for f in task.files)


def _unavailable(exc: Exception) -> Exception:
    """``exc`` as the job's error: Ray's node gone is ``BackendUnavailableError`` (503, try
    again once it is back), anything else as it is."""
    import ray

    if isinstance(exc, ray.exceptions.LocalRayletDiedError | ray.exceptions.RaySystemError):
        return BackendUnavailableError(
            f"this platform's Ray node is gone ({type(exc).__name__}): jobs cannot run on Ray "
            "until the platform is restarted with --ray; `platform status` shows Ray's state"
        )
    return exc
