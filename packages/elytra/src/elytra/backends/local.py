"""The local backend: a pool of long-lived worker processes; results come back over strand.

* ``workers`` processes are started once, with the ``spawn`` context (the driver may be
  threaded: it is never forked), and reused by every ``run``; ``close()`` stops them.
* A task goes to a worker as JSON (``Task.to_json``) over a ``multiprocessing`` pipe. Control
  messages (ready, stream, done, errors with their traceback text) are small JSON objects on
  the same pipe; see :mod:`elytra.worker` for the protocol.
* Rows come back over **strand**: one ring per worker per stage, created by the driver and
  reused by that stage's tasks on that worker. **The driver learns a stage's output schema
  from the first result**: a worker whose result finds no ring for its stage (or a ring of
  another schema) asks for one with the result's Arrow schema, and the driver creates it and
  answers (one extra round trip per worker per stage). A result larger than the ring streams
  through it under backpressure: the driver copies each committed block out of the ring, then
  acknowledges it, while the worker writes the next. The copied batches become the
  ``TaskResult`` table as they are (no further concatenation), cast back to the result's exact
  Arrow schema where strand widened a type (int8 -> int32, large_string -> string, ...).
* A result of at most ``inline_bytes`` (1 MiB; Arrow buffer bytes) comes as Arrow IPC
  bytes over the pipe: a ring of a new schema costs the driver about 20 ms to make and the
  worker 10 ms to map, and a small result (a scalar side, a partial aggregate) copied
  through the pipe costs about a millisecond; a larger one streams through strand.
* An empty result sends only its schema. A result strand cannot hold (a type outside strand's
  vocabulary, a string dictionary, a list with null elements) falls back to Arrow IPC stream
  bytes over the pipe for that task; ``stats["transport"]`` says which way a result came
  (``strand``, ``ipc`` or ``empty``), ``stats["transfer_seconds"]`` how long the driver spent
  receiving it (from the worker's "stream" message to its "done"), and ``stats["attempt"]``
  and ``stats["worker_pid"]`` where it ran.
* Rings live until the next ``run`` that does not use their stage, a schema change, the
  worker's death, or ``close()``; ``strand.cleanup_dead("elytra-")`` at start removes rings of
  drivers that died.
* Attempts, leases, retries and cancel belong to :class:`~elytra.scheduler.Scheduler`; the
  pool only starts an attempt on an idle worker, waits on its workers' pipes and sentinels,
  and kills (replaces) a worker.
* Faults: a worker that dies mid-task, or whose task runs past ``lease_seconds`` (it is
  killed), is replaced by a new process, and its task is run again (``attempt + 1``) up to
  ``max_attempts``; then ``run`` raises :func:`~elytra.retry.failure`. A task that
  raises a retryable error is retried the same way. A non-retryable error (bad input, a cap
  too small) fails at once, re-raised as the worker's exception type when it can be rebuilt
  (a ``PlatformError`` subclass built from message and details; the remote traceback is
  attached as ``remote_traceback`` and as a note), else as ``TaskFailedError``. A set
  ``cancel`` kills the workers running tasks (they are replaced) and raises
  ``JobCancelledError``. Each attempt spills into its own directory under the task's
  ``spill_dir``, which the driver removes when the attempt ends, however it ends.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, cast

import pyarrow as pa

import strand

from ..errors import BackendUnavailableError, JobCancelledError
from ..scheduler import Failed, LeasePast, Outcome, Scheduler, Watch
from ..task import Task, TaskResult
from ..worker import decode_schema, main, strand_schema

__all__ = ["LocalPool"]

_RING_PREFIX = "elytra-"
_POLL = 0.05  # seconds between checks of cancel and leases while waiting
_SPARES = 2
"""Rings a worker's slot keeps of stages done with (see ``_Slot.spares``)."""
_START_FAILURES = 3  # workers that die before ready, in a row, before the pool gives up


@dataclass
class _Ring:
    name: str
    segment: strand.Segment
    view: strand.StrandView
    schema: Any  # StrandSchema

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            self.view.close()
        self.segment.unlink()
        with contextlib.suppress(Exception):
            self.segment.close(timeout=1.0)


@dataclass
class _Slot:
    """One worker process and what it is doing."""

    index: int
    proc: BaseProcess
    conn: Connection
    ready: bool = False
    pid: int = 0
    task: Task | None = None
    spill: str = ""
    rings: dict[int, _Ring] = field(default_factory=dict)  # stage -> ring
    spares: list[_Ring] = field(default_factory=list)
    """Rings of stages done with, oldest first, at most ``_SPARES``: a later stage whose rows
    have the same schema writes into one (a ring of 16 MiB cost about 20 ms to make, four of
    them a third of a small TPC-H query run again)."""

    def all_rings(self) -> list[_Ring]:
        return [*self.rings.values(), *self.spares]

    def spare(self, ring: _Ring) -> None:
        """Keep ``ring`` for reuse, dropping the oldest spare past ``_SPARES``."""
        self.spares.append(ring)
        while len(self.spares) > _SPARES:
            self.spares.pop(0).drop()

    def drop_rings(self) -> None:
        for ring in self.all_rings():
            ring.drop()
        self.rings.clear()
        self.spares.clear()


class _Lost(Exception):
    """The worker running a task died or was killed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _shutdown(slots: list[_Slot]) -> None:
    """Stop every worker and unlink every ring (``close()``, and the pool's finalizer)."""
    for slot in slots:
        with contextlib.suppress(Exception):
            slot.conn.send_bytes(b'{"op":"stop"}')
    deadline = time.monotonic() + 2.0
    for slot in slots:
        slot.proc.join(max(0.0, deadline - time.monotonic()))
        if slot.proc.is_alive():
            slot.proc.kill()
            slot.proc.join(2.0)
        with contextlib.suppress(Exception):
            slot.conn.close()
        slot.drop_rings()
        if slot.spill:
            shutil.rmtree(slot.spill, ignore_errors=True)
            slot.spill = ""
    slots.clear()


class LocalPool:
    """Runs tasks on ``workers`` long-lived processes; results over strand rings of
    ``ring_bytes`` heap each (see the module docstring)."""

    name = "local"

    def __init__(
        self,
        workers: int = 2,
        ring_bytes: int = 16 << 20,
        max_attempts: int = 3,
        lease_seconds: float = 600.0,
        inline_bytes: int = 1 << 20,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if ring_bytes < 1 << 16 or ring_bytes % 64:
            raise ValueError(f"ring_bytes must be a multiple of 64 and >= 64 KiB, got {ring_bytes}")
        self.workers = workers
        self.ring_bytes = ring_bytes
        self.inline_bytes = inline_bytes
        """A result of at most these Arrow bytes comes over the pipe, not a ring."""
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # guards the slots' task/pid for running_tasks()
        self._turn = threading.Lock()  # one run at a time; concurrent jobs take turns
        self._runner: int | None = None  # the thread whose run holds ``_turn``
        self._closed = False
        strand.cleanup_dead(_RING_PREFIX)
        self._slots: list[_Slot] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._slots)
        try:
            for i in range(workers):
                self._slots.append(self._spawn(i))
        except BaseException:
            self.close()
            raise

    # -- introspection (tests, benchmarks) --------------------------------------------------

    def worker_pids(self) -> list[int]:
        """The pids of the current worker processes (0 for one still starting)."""
        with self._lock:
            return [s.pid if s.ready else 0 for s in self._slots]

    def running_tasks(self) -> dict[str, int]:
        """Task id -> pid of the worker running it, for the tasks running now."""
        with self._lock:
            return {s.task.id: s.pid for s in self._slots if s.task is not None and s.ready}

    def worker_states(self) -> list[dict[str, Any]]:
        """Each worker as the pool status shows it: ``index``, ``pid``, ``state`` (``busy``
        with the ``task`` it runs, ``idle``, or ``starting`` while its process is not up)."""
        with self._lock:
            out = []
            for s in self._slots:
                up = s.proc.is_alive()
                task = s.task.id if s.task is not None and s.ready else None
                state = "busy" if task else "idle" if up else "starting"
                out.append(
                    {
                        "index": s.index,
                        "pid": s.proc.pid if up else None,
                        "state": state,
                        "task": task,
                    }
                )
            return out

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every worker has started (optional: ``run`` waits as needed)."""
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            while not slot.ready:
                left = deadline - time.monotonic()
                if left <= 0 or not slot.conn.poll(left):
                    raise BackendUnavailableError("the local pool's workers did not start in time")
                self._on_message(slot, _recv(slot.conn), None)

    # -- processes ----------------------------------------------------------------------------

    def _spawn(self, index: int) -> _Slot:
        ours, theirs = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=main, args=(theirs, os.getpid()), name=f"elytra-worker-{index}", daemon=True
        )
        try:
            with _script_not_rerun():
                proc.start()
        except Exception as exc:
            ours.close()
            raise BackendUnavailableError(f"cannot start a local pool worker: {exc}") from exc
        finally:
            theirs.close()
        return _Slot(index, proc, ours)

    def _replace(self, slot: _Slot) -> Task | None:
        """Kill ``slot``'s worker, drop its rings and spill directory, start a new worker in
        its place; returns the task it was running."""
        with self._lock:
            task, slot.task = slot.task, None
        if slot.proc.is_alive():
            slot.proc.kill()
        slot.proc.join(5.0)
        with contextlib.suppress(Exception):
            slot.conn.close()
        slot.drop_rings()
        if slot.spill:
            shutil.rmtree(slot.spill, ignore_errors=True)
        fresh = self._spawn(slot.index)
        with self._lock:
            slot.proc, slot.conn, slot.ready, slot.pid = fresh.proc, fresh.conn, False, 0
            slot.spill = ""
        return task

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]:
        if self._closed:
            raise BackendUnavailableError("this local pool is closed")
        if self._runner == threading.get_ident():
            raise BackendUnavailableError("this local pool is already running a job of this thread")
        # Jobs share the pool (the platform has one): a run waits for its turn, watching cancel.
        while not self._turn.acquire(timeout=_POLL):
            if cancel.is_set():
                raise JobCancelledError("the job was cancelled")
            if self._closed:
                raise BackendUnavailableError("this local pool is closed")
        self._runner = threading.get_ident()
        try:
            if started is not None:
                started()
            stages = {t.stage for t in tasks}
            for slot in self._slots:  # rings of stages this run does not use
                for stage in [s for s in slot.rings if s not in stages]:
                    slot.spare(slot.rings.pop(stage))
            scheduler = Scheduler(
                _PoolAttempts(self),
                max_attempts=self.max_attempts,
                lease_seconds=self.lease_seconds,
                tick=_POLL,
            )
            if len(tasks) == 1:  # a task alone has the pool's cores: as many DuckDB threads
                tasks = [replace(tasks[0], threads=self.workers)]
            yield from scheduler.run(tasks, cancel)
        finally:
            self._runner = None
            self._turn.release()

    def _dispatch(self, slot: _Slot, task: Task) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "-", task.id)[:80]
        spill = os.path.join(
            task.spill_dir, f"elytra-{safe}-a{task.attempt}-{uuid.uuid4().hex[:8]}"
        )
        ring = slot.rings.get(task.stage)
        msg = {
            "op": "task",
            "task": task.to_json(),
            "spill": spill,
            "ring": ring.name if ring else None,
            "rings": [r.name for r in slot.all_rings()],
            "inline": self.inline_bytes,
        }
        with self._lock:
            slot.task, slot.spill = task, spill
        with contextlib.suppress(OSError):  # a dead worker: its sentinel reports it
            _send(slot.conn, msg)

    def _finish(self, slot: _Slot) -> Task:
        task = slot.task
        assert task is not None
        with self._lock:
            slot.task = None
        if slot.spill:
            shutil.rmtree(slot.spill, ignore_errors=True)
            slot.spill = ""
        return task

    def _on_message(
        self, slot: _Slot, msg: dict[str, Any], watch: Watch | None
    ) -> TaskResult | None:
        op = msg["op"]
        if op == "ready":
            with self._lock:
                slot.ready, slot.pid = True, int(msg["pid"])
            return None
        if op == "need_ring":
            assert slot.task is not None
            ring = self._ring(slot, slot.task.stage, decode_schema(msg["schema"]))
            try:
                _send(slot.conn, {"op": "ring", "name": ring.name})
            except OSError:  # it died asking: the scheduler's retry, not a raw BrokenPipe
                raise _Lost("the worker died") from None
            return None
        if op == "stream":
            assert slot.task is not None
            assert watch is not None
            ring = slot.rings[slot.task.stage]
            started = time.perf_counter()
            batches = self._read_stream(slot, ring, watch)
            msg = self._next(slot, watch)
            if msg["op"] == "done":
                table = pa.Table.from_batches(batches, schema=ring.view.schema.to_arrow())
                msg["transfer_seconds"] = time.perf_counter() - started
                return self._result(slot, msg, table)
            return self._on_message(slot, msg, watch)  # ipc fallback or an error
        if op == "done":  # an empty result
            schema = decode_schema(msg["schema"])
            return self._result(slot, msg, schema.empty_table())
        if op == "ipc":
            started = time.perf_counter()
            try:
                data = slot.conn.recv_bytes()
            except (EOFError, OSError):  # it died between the header and the rows
                raise _Lost("the worker died") from None
            table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
            msg["transfer_seconds"] = time.perf_counter() - started
            return self._result(slot, msg, table)
        if op == "error":
            self._finish(slot)
            # the scheduler rules (next_attempt): retried on the next free worker (this one is
            # fine: it raised, it did not die), or the task's own error fails the run
            raise _TaskError(msg)
        raise BackendUnavailableError(f"unexpected message from a local pool worker: {op!r}")

    def _next(self, slot: _Slot, watch: Watch) -> dict[str, Any]:
        """The worker's next control message, watching liveness, lease and cancel."""
        while not slot.conn.poll(_POLL):
            self._check(slot, watch)
        try:
            return _recv(slot.conn)
        except (EOFError, OSError):
            raise _Lost("the worker died") from None

    @staticmethod
    def _check(slot: _Slot, watch: Watch) -> None:
        """Cancel and the lease (the scheduler's ``watch``), and the worker's life."""
        watch.check(slot.index)
        if not slot.proc.is_alive():
            raise _Lost(f"the worker died (exit code {slot.proc.exitcode})")

    def _read_stream(self, slot: _Slot, ring: _Ring, watch: Watch) -> list[pa.RecordBatch]:
        """Copy the stream out of the ring block by block, acknowledging as it goes (the
        zero-copy arrays never outlive the acknowledgement: each is copied first)."""
        view = ring.view
        out: list[pa.RecordBatch] = []
        seen = 0
        while True:
            try:
                count = view.wait_for_commit(seen, timeout=_POLL)
            except strand.StrandTimeoutError:
                self._check(slot, watch)
                continue
            if count > seen:
                out += view.read_batches(seen, count, copy=True)
                view.acknowledge_read(count)
                seen = count
            status = view.status
            if status == "error":
                return out  # aborted (the caller reads why) or the writer died
            if status == "eos" and view.committed_count == seen:
                return out
            if count == seen:
                self._check(slot, watch)

    def _ring(self, slot: _Slot, stage: int, schema: pa.Schema) -> _Ring:
        old = slot.rings.pop(stage, None)
        if old is not None:
            slot.spare(old)
        sschema = strand_schema(schema)
        for i, spare in enumerate(slot.spares):
            if spare.schema == sschema:
                ring = slot.rings[stage] = slot.spares.pop(i)
                return ring
        smap = strand.compute_strand_map(
            sschema, index_capacity=_index_capacity(self.ring_bytes), heap_capacity=self.ring_bytes
        )
        name = f"{_RING_PREFIX}{os.getpid()}-{slot.index}-{stage}-{uuid.uuid4().hex[:8]}"
        segment = strand.create_strand(name, smap)
        try:
            view = strand.StrandView(segment)
        except BaseException:
            segment.unlink()
            segment.close()
            raise
        ring = slot.rings[stage] = _Ring(name, segment, view, sschema)
        return ring

    def _result(self, slot: _Slot, msg: dict[str, Any], table: pa.Table) -> TaskResult:
        schema = decode_schema(msg["schema"])
        if table.schema != schema:
            table = table.cast(schema)
        if not schema.metadata and table.schema.metadata:
            table = table.replace_schema_metadata(None)
        task = self._finish(slot)
        stats = dict(msg.get("stats", {}))
        stats.update(
            attempt=task.attempt,
            worker_pid=slot.pid,
            transport=msg["via"],
            transfer_seconds=msg.get("transfer_seconds", 0.0),
        )
        return TaskResult(task.id, table, float(msg.get("seconds", 0.0)), stats)

    def close(self) -> None:
        """Stop the workers and unlink every ring (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TaskError(Exception):
    """A task raised in its worker; ``msg`` is the worker's ``describe_error``."""

    def __init__(self, msg: dict[str, Any]) -> None:
        super().__init__(msg.get("message", ""))
        self.msg = msg


class _PoolAttempts:
    """The pool's side of the :class:`~elytra.scheduler.Scheduler` for one run: an attempt
    is a task on an idle ready worker (the handle is the worker's slot index). ``poll``
    waits on every worker's pipe and process sentinel at once; a worker that died, or whose
    attempt passed its lease while a result streamed, is replaced and its attempt reported
    ``Failed``; ``kill`` replaces the worker (its rings and spill directory go with it)."""

    def __init__(self, pool: LocalPool) -> None:
        self.pool = pool
        self.start_failures = 0

    def free(self) -> int:
        return sum(1 for s in self.pool._slots if s.ready and s.task is None)

    def submit(self, task: Task) -> Hashable:
        slot = next(s for s in self.pool._slots if s.ready and s.task is None)
        self.pool._dispatch(slot, task)
        return slot.index

    def kill(self, handle: Hashable) -> None:
        slot = self.pool._slots[cast(int, handle)]
        if slot.task is not None:
            self.pool._replace(slot)

    def poll(self, timeout: float, watch: Watch) -> list[tuple[Hashable, Outcome]]:
        pool = self.pool
        waitables: list[Any] = []
        for slot in pool._slots:
            waitables += [slot.conn, slot.proc.sentinel]
        ready = set(wait(waitables, timeout))
        out: list[tuple[Hashable, Outcome]] = []
        for slot in pool._slots:
            try:
                if slot.conn in ready:
                    try:
                        msg = _recv(slot.conn)
                    except (EOFError, OSError):
                        raise _Lost("the worker died") from None
                    result = pool._on_message(slot, msg, watch)
                    if slot.ready:
                        self.start_failures = 0
                    if result is not None:
                        out.append((slot.index, result))
                elif slot.proc.sentinel in ready and not slot.proc.is_alive():
                    raise _Lost(f"the worker died (exit code {slot.proc.exitcode})")
            except _TaskError as error:
                out.append((slot.index, Failed(error.msg, "a local pool worker")))
            except (_Lost, LeasePast) as lost:
                if not slot.ready:
                    self.start_failures += 1
                    if self.start_failures >= _START_FAILURES:
                        raise BackendUnavailableError(
                            f"local pool workers keep dying at start-up: {lost.reason}"
                        ) from None
                if pool._replace(slot) is not None:
                    out.append((slot.index, Failed(lost.reason)))
        return out


def _index_capacity(ring_bytes: int) -> int:
    """Records in flight: about one per 64 heap bytes, a power of two in [1024, 2**18]."""
    want = max(1024, min(1 << 18, ring_bytes // 64))
    return 1 << (want.bit_length() - 1)


def _send(conn: Connection, msg: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(msg, separators=(",", ":")).encode())


def _recv(conn: Connection) -> dict[str, Any]:
    return json.loads(conn.recv_bytes())  # type: ignore[no-any-return]


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _script_not_rerun() -> Iterator[None]:
    """Start a worker without it running the driver's script first.

    ``spawn`` re-runs the ``__main__`` script in each child; a script without an
    ``if __name__ == "__main__":`` guard would then connect and start pools of its own in every
    worker, which die at start-up. Workers need nothing from it: tasks carry their functions by
    value (cloudpickle), so the script is hidden from ``spawn`` while the worker starts.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _MAIN_LOCK:
        saved = {a: getattr(main, a) for a in ("__spec__", "__file__") if hasattr(main, a)}
        main.__spec__ = None
        if "__file__" in saved:
            del main.__file__
        try:
            yield
        finally:
            for attr, value in saved.items():
                setattr(main, attr, value)
