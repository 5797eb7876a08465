"""The SWIM protocol loop over a node's membership: ping, indirect ping, suspicion, join.

Every ``gossip_interval`` the node pings one member (round robin over a shuffled list) over
HTTP; if it does not answer within ``ping_timeout``, ``indirect_pings`` other members are
asked to ping it; if none gets an answer it becomes *suspect*, and dead after
``suspect_timeout`` unless it refutes (the merge rules are in :mod:`lake.cluster.membership`).

Each ping carries the sender's member list (with each member's HTTP and Flight address) and
its dataset heads (name -> version); a node behind on a dataset pulls the manifests from the
peer (anti-entropy, so a node that was down catches up; tombstones travel the same way).

A node started with ``--join HOST:PORT`` pings that address until it answers, and then the
peers it last saw alive (``lake.cluster.remembered``: a restarted node finds its cluster again
when the platform it was told to join is the one that died);
:meth:`Gossip.wait_joined` fails with a :class:`JoinError` saying why (for instance a cluster
secret mismatch) if no peer has accepted it within the join timeout. A node restarted
without ``--join`` asks the peers it remembers at once too; :meth:`Gossip.rejoined` waits for
that first pass, so the platform does not answer as ready while it knows no member (a job
then found no holder of a chunk).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from platform_core import UnavailableError

from ..settings import LakeSettings
from ..storage.catalog import Catalog
from ..storage.manifest import Manifest
from .membership import ALIVE, DEAD, SUSPECT, Member, Membership
from .peer_link import PeerLinks, mismatch_message
from .remembered import RememberedPeers

__all__ = ["Gossip", "JoinError"]

log = logging.getLogger(__name__)


class JoinError(UnavailableError):
    """No member accepted this node within its join timeout."""


SHOWN_PROBLEMS = 5
"""Seeds named in a join error (a remembered list holds up to 64)."""


class Gossip:
    """SWIM membership protocol and head anti-entropy for one node."""

    def __init__(
        self,
        members: Membership,
        catalog: Catalog,
        links: PeerLinks,
        settings: LakeSettings,
        pool: ThreadPoolExecutor,
        join: str | None = None,
        remembered: RememberedPeers | None = None,
    ) -> None:
        self.members = members
        self.catalog = catalog
        self.links = links
        self.settings = settings
        self.join = join
        self.remembered = remembered or RememberedPeers(None)
        self.joined = threading.Event()
        """Set once a member accepted a ping of ours (at once when there is nothing to join)."""
        if not join:
            self.joined.set()
        self.join_problem = "no answer yet"
        self.tried = threading.Event()
        """Set once the first pass over the seeds ended, whether one let this node in or not."""
        self.stats = {"pings": 0, "ping_failures": 0, "indirect_ok": 0, "suspected": 0}
        self.stats |= {"dead": 0, "manifests_pulled": 0}
        self._pool = pool
        self._order: list[str] = []

    # --- payloads --------------------------------------------------------------------------

    def payload(self) -> dict[str, Any]:
        return {
            "from": self.members.me.to_dict(),
            "members": [m.to_dict() for m in self.members.all()],
            "heads": {m.name: m.version for m in self.catalog.heads()},
        }

    def receive(self, body: dict[str, Any]) -> dict[str, Any]:
        """Handle a ping: merge the sender's view, answer with ours."""
        if body["from"]["id"] in self.links.dropped:
            raise ConnectionRefusedError("link dropped by the fault hook")
        sender, heads = self._merge(body)
        if self._behind(heads):
            self._pool.submit(self._pull, sender, heads)
        return self.payload()

    def _merge(self, body: dict[str, Any]) -> tuple[Member, dict[str, int]]:
        """Adopt a peer's view (the sender, its members); returns the sender and its heads."""
        sender = Member.from_dict(body["from"])
        self.members.heard(sender.id)
        self.members.merge([sender])
        self.members.merge(Member.from_dict(m) for m in body.get("members", []))
        return sender, body.get("heads") or {}

    def _behind(self, heads: dict[str, int]) -> list[str]:
        return [n for n, v in heads.items() if self.catalog.head_version(n) < int(v)]

    def _pull(self, peer: Member, heads: dict[str, int]) -> None:
        names = self._behind(heads)
        if not names:
            return
        try:
            r = self.links.call(
                "GET",
                peer.http,
                "/manifests",
                peer=_name(peer),
                params=[("name", n) for n in names],
                timeout=10,
            )
            r.raise_for_status()
            for d in r.json():
                if self.catalog.install(Manifest.from_dict(d)):
                    self.stats["manifests_pulled"] += 1
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.info("pulling manifests from %s failed: %s", peer.id, exc)

    def _absorb(self, body: dict[str, Any]) -> None:
        """Take in a peer's answer to our ping (it accepted us: we have joined)."""
        sender, heads = self._merge(body)
        self.joined.set()
        if self._behind(heads):
            self._pull(sender, heads)

    # --- SWIM ------------------------------------------------------------------------------

    def ping(self, target: Member, timeout: float | None = None) -> bool:
        """Direct ping with gossip; True if the target answered."""
        if target.id in self.links.dropped:
            return False
        self.stats["pings"] += 1
        try:
            r = self.links.call(
                "POST",
                target.http,
                "/ping",
                peer=_name(target),
                json=self.payload(),
                timeout=timeout or self.settings.ping_timeout_seconds,
            )
            if r.status_code != 200:
                return False
            body = r.json()
        except (httpx.HTTPError, ValueError):
            return False
        self._absorb(body)
        return True

    def ping_req(self, target: Member) -> bool:
        """Ping ``target`` on behalf of another member (SWIM's indirect probe)."""
        return self.ping(target, timeout=self.settings.ping_timeout_seconds)

    def _indirect(self, target: Member) -> bool:
        helpers = [
            m
            for m in self.members.all()
            if m.id not in (self.members.me_id, target.id)
            and m.state == ALIVE
            and m.id not in self.links.dropped
        ]
        random.shuffle(helpers)
        helpers = helpers[: self.settings.indirect_pings]
        if not helpers:
            return False
        timeout = self.settings.ping_timeout_seconds * 2 + 0.5

        def ask(helper: Member) -> bool:
            try:
                r = self.links.call(
                    "POST",
                    helper.http,
                    "/ping-req",
                    peer=_name(helper),
                    json={"target": target.to_dict()},
                    timeout=timeout,
                )
                return r.status_code == 200 and bool(r.json().get("ok"))
            except (httpx.HTTPError, ValueError):
                return False

        return any(list(self._pool.map(ask, helpers)))

    def seeds(self) -> list[str]:
        """Where to ask to be let in: the ``--join`` address, then the peers last seen alive."""
        own = self.members.me.http
        out = [self.join] if self.join else []
        return out + [a for a in self.remembered.load() if a not in out and a != own]

    def join_once(self) -> None:
        """Ping the seeds until one accepts; remember why they did not, if none did."""
        problems = []
        for seed in self.seeds():
            problem = self._ask_to_join(seed)
            if problem is None:
                return
            problems.append(problem)
        if problems:  # a one-line error: the first few, then how many more
            more = len(problems) - SHOWN_PROBLEMS
            self.join_problem = "; ".join(problems[:SHOWN_PROBLEMS]) + (
                f"; and {more} more peers this node saw alive before" if more > 0 else ""
            )

    def _ask_to_join(self, seed: str) -> str | None:
        """Ping ``seed``: None once it accepted us, else why not."""
        try:
            r = self.links.call("POST", seed, "/ping", json=self.payload(), timeout=2)
            if r.status_code == 200:
                return self._accepted(seed, r.json())
            if r.status_code == 401:
                return mismatch_message(seed)
            return f"{seed} answered {r.status_code}: {r.text[:200]}"
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # never kill the loop
            log.info("joining through %s failed: %s", seed, exc)
            return f"{seed} did not answer ({exc})"

    def _accepted(self, seed: str, body: Any) -> str | None:
        """Take in ``seed``'s answer to our ping: None, or why it is no lake node's answer. A
        remembered address may now belong to another server: its answer raised out of the
        whole pass, so the seeds after it (a live peer) were never asked, and at start the
        gossip thread died with it (the node never joined)."""
        try:
            self._absorb(body)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            return f"{seed} answered, but not as a lake node ({type(exc).__name__}: {exc})"
        return None

    def first_join(self) -> None:
        """The gossip thread's first round: one pass over the seeds, then ``tried``."""
        try:
            self.join_once()
        finally:
            self.tried.set()

    def rejoined(self, timeout: float) -> bool:
        """Whether this node knows another member, after waiting (at most ``timeout``) for
        the first pass over the seeds: a node restarted without ``--join`` finds its cluster
        through the peers it remembers. True at once when it has no seed to ask."""
        if self.seeds():
            self.tried.wait(timeout)
        else:
            return True
        return any(m.id != self.members.me_id for m in self.members.all())

    def wait_joined(self, timeout: float) -> None:
        """Return once a member accepted this node; :class:`JoinError` after ``timeout``."""
        if not self.joined.wait(timeout):
            raise JoinError(
                f"could not join the cluster through {self.join} within {timeout:g} s "
                f"(LAKE_JOIN_TIMEOUT_SECONDS), nor through a peer this node saw alive before: "
                f"{self.join_problem}"
            )

    def tick(self) -> None:
        """One protocol period."""
        others = [m for m in self.members.all() if m.id != self.members.me_id and m.state != DEAD]
        if not others:
            self.join_once()
            return
        self.remembered.save([m.http for m in others if m.state == ALIVE])
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
        timeout = self.settings.suspect_timeout_seconds
        now = time.monotonic()
        for m in self.members.all():
            late = m.state == SUSPECT and now - self.members.since(m.id) > timeout
            if late and self.members.mark(m.id, DEAD) is not None:
                self.stats["dead"] += 1
                log.warning("declaring %s dead", m.id)


def _name(m: Member) -> str:
    return f"{m.id} ({m.http})"
