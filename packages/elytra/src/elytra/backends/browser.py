"""The browser backend: browser tabs run the pure-JSON tasks, the local pool everything else.

``BrowserBackend(local, hub, ...)`` implements :class:`~elytra.backends.base.Backend`:

* Each task :func:`~elytra.browser.browser_task` accepts is offered to the hub's browser
  workers; every other task (a join, a Python function, a sort, ...) runs on ``local`` (the
  trusted pool). A browser task no worker takes within ``wait_seconds`` runs on ``local``
  too, so a job finishes with zero browsers connected.
* An attempt on a browser ends as failed when its lease passes without a heartbeat, its
  worker disconnects or says it failed, or its result is refused (too large, not Arrow, not
  the expected schema). The task is then offered again with ``attempt + 1``; after
  ``max_attempts`` browser attempts it runs on ``local`` (a browser's fault never fails a
  job; a task failing on the local pool does, with the local pool's retry rule).
* Trust: each accepted browser result is, with probability ``verify_fraction``, run again
  on ``local`` and compared (:func:`~elytra.browser.compare.same_result`). A mismatch bans
  the worker's token subject (every connection of it) for this run and every result given
  under that subject in this run is run again on ``local``.
  So that no result can be taken back after the merge has it, browser results are held
  until the run's tasks and checks are all done when ``verify_fraction > 0`` (and passed on
  at once when it is 0).
* Cancel: leases are cancelled (workers are told), ``JobCancelledError`` is raised.
* The run is :class:`~elytra.scheduler.Scheduler`'s (pending and running tasks, cancel); one
  scheduler attempt is a task in this backend until it has rows, and the browser attempts
  and the fall back above happen inside it (the browser's rule, not ``next_attempt``).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import replace
from typing import Any, cast

import pyarrow as pa

from ..browser.compare import same_result
from ..browser.hub import RunQueue, WorkerHub
from ..browser.tasks import BrowserTask, browser_task
from ..scheduler import Outcome, Scheduler, Watch
from ..task import Task, TaskResult
from .base import Backend
from .runner import BackgroundRunner

__all__ = ["BrowserBackend"]

_POLL = 0.05
_VERIFY = "-verify"


class BrowserBackend:
    """Browser workers for browser tasks, ``local`` for the rest (see the module docstring)."""

    name = "browser"

    def __init__(
        self,
        local: Backend,
        hub: WorkerHub | None = None,
        *,
        max_attempts: int = 3,
        wait_seconds: float = 2.0,
        verify_fraction: float = 0.1,
    ) -> None:
        if not 0.0 <= verify_fraction <= 1.0:
            raise ValueError(f"verify_fraction is between 0 and 1, got {verify_fraction}")
        self.local = local
        self.hub = hub or WorkerHub()
        self.max_attempts = max_attempts
        self.wait_seconds = wait_seconds
        self.verify_fraction = verify_fraction
        self._rng = random.SystemRandom()
        self.stats: dict[str, int] = {
            "browser": 0,
            "local": 0,
            "fallback": 0,
            "failed_attempts": 0,
            "verified": 0,
            "banned": 0,
        }

    def worker_states(self) -> list[dict[str, Any]]:
        """The local pool's workers (``GET /api/jobs/pool``); browsers: ``hub.workers()``."""
        states = getattr(self.local, "worker_states", None)
        return list(states()) if callable(states) else []

    def close(self) -> None:
        self.local.close()

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]:
        if started is not None:
            started()
        run = self.hub.open_run()
        local = BackgroundRunner(self.local, cancel, run.events, "elytra-browser-local")
        try:
            yield from self._run(tasks, cancel, run, local)
        finally:
            self.hub.close_run(run)
            local.stop()

    def _run(
        self, tasks: Sequence[Task], cancel: threading.Event, run: RunQueue, local: BackgroundRunner
    ) -> Iterator[TaskResult]:
        """The scheduler runs the tasks (and the checks and take-backs added on the way); here
        browser results are held, checked and passed on (see the module docstring)."""
        attempts = _BrowserAttempts(self, run, local)
        scheduler = Scheduler(attempts, max_attempts=self.max_attempts, tick=_POLL)
        held: dict[str, tuple[str, BrowserTask, pa.Table, float]] = {}
        """task id -> (worker, task, rows, seconds): browser results not yet passed on."""
        checking: dict[str, str] = {}  # verify task id -> the worker whose result it checks
        hold = self.verify_fraction > 0
        for result in scheduler.run(tasks, cancel):
            if result.task_id in checking:
                worker_id = checking.pop(result.task_id)
                yield from self._checked(run, scheduler, attempts, held, worker_id, result)
                continue
            given = attempts.given.pop(result.task_id, None)
            if given is None:  # rows from the local pool
                result.stats.setdefault("worker", "local")
                yield result
                continue
            worker_id, bt, table, seconds = given
            if not hold:
                yield result
                continue
            held[bt.id] = given
            if self._rng.random() < self.verify_fraction:
                check = replace(bt.task, id=bt.id + _VERIFY, spill_dir=bt.task.spill_dir + _VERIFY)
                checking[check.id] = worker_id
                scheduler.add(check)
        for worker_id, bt, table, seconds in held.values():
            yield _result(bt, worker_id, table, seconds)

    def _checked(
        self,
        run: RunQueue,
        scheduler: Scheduler,
        attempts: _BrowserAttempts,
        held: dict[str, tuple[str, BrowserTask, pa.Table, float]],
        worker_id: str,
        result: TaskResult,
    ) -> Iterator[TaskResult]:
        """A trusted re-run is back: compare, and on a mismatch ban the worker and run again
        every result it gave in this run (the re-run's own rows stand for the checked one)."""
        task_id = result.task_id.removesuffix(_VERIFY)
        self.stats["verified"] += 1
        entry = held.get(task_id)
        if entry is None or self.hub.banned(run, worker_id):
            return
        if same_result(entry[2], result.table) is None:
            return
        self.stats["banned"] += 1
        self.hub.ban(run, worker_id)
        for other_id, (wid, bt, _, _) in list(held.items()):
            if self.hub.sub_of(wid) != self.hub.sub_of(worker_id):
                continue
            del held[other_id]
            if other_id == task_id:  # the trusted rows are this task's result
                result.stats["worker"] = "local"
                yield replace(result, task_id=task_id)
                continue
            attempts.here.add(other_id)
            scheduler.add(bt.task.retry())


class _BrowserAttempts:
    """The browser backend's side of the :class:`~elytra.scheduler.Scheduler` for one run
    (the handle is the task id). One scheduler attempt is the task in this backend until it
    has rows: browser attempts, their failures and the fall back to ``local`` happen inside it
    (a browser's fault never fails the job, so it is not the scheduler's retry rule); the
    hub's leases and heartbeats bound each browser attempt. ``given`` keeps each browser
    result's worker for the checks. ``kill`` has nothing to do per task: closing the run
    cancels its leases (the workers are told) and ``local`` sees cancel."""

    def __init__(self, backend: BrowserBackend, run: RunQueue, local: BackgroundRunner) -> None:
        self.backend, self.run, self.local = backend, run, local
        self.hub, self.stats = backend.hub, backend.stats
        self.open: set[str] = set()  # tasks without rows yet
        self.here: set[str] = set()  # tasks taken back from a banned worker: ``local`` only
        self.sent: dict[str, float] = {}
        self.given: dict[str, tuple[str, BrowserTask, pa.Table, float]] = {}

    def free(self) -> int:
        return 1 << 30  # the hub and ``local`` queue what they cannot start

    def submit(self, task: Task) -> Hashable:
        self.open.add(task.id)
        if task.id.endswith(_VERIFY):  # a check runs on the trusted pool
            self.local.submit(task)
            return task.id
        bt = browser_task(None, task) if task.id not in self.here else None
        if bt is None:
            self.stats["local"] += 1
            self.local.submit(task)
        else:
            self.sent[task.id] = time.monotonic()
            self.hub.offer(self.run, bt)
        return task.id

    def kill(self, handle: Hashable) -> None:
        self.open.discard(cast(str, handle))

    def poll(self, timeout: float, watch: Watch) -> list[tuple[Hashable, Outcome]]:
        hub, run, local, stats = self.hub, self.run, self.local, self.stats
        hub.expire()
        for bt in hub.take_back(run, self.backend.wait_seconds):
            stats["fallback"] += 1
            local.submit(bt.task)
        try:
            event = run.events.get(timeout=timeout)
        except queue.Empty:
            return []
        kind = event[0]
        if kind == "local_error":
            raise event[1]
        if kind == "local":
            task, result = event[1], event[2]
            return self._done(task.id, result)
        bt, worker_id = event[1], event[2]
        if kind == "failed":
            stats["failed_attempts"] += 1
            if bt.id not in self.open:
                return []
            again = bt.retry()
            if again.task.attempt > self.backend.max_attempts:
                # browsers failed it every time: the trusted pool runs it, with its own
                # attempts (a browser's fault never fails a job)
                stats["fallback"] += 1
                local.submit(replace(again.task, attempt=1))
            else:
                hub.offer(run, again)
            return []
        # a result a browser gave and the hub accepted
        table: pa.Table = event[3]
        if bt.id not in self.open:
            return []
        if hub.banned(run, worker_id):
            # the hub accepted it before the ban: the task still needs trusted rows (it
            # was dropped here before, and the job waited for it forever)
            stats["local"] += 1
            local.submit(bt.task.retry())
            return []
        stats["browser"] += 1
        seconds = time.monotonic() - self.sent.get(bt.id, time.monotonic())
        self.given[bt.id] = (worker_id, bt, table, seconds)
        return self._done(bt.id, _result(bt, worker_id, table, seconds))

    def _done(self, task_id: str, result: TaskResult) -> list[tuple[Hashable, Outcome]]:
        if task_id not in self.open:
            return []
        self.open.discard(task_id)
        return [(task_id, result)]


def _result(bt: BrowserTask, worker_id: str, table: pa.Table, seconds: float) -> TaskResult:
    return TaskResult(
        bt.id,
        table,
        seconds,
        {
            "rows_out": table.num_rows,
            "bytes_out": table.nbytes,
            "bytes_in": bt.task.bytes_in,
            "attempt": bt.task.attempt,
            "worker": f"browser:{worker_id}",
            "transport": "browser",
        },
    )
