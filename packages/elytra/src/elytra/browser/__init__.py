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
