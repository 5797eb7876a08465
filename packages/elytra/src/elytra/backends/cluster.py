"""The cluster backend: a job's tasks run on every platform of the cluster, near their data.

``ClusterBackend(local, cluster)`` wraps the platform's own backend. A task that reads only
lake chunks (named ``lake-chunk:<sha256>``, see :mod:`elytra.chunkrefs`) is placed on a
platform that holds its chunks (this one or a live peer), balancing bytes over the platforms'
slots; a peer runs it on its own pool (``POST /internal/elytra/tasks``, cluster token) and
sends the rows back as Arrow IPC. Every other task, and every task once its peer failed,
runs on ``local`` with its chunk names resolved here (a chunk this platform lacks is fetched
from a replica into the job's directory).

Attempts, retries and cancel belong to :class:`~elytra.scheduler.Scheduler` (a peer's
connection is its attempt's lease). Failures: a peer that cannot be reached, times out (``lease_seconds``), is busy or answers
5xx loses its tasks to ``local`` (the attempt counts) and gets no more of this run's tasks.
So does a peer that hangs with tasks in flight, once the lake's gossip has counted it not
alive for ``GONE_SECONDS`` (its late answers are dropped).
A task error the peer reports as not retryable (bad input, a cap too small) fails the job
as its own type, as it would have locally. Cancel aborts the peers' requests (which cancels
their tasks) and ``local``'s run.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import httpx
import pyarrow as pa

from platform_core.http import http_client

from ..chunkrefs import chunk_shas, resolve_chunks
from ..scheduler import Failed, Moved, Outcome, Scheduler, Watch
from ..task import Task, TaskResult
from .base import Backend, rebuild_error
from .peerslots import PeerSlots
from .placement import place
from .runner import BackgroundRunner

__all__ = ["TASKS_PATH", "ChunkCluster", "ClusterBackend", "Peer", "place"]

log = logging.getLogger(__name__)

TASKS_PATH = "/internal/elytra/tasks"
"""Where a platform takes tasks from its peers."""

_POLL = 0.1
_NOT_A_PEER_SECONDS = 60.0
"""How long a member that answered 404 (a lake node without elytra) is left out."""
GONE_SECONDS = 2.0
"""How long a peer with tasks in flight may be missing from the lake's live members before
those tasks run here: a hung platform (stopped, partitioned) answers nothing until the lease
(``ELYTRA_LEASE_SECONDS``, 600 s), while the lake's gossip sees it gone in seconds. The grace
keeps a peer that was suspected for a moment (under load) from losing its work."""
_STOP_SECONDS = 5.0
"""How long a run's end waits, in all, for its sender threads (one blocked on a hung peer is
left behind: a daemon, its request closed or answered within the lease)."""


@dataclass(frozen=True)
class Peer:
    """Another platform of the cluster: its node id and its gateway's base URL."""

    id: str
    url: str


class ChunkCluster(Protocol):
    """What the backend needs of the lake cluster this platform belongs to."""

    def me(self) -> str: ...

    def peers(self) -> list[Peer]:
        """The live members other than this one."""
        ...

    def holders(self, sha: str) -> list[str]:
        """Node ids that hold (or are to hold) chunk ``sha``."""
        ...

    def locate(self, sha: str) -> str | None:
        """This platform's copy of chunk ``sha``, if it has one."""
        ...

    def fetch(self, sha: str) -> bytes:
        """Chunk ``sha``'s checked bytes from a member that has it."""
        ...

    def token(self) -> str:
        """A cluster token for the peers' routes."""
        ...


class _Resolving:
    """``backend`` over tasks whose chunk names are first resolved on this platform."""

    def __init__(self, backend: Backend, cluster: ChunkCluster | None) -> None:
        self.backend, self.cluster = backend, cluster
        self.name = backend.name

    def run(
        self, tasks: Sequence[Task], cancel: threading.Event, started: Any = None
    ) -> Iterator[TaskResult]:
        c = self.cluster
        locate = c.locate if c is not None else _nowhere
        fetch = c.fetch if c is not None else None
        ready = [
            resolve_chunks(t, locate, fetch, Path(t.spill_dir).parent / "chunks") for t in tasks
        ]
        return self.backend.run(ready, cancel, started)

    def close(self) -> None:
        self.backend.close()


def _nowhere(sha: str) -> str | None:
    return None


class _PeerRefused(Exception):
    """A peer did not run a task: it runs here. ``spent``: the attempt counts (the peer may
    have run it partly: a dropped connection, a timeout, a 5xx); not when the peer said at
    once that it would not (404: no elytra there; 401/403: another secret; 503: busy)."""

    def __init__(self, message: str, spent: bool = True) -> None:
        super().__init__(message)
        self.spent = spent


class _TaskError(Exception):
    """The task's own error as its peer reported it (not retryable): the job fails with it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class ClusterBackend:
    """``local`` plus the cluster's peer platforms (see the module docstring)."""

    name = "cluster"
    resolves_chunks = True
    """The driver names lake chunks by hash (``lake-chunk:``); this backend resolves them."""

    def __init__(
        self,
        local: Backend,
        cluster: Callable[[], ChunkCluster | None],
        *,
        local_slots: int,
        peer_slots: int = 2,
        max_attempts: int = 3,
        lease_seconds: float = 600.0,
        max_result_bytes: int = 2 << 30,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.local = local
        self.verify = verify
        """How the peers' HTTPS certificates are checked (``platform_core.tls.client_context``;
        None: the platform's settings, as every client the kit makes)."""
        self._cluster = cluster
        self.local_slots = local_slots
        self.peer_slots = peer_slots
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.max_result_bytes = max_result_bytes
        self._not_peers: dict[str, float] = {}
        self.slots = PeerSlots(peer_slots, verify)
        """Each peer's pool size, asked of it (placement weighs bytes per slot)."""
        self.stats: dict[str, int] = {"local": 0, "peer": 0, "peer_failed": 0}

    def worker_states(self) -> list[dict[str, Any]]:
        """The local pool's workers (``GET /api/jobs/pool``)."""
        states = getattr(self.local, "worker_states", None)
        return list(states()) if callable(states) else []

    def close(self) -> None:
        self.local.close()

    def cluster(self) -> ChunkCluster | None:
        try:
            return self._cluster()
        except Exception:  # the lake node is starting or stopping: no peers, no chunks
            return None

    def peers(self, cluster: ChunkCluster) -> list[Peer]:
        now = time.monotonic()
        return [p for p in cluster.peers() if self._not_peers.get(p.id, 0.0) <= now]

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]:
        cluster = self.cluster()
        local = _Resolving(self.local, cluster)
        peers = {p.id: p for p in self.peers(cluster)} if cluster is not None else {}
        if cluster is None or not peers or all(chunk_shas(t) is None for t in tasks):
            self.stats["local"] += len(tasks)
            yield from local.run(tasks, cancel, started)
            return
        if started is not None:
            started()
        me = cluster.me()
        slots = {me: self.local_slots, **self.slots.of(list(peers.values()), cluster.token)}

        def holds(node: str, sha: str) -> bool:
            if node == me:
                return cluster.locate(sha) is not None
            return node in cluster.holders(sha)

        where = place(tasks, me, list(peers), holds, slots)
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        runner = BackgroundRunner(local, cancel, events, "elytra-cluster-local")
        run = _PeerRun(self, cluster, events, cancel)
        attempts = _ClusterAttempts(self, me, peers, where, run, runner, events)
        # no lease here: a peer's connection is its lease (``lease_seconds`` bounds the answer,
        # a drop fails the attempt), and ``local`` leases its own attempts
        scheduler = Scheduler(attempts, max_attempts=self.max_attempts, tick=_POLL)
        try:
            yield from scheduler.run(tasks, cancel)
        finally:
            run.stop()
            runner.stop()

    def _not_a_peer(self, peer: Peer) -> None:
        self._not_peers[peer.id] = time.monotonic() + _NOT_A_PEER_SECONDS


class _ClusterAttempts:
    """The cluster's side of the :class:`~elytra.scheduler.Scheduler` for one run (the
    handle is the task id). ``submit`` queues a task for the peer it was placed on (its
    sender threads start at the first ``poll``, once the run's tasks are all queued), or
    gives it to ``local``'s runner: every task placed here, and every task whose peer did
    not run it. ``poll`` turns the senders' and the runner's events into outcomes: a peer
    that failed a task spends an attempt (``Failed``: the next one runs here), one that
    refused it at once does not (``Moved``); an error the task raised on a peer, or a
    failed local run, fails the run. ``kill`` has nothing to do per attempt: the run's end
    aborts the peers' requests (their peers cancel those tasks) and ``local`` sees cancel."""

    def __init__(
        self,
        backend: ClusterBackend,
        me: str,
        peers: dict[str, Peer],
        where: dict[str, str],
        run: _PeerRun,
        runner: BackgroundRunner,
        events: queue.Queue[tuple[Any, ...]],
    ) -> None:
        self.backend, self.me, self.peers, self.where = backend, me, peers, where
        self.run, self.runner, self.events = run, runner, events
        self.here: set[str] = set()  # tasks a peer did not run: they run on ``local``
        self.started = False

    def free(self) -> int:
        return 1 << 30  # the peers' sender threads and ``local`` queue what they cannot start

    def submit(self, task: Task) -> Hashable:
        node = self.where.get(task.id, self.me)
        if node == self.me or task.id in self.here:
            self.backend.stats["local"] += 1
            self.runner.submit(task)
        else:
            self.run.assign(self.peers[node], task)
        return task.id

    def poll(self, timeout: float, watch: Watch) -> list[tuple[Hashable, Outcome]]:
        if not self.started:
            self.started = True
            self.run.start()
        lost = [
            (task.id, Failed(f"its peer {peer_id} left the cluster while it ran there"))
            for task, peer_id in self.run.lost()
        ]
        self.here.update(str(handle) for handle, _ in lost)
        try:
            got = [self.events.get(timeout=0.0 if lost else timeout)]
        except queue.Empty:
            return list(lost)
        while True:
            try:
                got.append(self.events.get_nowait())
            except queue.Empty:
                break
        out: list[tuple[Hashable, Outcome]] = list(lost)
        for event in got:
            kind = event[0]
            if kind == "local_error" or kind == "peer_error":
                raise event[-1]
            task: Task = event[1]
            if kind in ("local", "peer"):
                out.append((task.id, event[2]))
                continue
            # a peer did not run it ("moved": not tried; "peer_failed": an attempt spent)
            self.here.add(task.id)
            if kind == "peer_failed":
                out.append((task.id, Failed(f"its peer failed it: {event[-1]}")))
            else:
                out.append((task.id, Moved(str(event[-1]))))
        return out

    def kill(self, handle: Hashable) -> None:
        pass


class _PeerRun:
    """The peers' share of one run: a queue and ``peer_slots`` sender threads per peer (a
    peer answers 503 past its ``peer_max_running``, and a refusal gives its queue back)."""

    def __init__(
        self,
        backend: ClusterBackend,
        cluster: ChunkCluster,
        events: queue.Queue[tuple[Any, ...]],
        cancel: threading.Event,
    ) -> None:
        self.backend, self.cluster, self.events, self.cancel = backend, cluster, events, cancel
        self.queues: dict[str, deque[Task]] = {}
        self.peers: dict[str, Peer] = {}
        self.down: set[str] = set()
        self.flying: dict[str, tuple[str, Task]] = {}  # task id -> (peer id, task) in flight
        self.abandoned: set[str] = set()  # task ids whose peer left: their answers are dropped
        self.missing: dict[str, float] = {}  # peer id -> when it was first seen not alive
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        # no retries: a peer that does not answer has its tasks moved to others
        self.client = http_client(
            timeout=10.0, read=backend.lease_seconds, max_connections=64, verify=backend.verify
        )

    def assign(self, peer: Peer, task: Task) -> None:
        self.peers[peer.id] = peer
        self.queues.setdefault(peer.id, deque()).append(task)

    def start(self) -> None:
        for peer_id, todo in self.queues.items():
            for i in range(min(self.backend.peer_slots, len(todo))):
                t = threading.Thread(
                    target=self._send_loop,
                    args=(self.peers[peer_id],),
                    name=f"elytra-peer-{peer_id[:8]}-{i}",
                    daemon=True,
                )
                t.start()
                self._threads.append(t)

    def stop(self) -> None:
        self._stopped.set()
        self.client.close()  # aborts requests in flight: their peers cancel those tasks
        deadline = time.monotonic() + _STOP_SECONDS
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def lost(self) -> list[tuple[Task, str]]:
        """The tasks in flight on peers missing from the lake's live members for
        ``GONE_SECONDS``, with their peer: they are the driver's now (the peer is down for this
        run, its queued tasks moved here, a late answer of its dropped)."""
        if not self.flying:
            return []
        live = {p.id for p in self.cluster.peers()}
        now = time.monotonic()
        with self._lock:
            flying = {peer_id for peer_id, _ in self.flying.values()}
            for peer_id in flying & live:
                self.missing.pop(peer_id, None)
            gone = {
                peer_id
                for peer_id in flying - live
                if now - self.missing.setdefault(peer_id, now) >= GONE_SECONDS
            }
            out = [(t, peer_id) for peer_id, t in self.flying.values() if peer_id in gone]
            for task, _ in out:
                del self.flying[task.id]
                self.abandoned.add(task.id)
        for peer_id in gone:
            log.warning("peer %s left the cluster: its tasks of this run run here", peer_id[:12])
            self.backend.stats["peer_failed"] += 1
            self._give_back(self.peers[peer_id])
        return out

    def _next(self, peer: Peer) -> Task | None:
        with self._lock:
            todo = self.queues[peer.id]
            return todo.popleft() if todo else None

    def _give_back(self, peer: Peer) -> None:
        """The peer is down for this run: its waiting tasks run here, not tried."""
        with self._lock:
            self.down.add(peer.id)
            todo, self.queues[peer.id] = self.queues[peer.id], deque()
        for task in todo:
            self.events.put(("moved", task, "its peer is down"))

    def _send_loop(self, peer: Peer) -> None:
        while not self._stopped.is_set() and not self.cancel.is_set():
            if peer.id in self.down:
                self._give_back(peer)
                return
            task = self._next(peer)
            if task is None:
                return
            with self._lock:
                self.flying[task.id] = (peer.id, task)
            try:
                result = self._send(peer, task)
            except _PeerRefused as exc:
                if self._stopped.is_set() or self._landed(task):
                    return
                log.warning("peer %s did not run task %s: %s", peer.id[:12], task.id, exc)
                self.backend.stats["peer_failed"] += 1
                self.events.put(("peer_failed" if exc.spent else "moved", task, str(exc)))
                self._give_back(peer)
                return
            except _TaskError as exc:  # the task's own error, as the peer reported it
                if not self._landed(task):
                    self.events.put(("peer_error", task, exc.error))
                return
            if self._landed(task):  # its peer was given up on meanwhile: it ran here
                return
            self.backend.stats["peer"] += 1
            self.events.put(("peer", task, result))

    def _landed(self, task: Task) -> bool:
        """Whether ``task``'s answer was given up on (its peer left): its attempt is over;
        else it is no longer in flight."""
        with self._lock:
            self.flying.pop(task.id, None)
            return task.id in self.abandoned

    def _send(self, peer: Peer, task: Task) -> TaskResult:
        """The peer's rows for ``task``; ``_PeerRefused`` for anything but a whole, valid
        answer within ``lease_seconds`` (however slowly it trickles in), ``_TaskError`` for
        the task's own error."""
        headers = {"authorization": f"Bearer {self.cluster.token()}"}
        started = time.perf_counter()
        deadline = time.monotonic() + self.backend.lease_seconds
        try:
            with self.client.stream(
                "POST",
                peer.url + TASKS_PATH,
                # a result file is on this machine's disk: a peer sends its rows back instead
                content=replace(task, result_file="").to_json().encode(),
                headers=headers,
            ) as r:
                if r.status_code != 200:
                    r.read()
                    self._refused(peer, task, r)
                data = _read_bounded(r, self.backend.max_result_bytes, deadline)
                stats = json.loads(r.headers.get("x-elytra-stats", "{}"))
            table = pa.ipc.open_stream(data).read_all()
        except (_PeerRefused, _TaskError):
            raise
        except Exception as exc:  # a dropped connection, a timeout, garbage: run it here
            raise _PeerRefused(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        if not isinstance(stats, dict):
            raise _PeerRefused("its answer's x-elytra-stats is not a JSON object")
        # ``peer``: the node that ran it, for EXPLAIN ANALYZE (``worker_pid`` is a pid there)
        stats.update(worker=f"peer:{peer.id}", peer=peer.id, transport="peer", attempt=task.attempt)
        return TaskResult(task.id, table, time.perf_counter() - started, stats)

    def _refused(self, peer: Peer, task: Task, r: httpx.Response) -> None:
        """Raise what a non-200 answer means: the task's own error, or the peer refusing."""
        if r.status_code == 404:
            self.backend._not_a_peer(peer)
            raise _PeerRefused("it takes no tasks (a lake node without elytra)", spent=False)
        try:
            body = r.json()
        except ValueError:
            body = {}
        error = body.get("task_error") if isinstance(body, dict) else None
        if r.status_code == 422 and isinstance(error, dict):
            if error.get("retryable", True):
                raise _PeerRefused(f"the task failed there: {str(error.get('message'))[:200]}")
            raise _TaskError(rebuild_error(error, task, f"peer {peer.id}"))
        message = body.get("error") if isinstance(body, dict) else None
        spent = r.status_code not in (401, 403, 413, 429, 503)
        raise _PeerRefused(f"HTTP {r.status_code}: {str(message or r.text)[:200]}", spent)


def _read_bounded(r: httpx.Response, limit: int, deadline: float) -> bytes:
    out = bytearray()
    for part in r.iter_bytes():
        out += part
        if len(out) > limit:
            raise _PeerRefused(f"its result is over {limit} bytes (ELYTRA_PEER_MAX_RESULT_BYTES)")
        if time.monotonic() > deadline:
            raise _PeerRefused("its answer took longer than ELYTRA_LEASE_SECONDS")
    return bytes(out)
