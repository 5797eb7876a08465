"""The driver's one view of its Ray's nodes, never waited on without a bound, so that a job
fails when Ray is gone instead of waiting for ever.

When the Ray head dies (its GCS), the other nodes' raylets end after a while; the tasks a
driver waits for never finish (``ray.wait`` keeps answering "not ready"), and ``ray.nodes()``
blocks (the gateway's driver is told to wait for a lost GCS for ten years). Found from
outside: a running job stayed ``running`` past 10 minutes, and a job submitted afterwards
stayed ``queued`` for good, its thread blocked in ``ray.nodes()`` at placement.

:class:`RayHealth` asks ``ray.nodes()`` in a thread of its own, at most every ``every``
seconds. :meth:`RayHealth.nodes` gives the latest answer, waiting for a fresh one at most
until Ray has been silent for ``silence`` seconds; :meth:`RayHealth.check` (on every poll of
a run) raises once the driver's node is dead or Ray has been silent that long. Both raise
``BackendUnavailableError`` (503: submit again once Ray is back). Once Ray has been found
silent, a later call waits for a fresh answer only ``every`` + 1 seconds, not ``silence``
again, until Ray answers: found from outside, after the Ray head's platform was killed and
restarted (a new head the others did not join), every query through another platform waited
30 s before the lake's planner answered it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import BackendUnavailableError

__all__ = ["RayHealth"]

EVERY_SECONDS = 2.0
SILENCE_SECONDS = 30.0


class RayHealth:
    """See the module docstring. ``node_id``: the driver's Ray node."""

    def __init__(
        self,
        node_id: str,
        every: float = EVERY_SECONDS,
        silence: float = SILENCE_SECONDS,
        probe: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.node_id, self.every, self.silence = node_id, every, silence
        self._nodes_of = probe or _ray_nodes
        """``ray.nodes()``: may block for as long as the GCS is unreachable."""
        self._found_silent = False
        """Ray was silent past ``silence`` and has not answered since."""
        self._cond = threading.Condition()
        self._asked = -float("inf")
        self._answered = time.monotonic()
        self._nodes: list[dict[str, Any]] | None = None
        self._probing = False
        self._gone: str | None = None

    def nodes(self) -> list[dict[str, Any]]:
        """``ray.nodes()``, at most ``every`` seconds old; raises once Ray is gone or silent
        for ``silence`` seconds (never blocks longer)."""
        start = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                if self._gone is not None:
                    raise BackendUnavailableError(self._gone)
                if self._nodes is not None and now - self._answered <= self.every:
                    return list(self._nodes)
                quiet = now - max(self._answered, start)
                if quiet > self._limit():
                    self._found_silent = True
                    raise BackendUnavailableError(_silent(now - self._answered))
                self._ask(now)
                self._cond.wait(timeout=min(1.0, self._limit() - quiet + 0.01))

    def check(self, since: float) -> None:
        """Raise if Ray is gone; ``since``: when the run began (silence before it is not
        counted: an idle platform asks nothing). Never blocks."""
        now = time.monotonic()
        with self._cond:
            self._ask(now)
            gone, answered, limit = self._gone, self._answered, self._limit()
            quiet = now - max(answered, since)
            if gone is None and quiet > limit:
                self._found_silent = True
        if gone is not None:
            raise BackendUnavailableError(gone)
        if quiet > limit:
            raise BackendUnavailableError(_silent(now - answered))

    def _limit(self) -> float:
        """How long silence may last before a call raises (lock held)."""
        return self.every + 1.0 if self._found_silent else self.silence

    def _ask(self, now: float) -> None:
        """Start a probe unless one runs or one started less than ``every`` ago (lock held)."""
        if not self._probing and now - self._asked >= self.every:
            self._probing, self._asked = True, now
            threading.Thread(target=self._probe, name="elytra-ray-health", daemon=True).start()

    def _probe(self) -> None:
        try:
            nodes: list[dict[str, Any]] | None = self._nodes_of()
        except Exception:  # Ray's own errors while its GCS is unreachable: no answer
            nodes = None
        with self._cond:
            self._probing = False
            if nodes:
                self._nodes, self._answered = nodes, time.monotonic()
                self._found_silent = False
                mine = [n for n in nodes if n.get("NodeID") == self.node_id]
                if mine and not mine[0].get("Alive"):
                    self._gone = (
                        "this platform's Ray node is gone (its raylet died): jobs cannot run "
                        "on Ray until the platform is restarted with --ray; `platform status` "
                        "shows Ray's state"
                    )
            self._cond.notify_all()


def _ray_nodes() -> list[dict[str, Any]]:
    import ray

    return ray.nodes()  # type: ignore[no-any-return,no-untyped-call]


def _silent(quiet: float) -> str:
    return (
        f"Ray has not answered for {quiet:.0f} s (its head is gone?): the job cannot run; "
        "`platform status` shows Ray's state. Restart the platform with --ray (or its Ray "
        "cluster) and submit the job again"
    )
