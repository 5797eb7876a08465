"""The peer group of one node: SWIM membership loop, gossip, replication, scrub and repair.

- Membership: every ``gossip_interval`` the node pings one member (round robin over a
  shuffled list) over HTTP; if it does not answer within ``ping_timeout``, ``indirect_pings``
  other members are asked to ping it; if none gets an answer it becomes *suspect*, and dead
  after ``suspect_timeout`` unless it refutes (see :mod:`lake.membership`).
- Gossip: each ping carries the sender's member list and its dataset heads (name → version);
  the pinger pulls manifests it lacks from the peer (anti-entropy, so a node that was down
  catches up). Tombstones travel the same way.
- Replication: each chunk's replicas are the top ``replication_factor`` live members by
  rendezvous hashing; a node that should hold a chunk and does not fetches it over Flight
  from another member and checks its SHA-256. When a member dies, the next-ranked member of
  each of its chunks fetches it, which restores the replication factor.
- Scrub: every ``scrub_interval`` each chunk is rehashed; a corrupt one is replaced by a good
  copy from a peer. Queries call the same repair when they meet a corrupt chunk.
- Fault hook: :meth:`Cluster.drop_links` makes this node drop its direct link to some members
  (both ways), for tests of indirect pings.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from platform_core import NotFoundError, UnavailableError
from platform_core.auth import TokenSigner

from .errors import CorruptChunkError
from .flight import FlightPeer, LakeFlightServer
from .manifest import Manifest
from .membership import ALIVE, DEAD, SUSPECT, Member, Membership
from .placement import rank, replicas

if TYPE_CHECKING:
    from .node import LakeNode

__all__ = ["PEER_PREFIX", "Cluster"]

log = logging.getLogger(__name__)

PEER_PREFIX = "/internal/lake"


class Cluster:
    """Membership, gossip, replication and scrub for one node."""

    def __init__(self, node: LakeNode, signer: TokenSigner, http_addr: str) -> None:
        s = node.settings
        self.node = node
        self.signer = signer
        self.flight = LakeFlightServer(node, s.advertise_host, s.flight_port, signer)
        self.flight_addr = f"{s.advertise_host}:{self.flight.port}"
        me = Member(node.node_id, http_addr, self.flight_addr, time.time_ns() // 1000)
        self.members = Membership(me)
        self.dropped: set[str] = set()
        self.stats = {"pings": 0, "ping_failures": 0, "indirect_ok": 0, "suspected": 0, "dead": 0}
        self.stats |= {"replicated": 0, "repaired": 0, "manifests_pulled": 0, "trimmed": 0}
        self.stats |= {"unrepaired": 0}
        self._http = httpx.Client(timeout=s.ping_timeout_seconds)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._order: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lake-peer")
        self._repl_lock = threading.Lock()
        self._repair_lock = threading.Lock()
        self.on_dead: list[Callable[[Member], None]] = []
        node.engine.repair = self.repair

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, join: str | None = None) -> None:
        self._join = join
        for target, interval in (
            (self._gossip_loop, self.node.settings.gossip_interval_seconds),
            (self._replicate_loop, self.node.settings.replicate_interval_seconds),
            (self._scrub_loop, self.node.settings.scrub_interval_seconds),
        ):
            t = threading.Thread(target=target, args=(interval,), daemon=True, name=target.__name__)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.flight.shutdown()
        self._http.close()

    def token(self) -> str:
        return self.signer.cluster_token(self.node.node_id)

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token()}"}

    # --- gossip payloads -----------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        return {
            "from": self.members.me.to_dict(),
            "members": [m.to_dict() for m in self.members.all()],
            "heads": {m.name: m.version for m in self.node.catalog.heads()},
        }

    def receive(self, body: dict[str, Any]) -> dict[str, Any]:
        """Handle a ping: merge the sender's view, answer with ours."""
        sender = Member.from_dict(body["from"])
        if sender.id in self.dropped:
            raise ConnectionRefusedError("link dropped by the fault hook")
        self.members.merge([sender])
        self.members.merge(Member.from_dict(m) for m in body.get("members", []))
        heads = body.get("heads") or {}
        if self._behind(heads):
            self._pool.submit(self._pull, sender, heads)
        return self.payload()

    def _behind(self, heads: dict[str, int]) -> list[str]:
        return [n for n, v in heads.items() if self.node.catalog.head_version(n) < int(v)]

    def _pull(self, peer: Member, heads: dict[str, int]) -> None:
        names = self._behind(heads)
        if not names:
            return
        try:
            r = self._http.get(
                f"http://{peer.http}{PEER_PREFIX}/manifests",
                params=[("name", n) for n in names],
                headers=self._headers(),
                timeout=10,
            )
            r.raise_for_status()
            for d in r.json():
                if self.node.catalog.install(Manifest.from_dict(d)):
                    self.stats["manifests_pulled"] += 1
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.info("pulling manifests from %s failed: %s", peer.id, exc)

    # --- SWIM ----------------------------------------------------------------------------

    def ping(self, target: Member, timeout: float | None = None) -> bool:
        """Direct ping with gossip; True if the target answered."""
        if target.id in self.dropped:
            return False
        self.stats["pings"] += 1
        try:
            r = self._http.post(
                f"http://{target.http}{PEER_PREFIX}/ping",
                json=self.payload(),
                headers=self._headers(),
                timeout=timeout or self.node.settings.ping_timeout_seconds,
            )
            if r.status_code != 200:
                return False
            body = r.json()
        except (httpx.HTTPError, ValueError):
            return False
        self._absorb(body)
        return True

    def _absorb(self, body: dict[str, Any]) -> None:
        sender = Member.from_dict(body["from"])
        self.members.merge([sender])
        self.members.merge(Member.from_dict(m) for m in body.get("members", []))
        heads = body.get("heads") or {}
        if self._behind(heads):
            self._pull(sender, heads)

    def ping_req(self, target: Member) -> bool:
        """Ping ``target`` on behalf of another member (SWIM's indirect probe)."""
        return self.ping(target, timeout=self.node.settings.ping_timeout_seconds)

    def _indirect(self, target: Member) -> bool:
        helpers = [
            m
            for m in self.members.all()
            if m.id not in (self.members.me_id, target.id)
            and m.state == ALIVE
            and m.id not in self.dropped
        ]
        random.shuffle(helpers)
        helpers = helpers[: self.node.settings.indirect_pings]
        if not helpers:
            return False
        timeout = self.node.settings.ping_timeout_seconds * 2 + 0.5

        def ask(helper: Member) -> bool:
            try:
                r = self._http.post(
                    f"http://{helper.http}{PEER_PREFIX}/ping-req",
                    json={"target": target.to_dict()},
                    headers=self._headers(),
                    timeout=timeout,
                )
                return r.status_code == 200 and bool(r.json().get("ok"))
            except (httpx.HTTPError, ValueError):
                return False

        results = list(self._pool.map(ask, helpers))
        return any(results)

    def _join_once(self) -> None:
        if not self._join:
            return
        try:
            r = self._http.post(
                f"http://{self._join}{PEER_PREFIX}/ping",
                json=self.payload(),
                headers=self._headers(),
                timeout=2,
            )
            if r.status_code == 200:
                self._absorb(r.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.info("joining through %s failed: %s", self._join, exc)

    def tick(self) -> None:
        """One protocol period."""
        others = [m for m in self.members.all() if m.id != self.members.me_id and m.state != DEAD]
        if not others:
            self._join_once()
            return
        if not self._order:
            self._order = [m.id for m in others]
            random.shuffle(self._order)
        target = self.members.get(self._order.pop())
        if target is not None and target.state != DEAD:
            ok = self.ping(target)
            if not ok:
                self.stats["ping_failures"] += 1
                ok = self._indirect(target)
                if ok:
                    self.stats["indirect_ok"] += 1
            if not ok and self.members.mark(target.id, SUSPECT) is not None:
                self.stats["suspected"] += 1
                log.info("suspecting %s", target.id)
        timeout = self.node.settings.suspect_timeout_seconds
        now = time.monotonic()
        for m in self.members.all():
            if m.state == SUSPECT and now - self.members.since(m.id) > timeout:
                dead = self.members.mark(m.id, DEAD)
                if dead is not None:
                    self.stats["dead"] += 1
                    log.warning("declaring %s dead", m.id)
                    for callback in self.on_dead:
                        callback(dead)

    def _gossip_loop(self, interval: float) -> None:
        self._join_once()
        while not self._stop.wait(interval * random.uniform(0.8, 1.2)):
            try:
                self.tick()
            except Exception:
                log.exception("gossip round failed")

    def drop_links(self, node_ids: set[str]) -> None:
        self.dropped = set(node_ids)

    # --- placement and replication -------------------------------------------------------

    def live_ids(self) -> list[str]:
        return [m.id for m in self.members.live()]

    def replication_factor(self) -> int:
        return min(self.node.settings.replication_factor, len(self.live_ids()))

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

    def read_chunk(self, sha: str, origin: str = "") -> bytes:
        """Chunk ``sha``'s bytes from a member with a good copy (checked), not stored here:
        for a reader that needs a chunk this node is not a replica of (an elytra job)."""
        me = self.members.me_id
        tried: list[str] = []
        for m in self.candidates(sha, origin):
            if m.id == me or m.id in self.dropped:
                continue
            tried.append(m.id)
            peer = FlightPeer(m.flight, self.token(), timeout=60)
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
            data = self.read_chunk(sha, origin)
        except UnavailableError:
            return False
        self.node.chunks.put_bytes(data, sha=sha)
        return True

    def replicate_once(self) -> int:
        """Fetch every chunk this node should hold and lacks; returns how many it fetched."""
        fetched = 0
        me = self.members.me_id
        with self._repl_lock:
            for manifest in self.node.catalog.heads():
                if manifest.deleted:
                    continue
                for ref in manifest.chunks:
                    wanted = me in self.targets(ref.sha256)
                    if (
                        wanted
                        and not self.node.chunks.has(ref.sha256)
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
        with self._repl_lock:
            for manifest in self.node.catalog.heads():
                if manifest.deleted:
                    continue
                for ref in manifest.chunks:
                    targets = self.targets(ref.sha256)
                    if me not in targets and self.node.chunks.has(ref.sha256):
                        spare[ref.sha256] = targets
            if not spare or len(self.live_ids()) < self.node.settings.replication_factor:
                return 0
            held = self.holdings()
            removed = 0
            for sha, targets in spare.items():
                if all(sha in (held.get(t) or ()) for t in targets):
                    self.node.chunks.remove(sha)
                    removed += 1
            self.stats["trimmed"] += removed
            return removed

    def _replicate_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.replicate_once()
                self.trim_once()
            except Exception:
                log.exception("replication round failed")

    def holdings(self) -> dict[str, list[str] | None]:
        """Chunk ids held by each member (None when a member did not answer)."""
        out: dict[str, list[str] | None] = {}
        for m in self.members.all():
            if m.id == self.members.me_id:
                out[m.id] = self.node.chunks.all()
                continue
            if m.state == DEAD:
                out[m.id] = None
                continue
            try:
                r = self._http.get(
                    f"http://{m.http}{PEER_PREFIX}/chunks", headers=self._headers(), timeout=5
                )
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
        live_chunks = {
            c.sha256 for m in self.node.catalog.heads() if not m.deleted for c in m.chunks
        }
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

    # --- scrub and repair ----------------------------------------------------------------

    def repair(self, sha: str) -> bool:
        """Replace a corrupt local chunk with a verified copy from a peer, atomically.

        The good copy is hashed as it arrives and renamed over the bad file, so readers see
        the old file or the good one; if no peer has a good copy, the bad file is removed
        (never served again) and the chunk counts as lost here until replication brings it.
        """
        with self._repair_lock:
            with contextlib.suppress(CorruptChunkError, NotFoundError):
                self.node.chunks.verify(sha, force=True)
                return True  # another reader repaired it meanwhile
            ok = self.fetch(sha)
            if ok:
                self.stats["repaired"] += 1
                log.warning("repaired corrupt chunk %s from a replica", sha[:12])
            else:
                self.node.chunks.remove(sha)
                self.stats["unrepaired"] += 1
                log.error("chunk %s is corrupt here and no replica had a good copy", sha[:12])
            return ok

    def scrub_once(self) -> dict[str, int]:
        checked = corrupt = repaired = 0
        for sha in self.node.chunks.all():
            checked += 1
            try:
                self.node.chunks.verify(sha, force=True)
            except CorruptChunkError:
                corrupt += 1
                repaired += int(self.repair(sha))
        return {"checked": checked, "corrupt": corrupt, "repaired": repaired}

    def _scrub_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.scrub_once()
            except Exception:
                log.exception("scrub failed")
