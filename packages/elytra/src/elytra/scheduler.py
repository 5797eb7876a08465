"""The scheduler: one loop over a run's attempts that every backend shares (issue 33 item 7).

A backend runs *one attempt* of a task at a time per handle and nothing more; the scheduler
owns the rest — which tasks wait and which run, each attempt's lease (deadline), retries (the
one rule, :func:`~elytra.backends.base.next_attempt`), cancel, and cleanup of what still runs
when the run ends early (a failure, a cancel, a caller that stops iterating).

The protocol a backend implements (:class:`Attempts`)::

    free() -> int                           # attempts it can start now (0: wait for a poll)
    submit(task) -> handle                  # start one attempt; the handle names it
    poll(timeout, watch) -> [(handle, outcome)]   # block up to timeout; finished attempts
    kill(handle)                            # stop an attempt and clean up after it

An outcome is the attempt's :class:`~elytra.task.TaskResult`, :class:`Failed` (the attempt
failed: an exception, a worker's ``describe_error`` JSON, or a reason such as a dead worker;
``next_attempt`` decides), or :class:`Moved` (the attempt never ran: submit the same attempt
again). An exception out of ``poll`` fails the run. A backend whose ``poll`` blocks inside one
attempt (the local pool copying a result out of its ring) calls ``watch.check(handle)`` now
and then: it raises ``JobCancelledError`` on cancel and :class:`LeasePast` when the attempt's
lease is over (the backend then kills the attempt and reports it ``Failed``).

Waiting is ``poll``'s blocking wait (pipes, sentinels, ``ray.wait``, a queue) bounded by the
next lease deadline and by ``tick`` (how soon a cancel is seen); no sleeps, nothing per task.

Example, a backend that runs each attempt in this thread (the inline backend)::

    class Inline:
        def __init__(self): self.todo = {}
        def free(self): return 0 if self.todo else 1
        def submit(self, task): self.todo[task.id] = task; return task.id
        def poll(self, timeout, watch):
            handle, task = self.todo.popitem()
            try:
                return [(handle, execute(task))]
            except Exception as exc:
                return [(handle, Failed(exc, "this process"))]
        def kill(self, handle): self.todo.pop(handle, None)

    yield from Scheduler(Inline(), max_attempts=3).run(tasks, cancel)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import JobCancelledError
from .retry import next_attempt
from .task import Task, TaskResult

__all__ = ["Attempts", "Failed", "LeasePast", "Moved", "Outcome", "Scheduler", "Watch"]


@dataclass(frozen=True)
class Failed:
    """An attempt failed: ``error`` as ``next_attempt`` takes it (an exception, a worker's
    ``describe_error`` dict, or a reason); ``where`` names the worker, ``tb`` a traceback."""

    error: BaseException | dict[str, Any] | str
    where: str = "a worker"
    tb: str = ""


@dataclass(frozen=True)
class Moved:
    """The attempt did not run (its worker refused it at once): submit it again, uncounted."""

    reason: str = ""


Outcome = TaskResult | Failed | Moved


class LeasePast(Exception):
    """Raised by ``Watch.check``: the attempt's lease is over; ``reason`` says so."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Watch(Protocol):
    """What a backend may ask the scheduler while it blocks inside one attempt."""

    def check(self, handle: Hashable) -> None: ...


class Attempts(Protocol):
    """A backend's side of the scheduler: run single attempts (see the module docstring)."""

    def free(self) -> int: ...

    def submit(self, task: Task) -> Hashable: ...

    def poll(self, timeout: float, watch: Watch) -> list[tuple[Hashable, Outcome]]: ...

    def kill(self, handle: Hashable) -> None: ...


@dataclass
class _Running:
    task: Task
    deadline: float


_NEVER = float("inf")


class Scheduler:
    """Runs a run's tasks over ``attempts``: up to ``max_attempts`` attempts each (the retry
    rule of ``next_attempt``), each killed and run again once it is past ``lease_seconds``
    (None: the backend keeps its own lease, e.g. a peer's connection), every attempt killed
    on cancel or an early end. ``tick`` bounds a wait so that a cancel is seen within it.

    A scheduler runs one run at a time (backends make one per ``run``).
    ``on_event(kind, task)``, if given, is told ``"submit"``, ``"done"``, ``"retry"`` (with
    the next attempt) and ``"lease"`` (an attempt killed for its lease) as they happen."""

    def __init__(
        self,
        attempts: Attempts,
        *,
        max_attempts: int,
        lease_seconds: float | None = None,
        tick: float = 0.05,
        on_event: Callable[[str, Task], None] | None = None,
    ) -> None:
        self.attempts = attempts
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.tick = tick
        self.on_event = on_event
        self._running: dict[Hashable, _Running] = {}
        self._pending: deque[Task] = deque()
        self._cancel: threading.Event | None = None

    def add(self, task: Task) -> None:
        """Run one more task in the run under way (called while ``run`` is suspended at a
        result: a verification re-run, a result taken back); its result comes like the rest."""
        self._pending.append(task)

    # -- the watch a blocking poll uses ---------------------------------------------------------

    def check(self, handle: Hashable) -> None:
        """Raise ``JobCancelledError`` on cancel, ``LeasePast`` if ``handle``'s lease is over."""
        if self._cancel is not None and self._cancel.is_set():
            raise JobCancelledError("the job was cancelled")
        running = self._running.get(handle)
        if running is not None and time.monotonic() > running.deadline:
            raise LeasePast(self._lease_reason())

    def _lease_reason(self) -> str:
        return f"the task ran past its lease of {self.lease_seconds} seconds"

    # -- the loop -------------------------------------------------------------------------------

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Generator[TaskResult, None, None]:
        """Each task's result, in the order they finish; raises what the run fails with."""
        attempts, running, tell = self.attempts, self._running, self.on_event
        pending = self._pending
        pending.clear()
        pending.extend(tasks)
        lease = self.lease_seconds
        self._cancel = cancel
        running.clear()
        finished = False
        try:
            if started is not None:
                started()
            while pending or running:
                if cancel.is_set():
                    raise JobCancelledError("the job was cancelled")
                free = attempts.free() if pending else 0
                while pending and free > 0:
                    task = pending.popleft()
                    handle = attempts.submit(task)
                    deadline = time.monotonic() + lease if lease is not None else _NEVER
                    running[handle] = _Running(task, deadline)
                    free -= 1
                    if tell is not None:
                        tell("submit", task)
                timeout = self.tick
                if lease is not None and running:
                    now = time.monotonic()
                    timeout = min(timeout, min(r.deadline for r in running.values()) - now)
                for handle, outcome in attempts.poll(max(0.0, timeout), self):
                    one = running.pop(handle, None)
                    if one is None:  # killed already (its lease, a cancel): a late word
                        continue
                    if isinstance(outcome, TaskResult):
                        if tell is not None:
                            tell("done", one.task)
                        yield outcome
                    elif isinstance(outcome, Moved):
                        pending.appendleft(one.task)
                    else:
                        self._retry(pending, one.task, outcome)
                if lease is not None and running:
                    now = time.monotonic()
                    for handle in [h for h, r in running.items() if now > r.deadline]:
                        task = running.pop(handle).task
                        attempts.kill(handle)
                        if tell is not None:
                            tell("lease", task)
                        self._retry(pending, task, Failed(self._lease_reason()))
            finished = True
        finally:
            try:
                if not finished:  # cancelled, failed, or the caller stopped iterating
                    for handle in list(running):
                        attempts.kill(handle)
            finally:
                running.clear()
                pending.clear()
                self._cancel = None

    def _retry(self, pending: deque[Task], task: Task, failed: Failed) -> None:
        """Queue the next attempt first in line, or raise what the run fails with."""
        again = next_attempt(task, failed.error, self.max_attempts, failed.where, failed.tb)
        if self.on_event is not None:
            self.on_event("retry", again)
        pending.appendleft(again)
