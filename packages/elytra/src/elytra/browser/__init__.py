"""Browser workers: tabs that run the pure-JSON subset of elytra's tasks (data, never code).

- :mod:`.tasks`: :class:`BrowserTask` and :func:`browser_task` (which tasks may go to a browser)
- :mod:`.evaluate`: the reference evaluator of a task's steps
- :mod:`.protocol`: the WebSocket protocol's names and the per-worker rate bucket
- :mod:`.hub`: :class:`WorkerHub`: workers, waiting tasks, leases, result checks
- :mod:`.compare`: a browser's result against a trusted re-run
- :mod:`.api`: the worker routes ``/api/workers`` (token minting, chunks, the WebSocket)
- :mod:`.reference`: :class:`ReferenceWorker`, the protocol's reference worker in Python
- :mod:`.plugin`: the ``workers`` plugin that mounts the routes in the gateway

The backend itself is :class:`elytra.backends.browser.BrowserBackend`.
"""

from typing import TYPE_CHECKING

from platform_core.lazy import lazy_exports

if TYPE_CHECKING:  # the same names as below; imported on first use, so that the gateway
    # loading the `workers` plugin for `platform --help` does not load pyarrow
    from .compare import same_result
    from .evaluate import evaluate_steps
    from .hub import WorkerHub
    from .tasks import BROWSER_AGGREGATES, BrowserTask, browser_task

__all__ = [
    "BROWSER_AGGREGATES",
    "BrowserTask",
    "WorkerHub",
    "browser_task",
    "evaluate_steps",
    "same_result",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "same_result": ".compare",
        "evaluate_steps": ".evaluate",
        "WorkerHub": ".hub",
        "BROWSER_AGGREGATES": ".tasks",
        "BrowserTask": ".tasks",
        "browser_task": ".tasks",
    },
)
