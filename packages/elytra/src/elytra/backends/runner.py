"""Running tasks on a backend in a background thread, so a mixing backend can wait on one
event queue for them and for its other workers (browsers)."""

from __future__ import annotations

import queue
import threading
from typing import Any

from ..task import Task
from .base import Backend

__all__ = ["BackgroundRunner"]


class BackgroundRunner:
    """Runs tasks on ``backend`` in a thread of its own, batch after batch; every result or
    error goes to ``events`` as ``("local", task, result)`` or ``("local_error", exc)``."""

    def __init__(
        self,
        backend: Backend,
        cancel: threading.Event,
        events: queue.Queue[tuple[Any, ...]],
        name: str = "elytra-local",
    ) -> None:
        self.backend, self.cancel, self.events = backend, cancel, events
        self._todo: queue.Queue[Task | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, task: Task) -> None:
        self._todo.put(task)

    def stop(self) -> None:
        self._todo.put(None)
        self._thread.join(30)

    def _loop(self) -> None:
        while True:
            first = self._todo.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while True:
                try:
                    more = self._todo.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            by_id = {t.id: t for t in batch}
            try:
                for result in self.backend.run(batch, self.cancel):
                    self.events.put(("local", by_id[result.task_id], result))
            except BaseException as exc:
                self.events.put(("local_error", exc))
                return
            if stop:
                return
