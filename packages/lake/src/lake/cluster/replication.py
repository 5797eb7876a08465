"""Where chunks live and keeping them there: placement, re-replication, remote chunk reads.

Each chunk's replicas are the top ``replication_factor`` live members by rendezvous hashing
(:mod:`lake.cluster.placement`); a node that should hold a chunk and does not fetches it over Flight
from another member and checks its SHA-256. When a member dies, the next-ranked member of
each of its chunks fetches it, which restores the replication factor. Once every replica
holds a chunk, the ingesting node drops its spare copy. :class:`Replication` is also the
coordinator's :class:`~lake.interfaces.PeerGroup` (who is live, where a chunk is).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import TYPE_CHECKING, Any

import httpx

from platform_core import UnavailableError

from ..settings import LakeSettings
from ..storage.catalog import Catalog
from ..storage.chunks import ChunkStore
from .membership import DEAD, Member, Membership
from .peer_link import PeerLinks
from .placement import rank, replicas

if TYPE_CHECKING:
    from .flight import FlightPeer

__all__ = ["Replication"]

log = logging.getLogger(__name__)


class Replication:
    """Placement, replication and trimming of this node's chunks over the live members."""

    def __init__(
        self,
        members: Membership,
        chunks: ChunkStore,
        catalog: Catalog,
        links: PeerLinks,
        settings: LakeSettings,
    ) -> None:
        self.members = members
        self.chunks = chunks
        self.catalog = catalog
        self.links = links
        self.settings = settings
        self.stats = {"replicated": 0, "trimmed": 0, "read_chunks": 0, "read_bytes": 0}
        """``read_*``: chunks (and their bytes) read from members for a reader here (an elytra
        job's task on a node that lacks them): what a job moved over the network."""
        self._lock = threading.Lock()

    # --- placement (the PeerGroup the coordinator reads) ----------------------------------

    @property
    def me_id(self) -> str:
        return self.members.me_id

    def token(self) -> str:
        return self.links.token()

    def flight(self, addr: str, timeout: float) -> FlightPeer:
        """A Flight client of the member at ``addr`` over this node's kept connection to it,
        over TLS when it gossips one."""
        return self.links.flight(addr, timeout, kept=True)

    def forget_flight(self, addr: str) -> None:
        """Drop the kept connection to ``addr`` (it did not answer)."""
        self.links.forget_flight(addr)

    def live_ids(self) -> list[str]:
        return [m.id for m in self.members.live()]

    def replication_factor(self) -> int:
        return min(self.settings.replication_factor, len(self.live_ids()))

    def targets(self, sha: str) -> list[str]:
        return replicas(sha, self.live_ids(), self.replication_factor())

    def candidates(self, sha: str, origin: str = "") -> list[Member]:
        """Members to read ``sha`` from, best first: its replicas, its origin, then the rest."""
        live = self.members.live()
        by_id = {m.id: m for m in live}
        order = self.targets(sha)
        if origin in by_id and origin not in order:
            order.append(origin)
        order += [n for n in rank(sha, by_id) if n not in order]
        return [by_id[n] for n in order]

    # --- remote reads ----------------------------------------------------------------------

    def read_chunk(self, sha: str, origin: str = "") -> bytes:
        """Chunk ``sha``'s bytes from a member with a good copy (checked), not stored here:
        for a reader that needs a chunk this node is not a replica of (an elytra job)."""
        data = self._read(sha, origin)
        self.stats["read_chunks"] += 1
        self.stats["read_bytes"] += len(data)
        return data

    def _read(self, sha: str, origin: str) -> bytes:
        """Chunk ``sha``'s checked bytes from the first member that has a good copy."""
        me = self.members.me_id
        tried: list[str] = []
        for m in self.candidates(sha, origin):
            if m.id == me or m.id in self.links.dropped:
                continue
            tried.append(m.id)
            peer = self.links.flight(m.flight, timeout=60)
            try:
                data = peer.fetch_chunk(sha)
                if hashlib.sha256(data).hexdigest() == sha:
                    return data
                log.warning("chunk %s from %s failed its checksum", sha[:12], m.id)
            except Exception as exc:  # a peer without it, or gone: try the next one
                log.info("fetching chunk %s from %s failed: %s", sha[:12], m.id, exc)
            finally:
                peer.close()
        raise UnavailableError(
            f"no member could give a good copy of chunk {sha[:12]} (tried {tried}); retry once "
            "the cluster has re-replicated it"
        )

    def fetch(self, sha: str, origin: str = "") -> bool:
        """Copy chunk ``sha`` here from a member that has a good copy."""
        try:
            data = self._read(sha, origin)
        except UnavailableError:
            return False
        self.chunks.put_bytes(data, sha=sha)
        return True

    # --- keeping the replication factor ----------------------------------------------------

    def replicate_once(self) -> int:
        """Fetch every chunk this node should hold and lacks; returns how many it fetched."""
        fetched = 0
        me = self.members.me_id
        with self._lock:
            for manifest in self.catalog.heads():
                if manifest.deleted:
                    continue
                for ref in manifest.chunks:
                    wanted = me in self.targets(ref.sha256)
                    if (
                        wanted
                        and not self.chunks.has(ref.sha256)
                        and self.fetch(ref.sha256, manifest.origin)
                    ):
                        fetched += 1
                        self.stats["replicated"] += 1
        return fetched

    def trim_once(self) -> int:
        """Drop local copies of chunks this node is not a replica of, once every replica has one.

        The ingesting node writes every chunk of a version; after its replicas hold them it
        keeps only its own share. Chunks of older versions are left to GC.
        """
        me = self.members.me_id
        spare: dict[str, list[str]] = {}
        with self._lock:
            for manifest in self.catalog.heads():
                if manifest.deleted:
                    continue
                for ref in manifest.chunks:
                    targets = self.targets(ref.sha256)
                    if me not in targets and self.chunks.has(ref.sha256):
                        spare[ref.sha256] = targets
            if not spare or len(self.live_ids()) < self.settings.replication_factor:
                return 0
            held = self.holdings()
            removed = 0
            for sha, targets in spare.items():
                if all(sha in (held.get(t) or ()) for t in targets):
                    self.chunks.remove(sha)
                    removed += 1
            self.stats["trimmed"] += removed
            return removed

    def round(self) -> None:
        """One replication period: fetch what is missing, then trim what is spare."""
        self.replicate_once()
        self.trim_once()

    # --- reports ---------------------------------------------------------------------------

    def holdings(self) -> dict[str, list[str] | None]:
        """Chunk ids held by each member (None when a member did not answer)."""
        out: dict[str, list[str] | None] = {}
        for m in self.members.all():
            if m.id == self.members.me_id:
                out[m.id] = self.chunks.all()
                continue
            if m.state == DEAD:
                out[m.id] = None
                continue
            try:
                r = self.links.call("GET", m.http, "/chunks", peer=f"{m.id} ({m.http})", timeout=5)
                out[m.id] = r.json() if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                out[m.id] = None
        return out

    def health(self) -> dict[str, Any]:
        """Members with their chunk counts, and how many live chunks lack replicas."""
        held = self.holdings()
        copies: dict[str, int] = {}
        for ids in held.values():
            for sha in ids or []:
                copies[sha] = copies.get(sha, 0) + 1
        wanted = self.replication_factor()
        live_chunks = {c.sha256 for m in self.catalog.heads() if not m.deleted for c in m.chunks}
        under = sorted(sha for sha in live_chunks if copies.get(sha, 0) < wanted)
        return {
            "replication_factor": wanted,
            "chunks": len(live_chunks),
            "under_replicated": len(under),
            "members": [
                {**m.to_dict(), "chunks": None if held.get(m.id) is None else len(held[m.id] or [])}
                for m in self.members.all()
            ],
        }
