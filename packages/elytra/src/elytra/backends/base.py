"""The one small interface every backend implements, and the retry rule they share."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterator, Sequence
from typing import Protocol

from platform_core import BadInputError, OverBudgetError

from ..errors import TaskFailedError
from ..task import Task, TaskResult

__all__ = ["Backend", "failure", "retryable"]


class Backend(Protocol):
    """Runs tasks and yields their results as they finish (in any order).

    A task that fails with a retryable error (a dead worker, a lease past, an unexpected
    exception) is run again, up to ``max_attempts``; then ``run`` raises ``TaskFailedError``
    with the task's id and the remote traceback. Setting ``cancel`` stops running tasks and
    makes ``run`` raise ``JobCancelledError``.
    """

    name: str

    def run(self, tasks: Sequence[Task], cancel: threading.Event) -> Iterator[TaskResult]: ...

    def close(self) -> None: ...


def retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed: not for bad input or a cap too small (the same
    task fails the same way everywhere)."""
    return not isinstance(exc, BadInputError | OverBudgetError)


def failure(task: Task, exc: BaseException | str, tb: str = "") -> TaskFailedError:
    """The error a job fails with when ``task`` failed for the last time."""
    if isinstance(exc, BaseException):
        tb = tb or "".join(traceback.format_exception(exc))
        what = f"{type(exc).__name__}: {exc}"
    else:
        what = exc
    return TaskFailedError(
        f"task {task.id} failed on attempt {task.attempt}: {what}",
        task_id=task.id,
        attempts=task.attempt,
        remote_traceback=tb,
    )
