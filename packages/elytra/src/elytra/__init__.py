"""Elytra: fluent pipelines over lake datasets, cut into per-chunk emsqrt tasks.

import elytra

s = elytra.connect()  # embedded: this process, a local worker pool, PLATFORM_HOME
top = (
    s.dataset("sales")
    .filter("amount > 1000")
    .group_by("uid")
    .agg("sum(amount) AS total", "count(*) AS n")
    .top_k(10, "total DESC")
    .collect()
)
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from platform_core.lazy import lazy_exports

from .errors import (
    BackendUnavailableError,
    ElytraError,
    ExchangeLostError,
    JobCancelledError,
    JobTimeoutError,
    NativeDeclinedError,
    PipelineError,
    ResultGoneError,
    ResultTooLargeError,
    SQLPlanError,
    SQLRunFailedError,
    TaskFailedError,
)

if TYPE_CHECKING:  # the same names as _EXPORTS, for type checkers and readers
    from platform_core.expr import col, lit

    from .backends import Backend, BrowserBackend, InlineBackend, LocalPool, RayBackend
    from .backends.raynodes import ray_node_marks
    from .jobs import JOBS_RULES, Job, JobRecorder, StoreRecorder
    from .pipeline import GroupedPipeline, Pipeline
    from .resultstore import ResultStore, StoredResult
    from .session import Session, connect
    from .settings import ElytraSettings
    from .task import Task, TaskResult, execute

_EXPORTS = {
    "col": "platform_core.expr",  # the expression builders load pyarrow: on first use only
    "lit": "platform_core.expr",
    "Backend": ".backends",
    "BrowserBackend": ".backends",
    "InlineBackend": ".backends",
    "LocalPool": ".backends",
    "RayBackend": ".backends",
    "ray_node_marks": ".backends.raynodes",
    "JOBS_RULES": ".jobs",
    "Job": ".jobs",
    "JobRecorder": ".jobs",
    "StoreRecorder": ".jobs",
    "GroupedPipeline": ".pipeline",
    "Pipeline": ".pipeline",
    "ResultStore": ".resultstore",
    "StoredResult": ".resultstore",
    "Session": ".session",
    "connect": ".session",
    "ElytraSettings": ".settings",
    "Task": ".task",
    "TaskResult": ".task",
    "execute": ".task",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

try:
    __version__ = version("platform-elytra")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "JOBS_RULES",
    "Backend",
    "BackendUnavailableError",
    "BrowserBackend",
    "ElytraError",
    "ElytraSettings",
    "ExchangeLostError",
    "GroupedPipeline",
    "InlineBackend",
    "Job",
    "JobCancelledError",
    "JobRecorder",
    "JobTimeoutError",
    "LocalPool",
    "NativeDeclinedError",
    "Pipeline",
    "PipelineError",
    "RayBackend",
    "ResultGoneError",
    "ResultStore",
    "ResultTooLargeError",
    "SQLPlanError",
    "SQLRunFailedError",
    "Session",
    "StoreRecorder",
    "StoredResult",
    "Task",
    "TaskFailedError",
    "TaskResult",
    "__version__",
    "col",
    "connect",
    "execute",
    "lit",
    "ray_node_marks",
]
