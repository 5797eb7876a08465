"""The peer group of one node, as one handle: its parts, their loops, and their stop.

The work is done by single-purpose parts that ``LakeNode.start_cluster`` builds in dependency
order and hands in here:

- :class:`~lake.cluster.gossip.Gossip`: SWIM membership, gossip of members and dataset heads, join;
- :class:`~lake.cluster.replication.Replication`: placement, re-replication, remote chunk reads;
- :class:`~lake.storage.scrub.Scrub`: checksum scrubbing and repair;
- :class:`~lake.cluster.flight.LakeFlightServer`: this node's Flight endpoint;
- :class:`~lake.cluster.peer_link.PeerLinks`: signed HTTP to peers, and the fault hook
  (``drop_links`` makes this node drop its direct link to some members, both ways).

:class:`Cluster` runs each part's periodic round on its own thread and is what the HTTP
routes (:mod:`lake.api.peer_routes`, ``/nodes/health``) and elytra (``read_chunk``) call.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..settings import LakeSettings
from ..storage.catalog import Catalog
from ..storage.chunks import ChunkStore
from ..storage.scrub import Scrub
from .flight import LakeFlightServer
from .gossip import Gossip
from .membership import Member, Membership
from .peer_link import PEER_PREFIX, PeerLinks
from .replication import Replication

__all__ = ["PEER_PREFIX", "Cluster"]

log = logging.getLogger(__name__)


class Cluster:
    """Membership, gossip, replication and scrub for one node (a facade over its parts)."""

    def __init__(
        self,
        *,
        settings: LakeSettings,
        catalog: Catalog,
        chunks: ChunkStore,
        links: PeerLinks,
        gossip: Gossip,
        replication: Replication,
        scrub: Scrub,
        flight: LakeFlightServer,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.chunks = chunks
        self.links = links
        self.gossip = gossip
        self.replication = replication
        self.scrub = scrub
        self.flight = flight
        self.members: Membership = gossip.members
        self._pool = pool
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def flight_addr(self) -> str:
        """``host:port`` of this node's Flight server (the bound port; gossiped to peers)."""
        return self.members.me.flight

    @property
    def stats(self) -> dict[str, int]:
        return {**self.gossip.stats, **self.replication.stats, **self.scrub.stats}

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the gossip (joining first), replication and scrub loops."""
        s = self.settings
        self._every(self.gossip.tick, s.gossip_interval_seconds, "gossip", self.gossip.first_join)
        self._every(self.replication.round, s.replicate_interval_seconds, "replication")
        self._every(self.scrub.scrub_once, s.scrub_interval_seconds, "scrub")

    def _every(
        self,
        work: Callable[[], object],
        interval: float,
        what: str,
        first: Callable[[], object] | None = None,
    ) -> None:
        """Run ``work`` every ``interval`` seconds (jittered by 20%) on a thread until stop."""

        def loop() -> None:
            if first is not None:
                try:  # a failed first round must not end the thread: the rounds retry
                    first()
                except Exception:
                    log.exception("%s: the first round failed", what)
            while not self._stop.wait(interval * random.uniform(0.8, 1.2)):
                try:
                    work()
                except Exception:
                    log.exception("%s round failed", what)

        t = threading.Thread(target=loop, daemon=True, name=f"lake-{what}")
        t.start()
        self._threads.append(t)

    def wait_joined(self, timeout: float) -> None:
        """Return once a peer accepted this node; ``JoinError`` saying why after ``timeout``."""
        self.gossip.wait_joined(timeout)

    def rejoined(self, timeout: float) -> bool:
        """Whether this node knows another member once its first pass over the peers it
        remembers ended (at most ``timeout``; True when it remembers none)."""
        return self.gossip.rejoined(timeout)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.flight.shutdown()
        self.links.close()

    # --- what the peer routes, the health route and elytra call ----------------------------

    @property
    def dropped(self) -> set[str]:
        return self.links.dropped

    def drop_links(self, node_ids: set[str]) -> None:
        self.links.drop(node_ids)

    def receive(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.gossip.receive(body)

    def ping_req(self, target: Member) -> bool:
        return self.gossip.ping_req(target)

    def scrub_once(self) -> dict[str, int]:
        return self.scrub.scrub_once()

    def read_chunk(self, sha: str, origin: str = "") -> bytes:
        return self.replication.read_chunk(sha, origin)

    def health(self) -> dict[str, Any]:
        return self.replication.health()
