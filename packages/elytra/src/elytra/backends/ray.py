"""The Ray backend: each task a Ray remote function running the same ``execute`` code.

``RayBackend()`` starts Ray on this machine (``ray.init()``) unless this process already has
it; ``address="auto"``, ``"host:port"`` or ``"ray://host:port"`` joins a cluster. An address
nobody answers on fails within ``connect_timeout`` seconds (its port is probed before Ray is
asked), never hangs. Results travel as Arrow tables
through Ray's object store. A worker that dies is retried by Ray (``max_retries``); an error
the task raises comes back as data, so retryable ones are resubmitted here with the next
attempt number and the others are raised as their own type, as on every backend.

A Ray this backend starts runs its workers at the scheduling priority of the local pool's
(``worker_niceness`` 0; Ray's own default is 15, which leaves the tasks little CPU on a
machine with other work); a cluster it joins keeps its own setting.

Placement: a task reads its chunks by path on the driver's machine (the driver fetches the
chunks this node lacks from a replica first), so every task is pinned to the Ray node of the
driver (``NodeAffinitySchedulingStrategy``, not soft): on a cluster, a task placed on another
machine would not find its files. Spreading tasks to the lake nodes that hold their chunks is
the multi-node platform's work.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from .._ray import import_ray, ray_init_hint
from ..errors import BackendUnavailableError
from ..scheduler import Failed, Outcome, Scheduler, Watch
from ..task import Task, TaskResult, execute
from .base import describe_error, failure

__all__ = ["RayBackend"]


def _run(text: str) -> dict[str, Any]:
    """The remote side: a task's result, or its error as data (never a RayTaskError)."""
    task = Task.from_json(text)
    try:
        result = execute(task)
    except Exception as exc:
        return {"ok": False, "error": describe_error(exc)}
    return {"ok": True, "table": result.table, "seconds": result.seconds, "stats": result.stats}


def _probe(address: str, timeout: float) -> None:
    """Fail fast when nothing listens at ``address`` (``host:port`` or ``ray://host:port``)."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    host, port = parts.hostname, parts.port
    if host is None or port is None:
        raise BackendUnavailableError(
            f"Ray address {address!r} is not host:port, ray://host:port or 'auto'"
        )
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            pass
    except OSError as exc:
        raise BackendUnavailableError(
            f"no Ray cluster answers at {address} ({exc}); start one (`ray start --head`) or "
            "leave the address out to run Ray on this machine"
        ) from None


class RayBackend:
    """Tasks as Ray remote functions; see the module docstring."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        max_attempts: int = 3,
        connect_timeout: float = 15.0,
        num_cpus: int | None = None,
        object_store_memory: int = 256 << 20,
    ) -> None:
        ray = import_ray()  # without the [ray] extra, or out of range: one clear error

        self.max_attempts = max_attempts
        self._started = False
        if address not in (None, "auto", "local"):
            _probe(address, connect_timeout)  # also when Ray runs here: say so, do not ignore it
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "ignore_reinit_error": True,
            }
            if address is None or address == "local":
                kwargs |= {
                    "num_cpus": num_cpus,
                    "object_store_memory": object_store_memory,
                    # Ray starts its workers at nice 15 (its ``worker_niceness``): on a shared
                    # machine the tasks then get a sliver of the cores the local pool's
                    # workers (nice 0) get, 2-3x its wall time for the same CPU seconds
                    "_system_config": {"worker_niceness": 0},
                }
            else:
                kwargs["address"] = address
            self._init(ray, kwargs, connect_timeout)
            self._started = True
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.node_id = ray.get_runtime_context().get_node_id()
        self._remote = ray.remote(max_retries=max(0, max_attempts - 1))(_run).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=self.node_id, soft=False)
        )

    @staticmethod
    def _init(ray: Any, kwargs: dict[str, Any], timeout: float) -> None:
        # In the calling thread: Ray ties the processes it starts to the thread that started
        # them (they die with it), so it cannot be bounded by a helper thread. A remote
        # address was probed first, so Ray is only asked where something listens.
        try:
            ray.init(**kwargs)
        except Exception as exc:
            where = kwargs.get("address", "this machine")
            raise BackendUnavailableError(
                f"Ray could not start or connect at {where}: {exc}{ray_init_hint(exc)}"
            ) from None

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]:
        scheduler = Scheduler(_RayAttempts(self._remote), max_attempts=self.max_attempts)
        return scheduler.run(tasks, cancel, started)

    def close(self) -> None:
        """Shut Ray down if this backend started it (never a Ray someone else runs)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


class _RayAttempts:
    """Attempts as Ray tasks: all submitted at once (Ray queues them on its workers), polled
    with ``ray.wait``, killed with ``ray.cancel``. Ray itself re-runs a task whose worker died
    (``max_retries``); a worker that died on every try fails the run at once."""

    def __init__(self, remote: Any) -> None:
        self._remote = remote
        self._tasks: dict[Any, Task] = {}

    def free(self) -> int:
        return 1 << 30

    def submit(self, task: Task) -> Hashable:
        ref = self._remote.remote(task.to_json())
        self._tasks[ref] = task
        return ref  # type: ignore[no-any-return]

    def poll(self, timeout: float, watch: Watch) -> list[tuple[Hashable, Outcome]]:
        import ray

        if not self._tasks:
            return []
        ready, _ = ray.wait(list(self._tasks), num_returns=1, timeout=timeout)
        out: list[tuple[Hashable, Outcome]] = []
        for ref in ready:
            task = self._tasks.pop(ref)
            fetched = time.perf_counter()
            try:
                got = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker died on every retry
                raise failure(task, exc) from None
            if got["ok"]:
                stats = {**got["stats"], "attempt": task.attempt}
                stats["transfer_seconds"] = time.perf_counter() - fetched
                out.append((ref, TaskResult(task.id, got["table"], got["seconds"], stats)))
            else:
                out.append((ref, Failed(got["error"], "a Ray worker")))
        return out

    def kill(self, handle: Hashable) -> None:
        import ray

        self._tasks.pop(handle, None)
        ray.cancel(handle, force=True)
