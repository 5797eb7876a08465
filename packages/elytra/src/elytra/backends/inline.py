"""The inline backend: every task in this process, one after another (for debugging)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from ..errors import JobCancelledError
from ..task import Task, TaskResult, execute
from .base import next_attempt

__all__ = ["InlineBackend"]


class InlineBackend:
    """Runs each task with :func:`elytra.task.execute` in the calling thread."""

    name = "inline"

    def __init__(self, max_attempts: int = 3) -> None:
        self.max_attempts = max_attempts

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]:
        if started is not None:
            started()
        for task in tasks:
            while True:
                if cancel.is_set():
                    raise JobCancelledError("the job was cancelled")
                try:
                    yield execute(task)
                    break
                except Exception as exc:
                    task = next_attempt(task, exc, self.max_attempts, "this process")

    def close(self) -> None:
        pass
