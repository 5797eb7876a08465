"""The browser-worker protocol: message names, limits and the per-worker rate bucket.

A worker connects to ``/api/workers/ws`` with a worker token (``?auth=`` or a Bearer header).
Every message is a JSON text frame, except a result's rows: one binary frame (an Arrow IPC
stream) right after its ``result`` header. See the table in ``packages/elytra/README.md``.

worker -> server: ``hello`` (first; ``concurrency``), ``heartbeat``, ``result`` (``task_id``,
``attempt``, ``bytes``; then the binary frame), ``error`` (``task_id``, ``attempt``,
``message``).

server -> worker: ``welcome`` (``worker_id``, granted ``concurrency``, ``heartbeat_seconds``,
``lease_seconds``, ``max_result_bytes``, ``chunk_path``), ``task``, ``cancel`` (``task_id``:
stop it, its lease is gone), ``accepted`` / ``rejected`` (``task_id``, ``reason``), ``banned``
(this job's tasks no longer go to the worker).
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ["CHUNK_MEDIA_TYPE", "MAX_TEXT_BYTES", "PROTOCOL_VERSION", "RateBucket"]

PROTOCOL_VERSION: Final = 1
CHUNK_MEDIA_TYPE: Final = "application/vnd.apache.arrow.stream"
MAX_TEXT_BYTES: Final = 64 << 10
"""The longest JSON text frame (characters) a worker may send: its messages are a few hundred;
the JSON is parsed on the server's event loop, so a large one would stall every route."""


class RateBucket:
    """A token bucket: ``rate`` messages a second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self) -> bool:
        """Whether one more message fits the rate (and count it)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
