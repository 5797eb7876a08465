"""How many tasks each peer platform runs at once: its own pool's workers, asked now and then.

Placement balances bytes per slot. A peer's slots were ``ELYTRA_PEER_SLOTS`` (2) whatever its
pool: on three platforms of one worker each (the TPC-H bench), the peers took twice the
coordinator's share of every stage, and a one-task stage could queue behind another on one
peer's single worker (q02). Each peer answers ``GET /internal/elytra/workers`` (cluster token)
with its pool's size; the answer is kept ``SLOTS_TTL`` seconds. A peer that does not answer
within ``ASK_TIMEOUT`` (an older platform without the route, a slow one, one still starting)
counts as ``default`` slots for ``MISS_TTL`` seconds, then is asked again.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import httpx

from platform_core.http import http_client

__all__ = ["ASK_TIMEOUT", "MAX_SLOTS", "MISS_TTL", "SLOTS_TTL", "WORKERS_PATH", "PeerSlots"]

log = logging.getLogger(__name__)

WORKERS_PATH = "/internal/elytra/workers"
SLOTS_TTL = 60.0
"""Seconds a peer's answer is kept (a peer restarted with another pool is seen within this)."""
MISS_TTL = 10.0
"""Seconds a peer that gave no usable answer counts as the default before it is asked again
(a platform still starting answers 503)."""
ASK_TIMEOUT = 1.0
"""Seconds a peer has to answer; the asks of one run go out at once."""
MAX_SLOTS = 256
"""A peer's answer above this is taken as this (``ELYTRA_WORKERS`` stops there too)."""


class Peer(Protocol):
    """A peer platform as this module needs it (``backends.cluster.Peer`` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def url(self) -> str: ...


class PeerSlots:
    """Peer id -> the tasks it runs at once, asked of each peer and kept ``SLOTS_TTL`` s."""

    def __init__(self, default: int, verify: ssl.SSLContext | None = None) -> None:
        self.default = default
        self.verify = verify
        self._known: dict[str, tuple[int, float]] = {}  # peer id -> (slots, kept until)
        self._lock = threading.Lock()

    def of(self, peers: Sequence[Peer], token: Callable[[], str]) -> dict[str, int]:
        """Each of ``peers``' slots; those not asked within ``SLOTS_TTL`` are asked now."""
        now = time.monotonic()
        with self._lock:
            stale = [p for p in peers if self._known.get(p.id, (0, now))[1] <= now]
        if stale:
            headers = {"authorization": f"Bearer {token()}"}
            with (
                http_client(timeout=ASK_TIMEOUT, verify=self.verify) as client,
                ThreadPoolExecutor(len(stale), thread_name_prefix="elytra-slots") as pool,
            ):
                answers = list(pool.map(lambda p: self._ask(client, p, headers), stale))
            with self._lock:
                for peer, slots in zip(stale, answers, strict=True):
                    until = now + (SLOTS_TTL if slots is not None else MISS_TTL)
                    self._known[peer.id] = (slots or self.default, until)
                for gone in set(self._known) - {p.id for p in peers}:  # left the cluster
                    del self._known[gone]
        with self._lock:
            return {p.id: self._known.get(p.id, (self.default, now))[0] for p in peers}

    def _ask(self, client: httpx.Client, peer: Peer, headers: dict[str, str]) -> int | None:
        """``peer``'s workers, or None when it gives no usable answer."""
        try:
            r = client.get(peer.url + WORKERS_PATH, headers=headers)
            workers = r.json().get("workers") if r.status_code == 200 else None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, AttributeError) as exc:
            log.info("peer %s did not say its workers: %s", peer.id[:12], exc)
            return None
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            return None
        return min(workers, MAX_SLOTS)
