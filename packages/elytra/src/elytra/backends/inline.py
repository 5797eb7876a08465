"""The inline backend: every task in this process, one after another (for debugging)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Sequence

from emsqrt import CancelledError

from ..errors import JobCancelledError
from ..scheduler import Failed, Outcome, Scheduler, Watch
from ..task import Task, TaskResult, execute

__all__ = ["InlineAttempts", "InlineBackend"]


class InlineBackend:
    """Runs each task with :func:`elytra.task.execute` in the calling thread; the
    :class:`~elytra.scheduler.Scheduler` retries and cancels (between attempts)."""

    name = "inline"

    def __init__(self, max_attempts: int = 3) -> None:
        self.max_attempts = max_attempts

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]:
        scheduler = Scheduler(InlineAttempts(cancel), max_attempts=self.max_attempts)
        return scheduler.run(tasks, cancel, started)

    def close(self) -> None:
        pass


class InlineAttempts:
    """One attempt at a time, run by ``poll`` in the calling thread; ``cancel`` stops the
    attempt within a batch of its run (emsqrt checks it in every operator loop)."""

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self.cancel = cancel
        self._next: tuple[int, Task] | None = None
        self._count = 0

    def free(self) -> int:
        return 0 if self._next is not None else 1

    def submit(self, task: Task) -> Hashable:
        self._count += 1
        self._next = (self._count, task)
        return self._count

    def poll(self, timeout: float, watch: Watch) -> list[tuple[Hashable, Outcome]]:
        if self._next is None:
            return []
        (handle, task), self._next = self._next, None
        try:
            return [(handle, execute(task, self.cancel))]
        except CancelledError:
            raise JobCancelledError("the job was cancelled") from None
        except Exception as exc:
            return [(handle, Failed(exc, "this process"))]

    def kill(self, handle: Hashable) -> None:
        self._next = None
