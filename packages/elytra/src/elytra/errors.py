"""Elytra's errors, all under ``platform_core.PlatformError`` so the gateway maps them to HTTP.

    ElytraError (PlatformError)                500
    ├── PipelineError (BadInputError)          400  unknown dataset or column, a type error, a bad
    │   │                                           argument: found when the plan is built
    │   └── SQLPlanError                       400  ``session.sql``: a query (or a part of it) that
    │                                               is not planned into stages, and why
    ├── TaskFailedError                        500  a task failed on every attempt (its id, attempt
    │                                               and the user's traceback text)
    ├── JobCancelledError (ConflictError)      409  the job was cancelled
    ├── JobTimeoutError                        408  the job ran past its timeout
    ├── ResultGoneError                        410  a finished job's result is no longer stored
    │                                               (it expired, or was deleted)
    ├── ResultTooLargeError (OverBudgetError)  413  a result past ELYTRA_MAX_RESULT_BYTES or
    │                                               its owner's ELYTRA_RESULT_QUOTA_BYTES
    ├── TooManyJobsError (OverBudgetError)     429  a user's running-job limit
    ├── BackendUnavailableError (UnavailableError) 503  the pool or Ray cannot be reached
    │   └── ExchangeLostError                  503  an exchange's partitions were lost with a
    │                                               Ray node (the job runs again once first)
    └── SQLRunFailedError (UnavailableError)   503  an SQL query's run failed and the lake's
                                                    planner cannot rerun it within its bound
                                                    (that planner gathers in one process)

emsqrt's errors (``CapTooSmallError`` naming a cap that works, ``PlanError``) pass through as
they are: they already say what to do.
"""

from __future__ import annotations

from platform_core import (
    BadInputError,
    ConflictError,
    OverBudgetError,
    PlatformError,
    UnavailableError,
)

__all__ = [
    "BackendUnavailableError",
    "ElytraError",
    "ExchangeLostError",
    "JobCancelledError",
    "JobTimeoutError",
    "NativeDeclinedError",
    "PipelineError",
    "ResultGoneError",
    "ResultTooLargeError",
    "SQLPlanError",
    "SQLRunFailedError",
    "TaskFailedError",
    "TooManyJobsError",
]


class ElytraError(PlatformError):
    """Root of Elytra's errors."""


class PipelineError(ElytraError, BadInputError):
    """The pipeline cannot be planned: unknown dataset or column, a type error, a bad argument."""


class TaskFailedError(ElytraError):
    """A task failed on its last attempt; ``task_id``, ``attempts`` and ``remote_traceback``."""

    def __init__(
        self, message: str, *, task_id: str = "", attempts: int = 0, remote_traceback: str = ""
    ) -> None:
        super().__init__(message, task_id=task_id, attempts=attempts)
        self.task_id = task_id
        self.attempts = attempts
        self.remote_traceback = remote_traceback


class JobCancelledError(ElytraError, ConflictError):
    """The job was cancelled before it finished."""


class JobTimeoutError(ElytraError):
    """The job ran past its timeout; its running tasks were stopped."""

    status = 408
    kind = "timeout"


class BackendUnavailableError(ElytraError, UnavailableError):
    """The backend (local pool, Ray) cannot be started or reached."""


class ExchangeLostError(BackendUnavailableError):
    """An exchange's partitions (Ray objects) were lost with the Ray node that held them: the
    driver runs the job again once, then it fails (submit it again)."""


class SQLRunFailedError(ElytraError, UnavailableError):
    """An SQL query's run failed (a task on every attempt, a node lost twice) and the lake's
    planner could not answer it instead within a quarter of the driver's cap: that planner
    gathers the query's rows into the coordinator's one process (its columns' files were
    already bigger, or the rerun gathered past the bound). The message names the failure,
    the sizes, and whether a retry can help."""


class ResultGoneError(ElytraError):
    """A finished job's result is no longer stored (it expired, or was deleted)."""

    status = 410
    kind = "gone"


class ResultTooLargeError(ElytraError, OverBudgetError):
    """A job's result passed the limit per job or its owner's quota of stored results; the
    message names the limit and says how to write to a dataset instead."""


class TooManyJobsError(ElytraError, OverBudgetError):
    """A user holds their limit of running jobs."""

    status = 429


class SQLPlanError(PipelineError):
    """``session.sql``: a query that does not parse, or a construct not yet planned into
    stages (the message names it); nothing ran."""


class NativeDeclinedError(ElytraError, BadInputError):
    """A query run before it was planned (``nativequery``) that DuckDB declined in its task
    (out of the task's cap before a row went out, a text it refuses): the same on every
    attempt, so never retried; the SQL route plans the query and runs that instead."""
