"""The worker hub: connected browser workers, the queue of browser tasks, and their leases.

Thread-safe (one lock): the WebSocket handlers call it from the server's event loop, the
browser backend from the driver's thread. The hub never blocks on a socket: each worker has a
``send`` that queues a message for its connection.

* A worker joins with the concurrency it asks for, capped by ``max_concurrency``; it may join
  while a job runs and gets that job's waiting tasks at once.
* :meth:`dispatch` hands waiting tasks to workers with free slots (never to a worker whose
  token subject that task's run banned); each handed task holds a **lease** that heartbeats extend, but never
  past ``max_task_seconds`` after it was handed (a worker that heartbeats and never answers
  must not hold a task for ever). A lease past its deadline (:meth:`expire`), the worker's
  disconnect (:meth:`leave`) or its ``error`` message ends the attempt: the run gets a
  ``failed`` event and decides.
* :meth:`deliver` checks a result: leased to this worker at this attempt, at most
  ``max_result_bytes``, an uncompressed Arrow IPC stream (a compressed one of a few KiB can
  decompress to gigabytes), valid to the last offset and UTF-8 byte (pyarrow's kernels trust
  offsets: ones that run backwards make them read outside the buffers), exactly the expected
  schema (names and types). Anything else ends the attempt as failed: a bad result is never
  accepted.
"""

from __future__ import annotations

import itertools
import queue
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .protocol import RateBucket
from .tasks import BrowserTask

__all__ = ["Lease", "RunQueue", "Worker", "WorkerHub"]


@dataclass(eq=False)
class Worker:
    """One connected browser worker (a WebSocket)."""

    id: str
    sub: str
    concurrency: int
    send: Callable[[dict[str, Any]], None]
    """Queue a JSON message for the worker (thread-safe, never blocks)."""
    close: Callable[[int, str], None]
    """Close the connection with a WebSocket code and reason (thread-safe)."""
    bucket: RateBucket
    leases: set[str] = field(default_factory=set)
    accepted: int = 0
    rejected: int = 0


@dataclass(eq=False)
class RunQueue:
    """The browser side of one backend run: its waiting tasks and the events it reads."""

    events: queue.Queue[tuple[Any, ...]] = field(default_factory=queue.Queue)
    waiting: deque[tuple[BrowserTask, float]] = field(default_factory=deque)
    """Tasks no worker has taken yet, with when they began waiting."""
    banned: set[str] = field(default_factory=set)
    """Token subjects whose results this run no longer accepts: a ban covers every connection
    of the subject, so a banned worker does not come back by reconnecting."""


@dataclass(eq=False)
class Lease:
    task: BrowserTask
    worker: Worker
    run: RunQueue
    deadline: float
    until: float
    """The latest the deadline may be (``max_task_seconds`` after the task was handed)."""


class WorkerHub:
    """Workers, waiting tasks and leases (see the module docstring)."""

    def __init__(
        self,
        *,
        lease_seconds: float = 15.0,
        max_task_seconds: float = 600.0,
        heartbeat_seconds: float = 3.0,
        max_concurrency: int = 4,
        max_result_bytes: int = 16 << 20,
        messages_per_second: float = 50.0,
        max_workers: int = 256,
        max_workers_per_sub: int = 16,
    ) -> None:
        self.lease_seconds = lease_seconds
        self.max_task_seconds = max_task_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.max_concurrency = max_concurrency
        self.max_result_bytes = max_result_bytes
        self.messages_per_second = messages_per_second
        self.max_workers = max_workers
        self.max_workers_per_sub = max_workers_per_sub
        self._connections: dict[str, int] = {}
        """Open connections (joined or not yet) per token subject."""
        self._lock = threading.RLock()
        self._workers: dict[str, Worker] = {}
        self._runs: list[RunQueue] = []
        self._leases: dict[str, Lease] = {}
        self._ids = itertools.count(1)
        self._subs: dict[str, str] = {}
        """Worker id -> token subject, of every worker that joined (bans need it after a
        worker left)."""

    # -- workers ------------------------------------------------------------------------------

    def connect(self, sub: str) -> str | None:
        """Count a new connection of subject ``sub``: None if it may open, else why not (at
        most ``max_workers`` in all and ``max_workers_per_sub`` per subject: each connection
        may make the server buffer a whole frame, up to the WebSocket size limit)."""
        with self._lock:
            if sum(self._connections.values()) >= self.max_workers:
                return f"{self.max_workers} workers are connected, the most this server takes"
            if self._connections.get(sub, 0) >= self.max_workers_per_sub:
                return f"{self.max_workers_per_sub} workers of {sub!r} are connected already"
            self._connections[sub] = self._connections.get(sub, 0) + 1
        return None

    def disconnect(self, sub: str) -> None:
        """A connection that :meth:`connect` counted closed."""
        with self._lock:
            left = self._connections.get(sub, 0) - 1
            if left > 0:
                self._connections[sub] = left
            else:
                self._connections.pop(sub, None)

    def join(
        self,
        sub: str,
        concurrency: int,
        send: Callable[[dict[str, Any]], None],
        close: Callable[[int, str], None],
    ) -> Worker:
        """A new worker with ``min(concurrency, max_concurrency)`` slots (at least 1)."""
        granted = max(1, min(int(concurrency), self.max_concurrency))
        rate = self.messages_per_second
        with self._lock:
            worker = Worker(
                f"w{next(self._ids)}", sub, granted, send, close, RateBucket(rate, 2 * rate)
            )
            self._workers[worker.id] = worker
            self._subs[worker.id] = sub
        self.dispatch()
        return worker

    def leave(self, worker: Worker, reason: str = "the worker disconnected") -> None:
        """The worker is gone: every task it held fails this attempt."""
        with self._lock:
            self._workers.pop(worker.id, None)
            leases = [self._leases.pop(t) for t in list(worker.leases) if t in self._leases]
            worker.leases.clear()
        for lease in leases:
            lease.run.events.put(("failed", lease.task, worker.id, reason))
        self.dispatch()

    def workers(self) -> list[dict[str, Any]]:
        """Each connected worker: id, subject, slots, leased tasks, accepted and rejected."""
        with self._lock:
            return [
                {
                    "id": w.id,
                    "sub": w.sub,
                    "concurrency": w.concurrency,
                    "tasks": sorted(w.leases),
                    "accepted": w.accepted,
                    "rejected": w.rejected,
                }
                for w in self._workers.values()
            ]

    def heartbeat(self, worker: Worker) -> None:
        """Extend every lease the worker holds."""
        deadline = time.monotonic() + self.lease_seconds
        with self._lock:
            for task_id in worker.leases:
                lease = self._leases.get(task_id)
                if lease is not None:
                    lease.deadline = min(deadline, lease.until)

    # -- runs and tasks -----------------------------------------------------------------------

    def open_run(self) -> RunQueue:
        run = RunQueue()
        with self._lock:
            self._runs.append(run)
        return run

    def close_run(self, run: RunQueue) -> None:
        """The run ended: its waiting tasks go, its leased tasks are cancelled."""
        with self._lock:
            if run in self._runs:
                self._runs.remove(run)
            run.waiting.clear()
            gone = [t for t, lease in self._leases.items() if lease.run is run]
            leases = [self._leases.pop(t) for t in gone]
            for lease in leases:
                lease.worker.leases.discard(lease.task.id)
        for lease in leases:
            lease.worker.send({"type": "cancel", "task_id": lease.task.id})
        self.dispatch()

    def offer(self, run: RunQueue, task: BrowserTask) -> None:
        """Queue ``task`` for a browser and hand it out if a worker has a free slot."""
        with self._lock:
            run.waiting.append((task, time.monotonic()))
        self.dispatch()

    def take_back(self, run: RunQueue, older_than: float) -> list[BrowserTask]:
        """The run's tasks that waited longer than ``older_than`` seconds (no worker took
        them): they leave the queue (the backend runs them on the local pool)."""
        limit = time.monotonic() - older_than
        with self._lock:
            out = [t for t, since in run.waiting if since <= limit]
            if out:
                run.waiting = deque((t, s) for t, s in run.waiting if s > limit)
        return out

    def sub_of(self, worker_id: str) -> str:
        """The token subject of worker ``worker_id`` (connected or gone)."""
        with self._lock:
            return self._subs.get(worker_id, worker_id)

    def banned(self, run: RunQueue, worker_id: str) -> bool:
        """Whether ``run`` banned the subject of worker ``worker_id``."""
        return self.sub_of(worker_id) in run.banned

    def ban(self, run: RunQueue, worker_id: str) -> None:
        """No more of ``run``'s tasks go to any worker of ``worker_id``'s token subject; the
        tasks they hold fail this attempt."""
        with self._lock:
            sub = self._subs.get(worker_id, worker_id)
            run.banned.add(sub)
            workers = [w for w in self._workers.values() if w.sub == sub]
            held = [lease for lease in self._leases.values() if lease.run is run]
            leases = [lease for lease in held if lease.worker.sub == sub]
            for lease in leases:
                self._leases.pop(lease.task.id, None)
                lease.worker.leases.discard(lease.task.id)
        for worker in workers:
            worker.send({"type": "banned"})
        for lease in leases:
            lease.worker.send({"type": "cancel", "task_id": lease.task.id})
            run.events.put(("failed", lease.task, lease.worker.id, "the worker was banned"))
        self.dispatch()

    def dispatch(self) -> None:
        """Hand waiting tasks to workers with free slots, runs in the order they opened."""
        handed: list[tuple[Worker, BrowserTask]] = []
        now = time.monotonic()
        deadline, until = (
            now + min(self.lease_seconds, self.max_task_seconds),
            now + self.max_task_seconds,
        )
        with self._lock:
            for run in self._runs:
                while run.waiting:
                    free = [
                        w
                        for w in self._workers.values()
                        if len(w.leases) < w.concurrency and w.sub not in run.banned
                    ]
                    if not free:
                        break
                    worker = min(free, key=lambda w: len(w.leases) / w.concurrency)
                    task, _ = run.waiting.popleft()
                    self._leases[task.id] = Lease(task, worker, run, deadline, until)
                    worker.leases.add(task.id)
                    handed.append((worker, task))
        for worker, task in handed:
            worker.send(task.message())

    def expire(self) -> None:
        """Leases past their deadline end: their attempt failed (the worker is told)."""
        now = time.monotonic()
        with self._lock:
            late = [lease for lease in self._leases.values() if lease.deadline < now]
            for lease in late:
                self._leases.pop(lease.task.id, None)
                lease.worker.leases.discard(lease.task.id)
        for lease in late:
            lease.worker.send({"type": "cancel", "task_id": lease.task.id})
            reason = (
                f"it held the task {self.max_task_seconds:g} s, the most a task may take"
                if lease.deadline >= lease.until
                else f"its lease of {self.lease_seconds:g} s passed without a heartbeat"
            )
            lease.run.events.put(("failed", lease.task, lease.worker.id, reason))
        if late:
            self.dispatch()

    def lease_of(self, task_id: str, worker_id: str, sub: str) -> BrowserTask | None:
        """The task if it is leased now to worker ``worker_id`` of subject ``sub``."""
        with self._lock:
            lease = self._leases.get(task_id)
            if lease is None or lease.worker.id != worker_id or lease.worker.sub != sub:
                return None
            return lease.task

    # -- results ------------------------------------------------------------------------------

    def _end(self, worker: Worker, task_id: str, attempt: int) -> Lease | None:
        """Remove and return the lease of ``task_id`` held by ``worker`` at ``attempt``."""
        with self._lock:
            lease = self._leases.get(task_id)
            if lease is None or lease.worker is not worker or lease.task.task.attempt != attempt:
                return None
            del self._leases[task_id]
            worker.leases.discard(task_id)
            return lease

    def error(self, worker: Worker, task_id: str, attempt: int, message: str) -> None:
        """The worker says the task failed: this attempt failed."""
        lease = self._end(worker, str(task_id), int(attempt))
        if lease is not None:
            lease.run.events.put(("failed", lease.task, worker.id, f"the worker failed: {message}"))
        self.dispatch()

    def deliver(self, worker: Worker, header: dict[str, Any], data: bytes | None) -> str | None:
        """Check and accept a result; None if accepted, else why it was refused (the attempt
        then failed, unless the task was no longer leased to this worker: then it is stale)."""
        task_id, attempt = str(header.get("task_id")), header.get("attempt")
        lease = self._end(worker, task_id, attempt if isinstance(attempt, int) else -1)
        if lease is None:
            worker.send({"type": "rejected", "task_id": task_id, "reason": "not leased to you"})
            return "not leased to this worker"
        reason, table = self._check(lease.task, data)
        if table is None:
            with self._lock:
                worker.rejected += 1
            worker.send({"type": "rejected", "task_id": task_id, "reason": reason})
            lease.run.events.put(("failed", lease.task, worker.id, f"bad result: {reason}"))
            self.dispatch()
            return reason
        with self._lock:
            worker.accepted += 1
        worker.send({"type": "accepted", "task_id": task_id})
        lease.run.events.put(("result", lease.task, worker.id, table))
        self.dispatch()
        return None

    def _check(self, task: BrowserTask, data: bytes | None) -> tuple[str, pa.Table | None]:
        if data is None:
            return f"declared over the limit of {self.max_result_bytes} bytes", None
        if len(data) > self.max_result_bytes:
            return f"{len(data)} bytes, over the limit of {self.max_result_bytes}", None
        try:
            if _compressed(data):
                return "a compressed Arrow IPC stream (send it uncompressed)", None
            table = pa.ipc.open_stream(data).read_all()
        except (pa.ArrowInvalid, OSError, ValueError, struct.error) as exc:
            return f"not an Arrow IPC stream ({exc})", None
        try:
            table.validate(full=True)
        except pa.ArrowInvalid as exc:
            return f"invalid Arrow data ({exc})", None
        got = [(f.name, f.type) for f in table.schema]
        want = [(f.name, f.type) for f in task.schema]
        if got != want:
            return f"schema {got} where {want} was expected", None
        fewest, most = task.row_bounds()
        if not fewest <= table.num_rows <= most:
            # A padded result (held for verification, outside the driver's cap) or a plain lie.
            return f"{table.num_rows} rows where {fewest} to {most} are possible", None
        return "", table.replace_schema_metadata(None).cast(task.schema)


_RECORD_BATCH, _DICTIONARY_BATCH = 3, 4
"""``MessageHeader`` union types of Arrow's ``Message.fbs``."""


def _compressed(data: bytes) -> bool:
    """Whether a record or dictionary batch of the IPC stream ``data`` has compressed buffers:
    the ``compression`` field of its ``RecordBatch`` header (``Message.fbs``), read from the
    flatbuffer before pyarrow decompresses anything."""
    for message in pa.ipc.MessageReader.open_stream(data):
        if message.type not in ("record batch", "dictionary"):
            continue
        meta = message.metadata.to_pybytes()
        root = struct.unpack_from("<I", meta, 0)[0]
        kind, header = _field(meta, root, 1), _field(meta, root, 2)
        if kind is None or header is None:
            continue
        batch = header + struct.unpack_from("<I", meta, header)[0]
        if meta[kind] == _DICTIONARY_BATCH:  # DictionaryBatch {id, data: RecordBatch, ...}
            inner = _field(meta, batch, 1)
            if inner is None:
                continue
            batch = inner + struct.unpack_from("<I", meta, inner)[0]
        if _field(meta, batch, 3) is not None:  # RecordBatch {length, nodes, buffers, compression}
            return True
    return False


def _field(buf: bytes, table: int, index: int) -> int | None:
    """Where field ``index`` of the flatbuffer table at ``table`` is, or None if absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    slot = 4 + 2 * index
    if slot >= struct.unpack_from("<H", buf, vtable)[0]:
        return None
    offset = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + offset if offset else None
