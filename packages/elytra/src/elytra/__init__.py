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

from platform_core.expr import col, lit

from .backends import Backend, BrowserBackend, InlineBackend, LocalPool, RayBackend
from .errors import (
    BackendUnavailableError,
    ElytraError,
    JobCancelledError,
    JobTimeoutError,
    PipelineError,
    TaskFailedError,
)
from .jobs import JOBS_RULES, Job, JobRecorder, StoreRecorder
from .pipeline import GroupedPipeline, Pipeline
from .session import Session, connect
from .settings import ElytraSettings
from .task import Task, TaskResult, execute

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
    "GroupedPipeline",
    "InlineBackend",
    "Job",
    "JobCancelledError",
    "JobRecorder",
    "JobTimeoutError",
    "LocalPool",
    "Pipeline",
    "PipelineError",
    "RayBackend",
    "Session",
    "StoreRecorder",
    "Task",
    "TaskFailedError",
    "TaskResult",
    "__version__",
    "col",
    "connect",
    "execute",
    "lit",
]
