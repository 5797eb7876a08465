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
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa

from ..browser.compare import same_result
from ..browser.hub import RunQueue, WorkerHub
from ..browser.tasks import BrowserTask, browser_task
from ..errors import JobCancelledError
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
        open_ids = {t.id for t in tasks}  # tasks without an accepted result yet
        held: dict[str, tuple[str, BrowserTask, pa.Table, float]] = {}
        """task id -> (worker, task, rows, seconds): browser results not yet passed on."""
        checking: dict[str, str] = {}  # verify task id -> the worker whose result it checks
        hold = self.verify_fraction > 0
        sent: dict[str, float] = {}
        for task in tasks:
            bt = browser_task(None, task)
            if bt is None:
                self.stats["local"] += 1
                local.submit(task)
            else:
                sent[task.id] = time.monotonic()
                self.hub.offer(run, bt)
        while open_ids or checking:
            if cancel.is_set():
                raise JobCancelledError("the job was cancelled")
            self.hub.expire()
            for bt in self.hub.take_back(run, self.wait_seconds):
                self.stats["fallback"] += 1
                local.submit(bt.task)
            try:
                event = run.events.get(timeout=_POLL)
            except queue.Empty:
                continue
            kind = event[0]
            if kind == "local_error":
                raise event[1]
            if kind == "local":
                task, result = event[1], event[2]
                if task.id in checking:
                    worker_id = checking.pop(task.id)
                    yield from self._checked(run, local, held, worker_id, task, result, open_ids)
                    continue
                open_ids.discard(task.id)
                result.stats.setdefault("worker", "local")
                yield result
                continue
            bt, worker_id = event[1], event[2]
            if kind == "failed":
                self.stats["failed_attempts"] += 1
                if bt.id not in open_ids:
                    continue
                again = bt.retry()
                if again.task.attempt > self.max_attempts:
                    # browsers failed it every time: the trusted pool runs it, with its own
                    # attempts (a browser's fault never fails a job)
                    self.stats["fallback"] += 1
                    local.submit(replace(again.task, attempt=1))
                else:
                    self.hub.offer(run, again)
                continue
            # a result a browser gave and the hub accepted
            table: pa.Table = event[3]
            if bt.id not in open_ids:
                continue
            if self.hub.banned(run, worker_id):
                # the hub accepted it before the ban: the task still needs trusted rows (it
                # was dropped here before, and the job waited for it forever)
                self.stats["local"] += 1
                local.submit(bt.task.retry())
                continue
            self.stats["browser"] += 1
            seconds = time.monotonic() - sent.get(bt.id, time.monotonic())
            open_ids.discard(bt.id)
            if hold:
                held[bt.id] = (worker_id, bt, table, seconds)
                if self._rng.random() < self.verify_fraction:
                    check = replace(
                        bt.task, id=bt.id + _VERIFY, spill_dir=bt.task.spill_dir + _VERIFY
                    )
                    checking[check.id] = worker_id
                    local.submit(check)
            else:
                yield _result(bt, worker_id, table, seconds)
        for worker_id, bt, table, seconds in held.values():
            yield _result(bt, worker_id, table, seconds)

    def _checked(
        self,
        run: RunQueue,
        local: BackgroundRunner,
        held: dict[str, tuple[str, BrowserTask, pa.Table, float]],
        worker_id: str,
        check: Task,
        result: TaskResult,
        open_ids: set[str],
    ) -> Iterator[TaskResult]:
        """A trusted re-run is back: compare, and on a mismatch ban the worker and run again
        every result it gave in this run (the re-run's own rows stand for the checked one)."""
        task_id = check.id.removesuffix(_VERIFY)
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
            open_ids.add(other_id)
            self.stats["local"] += 1
            local.submit(bt.task.retry())


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
