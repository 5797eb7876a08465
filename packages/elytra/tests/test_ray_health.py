"""The driver's view of Ray's nodes (``backends.rayhealth``) when the GCS stops answering: a
blocked ``ray.nodes()`` is stood in for by a probe that blocks, since a real lost head is
what ``test_ray_locality.py``'s head-kill test and the platform's head-loss test run."""

from __future__ import annotations

import threading
import time
from typing import Any

from elytra.backends.rayhealth import RayHealth
from elytra.errors import BackendUnavailableError

ME = [{"NodeID": "me", "Alive": True}]


class Gcs:
    """Answers while ``up``; else each probe blocks until it is up again (as ``ray.nodes()``
    does while the head is gone)."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.up.set()

    def nodes(self) -> list[dict[str, Any]]:
        self.up.wait()
        return ME


def _raises_after(call: Any) -> float:
    """Seconds until ``call()`` (repeated, as a run's polls are) raises Ray's silence."""
    started = time.monotonic()
    while time.monotonic() - started < 30:
        try:
            call()
        except BackendUnavailableError as exc:
            took = time.monotonic() - started
            message = str(exc)
            break
        time.sleep(0.05)
    else:
        raise AssertionError("Ray's silence was never reported")
    assert "has not answered" in message
    return took


def test_once_ray_was_found_silent_later_runs_fail_fast_until_it_answers() -> None:
    gcs = Gcs()
    health = RayHealth("me", every=0.1, silence=4.0, probe=gcs.nodes)
    assert health.nodes() == ME
    gcs.up.clear()  # the head is gone: every probe from now on blocks
    time.sleep(0.3)
    since = time.monotonic()
    first = _raises_after(lambda: health.check(since))
    assert first >= 3.0  # the first run waits out the silence
    # a later run (placement asks for the nodes, then polls) does not wait 4 s again
    assert _raises_after(health.nodes) < 2.5
    later = time.monotonic()
    assert _raises_after(lambda: health.check(later)) < 2.5
    gcs.up.set()  # Ray answers again: the blocked probe returns, and runs go on
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            assert health.nodes() == ME
            break
        except BackendUnavailableError:
            time.sleep(0.1)
    else:
        raise AssertionError("Ray answered again but the health kept failing")
    health.check(time.monotonic())  # and a new run is not failed
