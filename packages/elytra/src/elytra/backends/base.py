"""The one small interface every backend implements; the retry rule they share lives in
:mod:`elytra.retry` (re-exported here)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from ..retry import describe_error, failure, next_attempt, rebuild_error, retryable
from ..task import Task, TaskResult

__all__ = ["Backend", "describe_error", "failure", "next_attempt", "rebuild_error", "retryable"]


class Backend(Protocol):
    """Runs tasks and yields their results as they finish (in any order).

    A task that fails with a retryable error (a dead worker, a lease past, an unexpected
    exception) is run again, up to ``max_attempts``; then ``run`` raises ``TaskFailedError``
    with the task's id and the remote traceback. Setting ``cancel`` stops running tasks and
    makes ``run`` raise ``JobCancelledError``. ``started`` is called once the backend
    begins these tasks (a shared pool may first let another job finish).
    """

    name: str

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]: ...

    def close(self) -> None: ...
