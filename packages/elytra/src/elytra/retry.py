"""The retry rule, in one place for every backend and the scheduler: which failed attempt
runs again, and what a run fails with otherwise."""

from __future__ import annotations

import importlib
import json
import traceback
from typing import Any

import pyarrow as pa

from platform_core import BadInputError, OverBudgetError, PlatformError

from .errors import TaskFailedError
from .task import Task

__all__ = ["describe_error", "failure", "next_attempt", "rebuild_error", "retryable"]


_SAME_EVERY_TIME = (
    BadInputError,
    OverBudgetError,
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    TypeError,
)
"""Errors the same task meets on every attempt: bad input, a cap too small, Arrow refusing a
value or a type (a cast out of range, a kernel missing for a type), a function called wrong."""


def retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed: not for ``_SAME_EVERY_TIME``, nor an error caused
    by one (a user function's ArrowInvalid); a dead worker, an I/O error or an unexpected
    exception may go away."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _SAME_EVERY_TIME):
            return False
        seen = seen.__cause__
    return True


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


def next_attempt(
    task: Task,
    error: BaseException | dict[str, Any] | str,
    max_attempts: int,
    where: str = "a worker",
    tb: str = "",
) -> Task:
    """The retry rule, in one place for every backend: the next attempt of ``task`` after
    ``error``, or raise what the job fails with.

    ``error`` is the exception an attempt raised in this process, a task's error as a worker
    described it (``describe_error``: its ``retryable`` says), or a reason the attempt was
    lost (a dead worker, a lease past: always retryable). An error the same task meets on
    every attempt (``retryable``) fails the job at once: a platform error as itself (rebuilt
    from a worker's description, ``where`` naming the worker), anything else as
    ``TaskFailedError``. Otherwise the task runs again until ``max_attempts`` attempts were
    spent; then ``failure`` with the last error and its traceback (``tb`` for a reason)."""
    if isinstance(error, dict):
        if not error.get("retryable", True):
            raise rebuild_error(error, task, where)
        tb = error.get("traceback", "")
        error = f"{error['type']}: {error['message']}"
    elif isinstance(error, BaseException) and not retryable(error):
        if isinstance(error, PlatformError):
            raise error
        raise failure(task, error) from error
    if task.attempt >= max_attempts:
        if isinstance(error, BaseException):
            raise failure(task, error) from error
        raise failure(task, error, tb)
    return task.retry()


def describe_error(exc: BaseException) -> dict[str, Any]:
    """A task's exception as JSON, for the driver (``rebuild_error`` turns it back)."""
    details: dict[str, Any] = {}
    if isinstance(exc, PlatformError):
        try:
            details = json.loads(json.dumps(exc.details))
        except (TypeError, ValueError):
            details = {}
    return {
        "module": type(exc).__module__,
        "type": type(exc).__qualname__,
        "message": exc.message if isinstance(exc, PlatformError) else str(exc),
        "details": details,
        "traceback": "".join(traceback.format_exception(exc)),
        "retryable": retryable(exc),
    }


def rebuild_error(msg: dict[str, Any], task: Task, where: str) -> Exception:
    """A task's non-retryable error as its own type when it can be rebuilt, else
    ``TaskFailedError``; the remote traceback rides along either way."""
    tb = msg.get("traceback", "")
    try:
        cls: Any = importlib.import_module(msg["module"])
        for part in msg["type"].split("."):
            cls = getattr(cls, part)
        if isinstance(cls, type) and issubclass(cls, PlatformError):
            exc: Exception = cls(msg["message"], **msg.get("details", {}))
            exc.remote_traceback = tb  # type: ignore[attr-defined]
            exc.add_note(f"in task {task.id} (attempt {task.attempt}) on {where}:\n{tb}")
            return exc
    except Exception:  # not rebuildable: report it as a task failure
        pass
    return failure(task, f"{msg['type']}: {msg['message']}", tb)
