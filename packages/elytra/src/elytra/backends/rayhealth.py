"""Whether the Ray a driver is attached to still answers, so that a run fails instead of
waiting for ever on tasks that Ray lost.

When the Ray head dies (its GCS), the other nodes' raylets end after a while, and the tasks
a driver waits for never finish: ``ray.wait`` keeps answering "not ready" (found from
outside: a job on a platform whose head was SIGKILLed stayed ``running`` past 10 minutes).
:class:`RayHealth` asks ``ray.nodes()`` in a thread of its own at most every ``every``
seconds (with its GCS gone a call may block: the gateway's driver is told to wait for it for
ten years) and fails the run when the driver's node is no longer alive, or when Ray has not
answered for ``silence`` seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..errors import BackendUnavailableError

__all__ = ["RayHealth"]

EVERY_SECONDS = 2.0
SILENCE_SECONDS = 30.0


class RayHealth:
    """The driver's view of its Ray: ``check()`` raises ``BackendUnavailableError`` once Ray
    is gone (see the module docstring); cheap enough to call on every poll."""

    def __init__(
        self, node_id: str, every: float = EVERY_SECONDS, silence: float = SILENCE_SECONDS
    ) -> None:
        self.node_id, self.every, self.silence = node_id, every, silence
        self._lock = threading.Lock()
        self._asked = -float("inf")
        self._answered = time.monotonic()
        self._probing = False
        self._gone: str | None = None

    def check(self, since: float) -> None:
        """Raise if Ray is gone; ``since``: when the run began (silence before it is not
        counted: an idle platform asks nothing)."""
        now = time.monotonic()
        with self._lock:
            if not self._probing and now - self._asked >= self.every:
                self._probing, self._asked = True, now
                threading.Thread(target=self._probe, name="elytra-ray-health", daemon=True).start()
            gone, answered = self._gone, self._answered
        if gone is not None:
            raise BackendUnavailableError(gone)
        quiet = now - max(answered, since)
        if quiet > self.silence:
            raise BackendUnavailableError(
                f"Ray has not answered for {quiet:.0f} s (its head is gone?): the job's tasks "
                "cannot finish; `platform status` shows Ray's state. Restart the platform "
                "with --ray (or its Ray cluster) and submit the job again"
            )

    def _probe(self) -> None:
        import ray

        try:
            nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        except Exception:  # Ray's own errors while its GCS is unreachable: no answer
            nodes = []
        finally:
            with self._lock:
                self._probing = False
        if not nodes:
            return
        mine = [n for n in nodes if n.get("NodeID") == self.node_id]
        with self._lock:
            self._answered = time.monotonic()
            if mine and not mine[0].get("Alive"):
                self._gone = (
                    "this platform's Ray node is gone (its raylet died): jobs cannot run on "
                    "Ray until the platform is restarted with --ray; `platform status` shows "
                    "Ray's state"
                )
