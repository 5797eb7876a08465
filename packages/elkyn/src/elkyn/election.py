"""Which server of a cluster is the primary: elected through Raft (``pysyncobj``), fenced by term.

Every ``elkyn serve --election-port P --peer HOST:PORT=URL ...`` runs one Raft node (pysyncobj,
its traffic encrypted and authenticated with a key derived from the platform secret) beside
its database. Raft replicates one small record — the current term, that term's primary (an
Elkyn URL) and which database each term's primary served — and elects a Raft leader, which
acts as the coordinator (as Patroni's leader key in etcd does for PostgreSQL):

1. While the named primary answers ``/.replication/status`` with its term, nothing happens.
2. When it stops answering (``MISSES`` checks in a row), the coordinator *fences* every server
   it reaches at the next term (``POST /.replication/fence``: a server fenced at a newer term
   stops applying the old primary's log and acknowledging writes) and collects what each has
   applied. Without answers from a majority it does nothing (no election without a majority).
3. Of the fenced majority it names the most caught-up (highest term of the data it holds, then
   highest sequence number; itself on a tie) primary of the next term, through Raft.
4. Each server applies the record: the named one promotes itself (stops following, takes
   writes), the others follow it (a server whose data came from another database resyncs from
   a snapshot, which discards what a deposed primary wrote that was never acknowledged).

The replication itself stays Elkyn's own log shipping (``elkyn.replica``); ``elkyn.fencing``
holds the term checks and the semi-synchronous acknowledgement.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.tcp_connection import TcpConnection

from .fencing import StaleTermError, default_sync_replicas
from .replica import fence_here

if TYPE_CHECKING:
    from .server.app import ElkynApp
    from .settings import ElkynSettings

__all__ = ["Election", "Peer", "parse_peers"]

log = logging.getLogger(__name__)

TICK = 0.25
"""Seconds between two looks of the elector at the Raft record and the primary."""
MISSES = 3
"""Failed health checks of the primary in a row before the coordinator replaces it."""
CHECK_TIMEOUT = 1.0
"""Seconds a health check or a fence may take."""
FENCE_GRACE = 0.25
"""Seconds the coordinator still waits for the other fences once a majority has answered: a
paused server answers nothing, and waiting out its ``CHECK_TIMEOUT`` delayed every failover
by a second. Any majority holds every acknowledged write (``fencing.default_sync_replicas``)."""
GRACE = 4
"""Extra failed checks allowed right after naming a primary, before it has taken the role."""
STRAY_EVERY = 4
"""Ticks between two looks of the coordinator for servers fenced above the record's term."""
STRAY_LOOKS = 2
"""Looks in a row that find one before the coordinator names a primary of a new term."""
MAX_RAFT_FRAME = 1 << 20
"""Bytes one Raft message may announce. Ours are far smaller (one record; pysyncobj batches
entries and snapshot parts in 64 KiB); a larger announced frame is a stranger's, dropped."""


def _bound_raft_frames() -> None:
    """Make pysyncobj drop a connection whose next frame announces more than
    :data:`MAX_RAFT_FRAME` bytes (or a negative length) before buffering it: it reads a whole
    frame before the MAC check, so a stranger could fill memory (with a quadratic copy per
    read) by announcing 2 GiB and sending on. pysyncobj has no option for this."""
    if getattr(TcpConnection, "_elkyn_bounded", False):
        return
    read = TcpConnection._TcpConnection__processRead

    def bounded_read(conn: Any) -> bool:
        more = bool(read(conn))
        buffer = conn._TcpConnection__readBuffer
        if len(buffer) >= 4:
            (size,) = struct.unpack("i", buffer[:4])
            if size < 0 or size > MAX_RAFT_FRAME:
                log.warning("dropped a Raft connection announcing a %d-byte frame", size)
                conn.disconnect()
                return False
            if len(buffer) >= 4 + size:  # a whole frame is in: parse it before reading more
                return False
        return more

    TcpConnection._TcpConnection__processRead = bounded_read
    TcpConnection._elkyn_bounded = True


@dataclass(frozen=True)
class Peer:
    """One server of the cluster: its Raft address and its Elkyn URL."""

    raft: str
    url: str


def parse_peers(text: str) -> list[Peer]:
    """``HOST:PORT=URL,HOST:PORT=URL`` (``ELKYN_ELECTION_PEERS``) as peers, or a clear error."""
    peers = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        raft, sep, url = item.partition("=")
        host, colon, port = raft.rpartition(":")
        if not sep or not colon or not host or not port.isdigit() or not url.startswith("http"):
            raise ValueError(
                f"a peer is RAFT_HOST:RAFT_PORT=ELKYN_URL (127.0.0.1:7001=http://127.0.0.1:9001), "
                f"not {item[:200]!r}"
            )
        peers.append(Peer(raft, url.rstrip("/")))
    return peers


class Primaryship(SyncObj):  # type: ignore[misc]  # pysyncobj has no type hints
    """The Raft-replicated record: term, its primary, and each term's database.

    The record's fields start as class attributes and are only ever *assigned* on the
    instance, never changed in place: pysyncobj snapshots (at a log compaction, into
    ``election.dump``, and to a follower that lags) the instance attributes its ``__init__``
    did not find. Set on the instance before ``super().__init__`` (as they were), they were
    left out of every snapshot: past the first compaction a restart, or a follower sent the
    snapshot, had no members, no term and no primary."""

    term: int = 0
    primary: str | None = None
    databases: Mapping[str, int] = MappingProxyType({})
    members: Mapping[str, str] = MappingProxyType({})
    """Raft address -> Elkyn URL (clusters joined with ``--join``)."""

    @replicated  # type: ignore[untyped-decorator]
    def admit(self, raft: str, url: str) -> bool:
        """Record the Elkyn URL of the member at Raft address ``raft`` (``elkyn.membership``)."""
        self.members = {**self.members, raft: url}
        return True

    @replicated  # type: ignore[untyped-decorator]
    def dismiss(self, raft: str) -> bool:
        """Forget the member at Raft address ``raft`` (``elkyn.membership``: it left)."""
        if raft not in self.members:
            return False
        self.members = {r: u for r, u in self.members.items() if r != raft}
        return True

    @replicated  # type: ignore[untyped-decorator]
    def designate(self, term: int, url: str, database: str) -> bool:
        """Compare-and-set: ``url`` is the primary of ``term`` if ``term`` is the next one."""
        if term != self.term + 1:
            return False
        self.term, self.primary = term, url
        self.databases = {**self.databases, database: term}
        return True


class Election:
    """The Raft node and the elector thread of one server (see the module docstring)."""

    def __init__(
        self,
        app: ElkynApp,
        settings: ElkynSettings,
        url: str,
        raft: str,
        peers: list[Peer],
        *,
        dynamic: bool = False,
    ) -> None:
        from platform_core import auth

        self.app, self.settings, self.url, self.raft = app, settings, url.rstrip("/"), raft
        self.peers = [p for p in peers if p.raft != raft]
        self.urls = [self.url] + [p.url for p in self.peers]
        self.dynamic = dynamic
        """Membership from ``--join`` (``elkyn.membership``): the servers are the replicated
        ``members``, not ``peers``, and ``sync_replicas`` follows their number unless set."""
        self.auto_sync = settings.sync_replicas is None
        self.on_members: Any = None
        """Called with the members (Raft address -> URL) at first and whenever they change
        (``elkyn.platform_election`` keeps them: a restart rejoins through them)."""
        self.told: dict[str, str] = {}
        secret = auth.load_secret(settings)
        password = hmac.new(secret, b"elkyn-election", hashlib.sha256).hexdigest()
        where = None if settings.memory else Path(settings.db_path())
        conf = SyncObjConf(
            password=password,
            useFork=False,  # a process holding LMDB and uvicorn never forks
            journalFile=None if where is None else str(where / "election.journal"),
            # A compaction drops the journal's entries up to a snapshot of the state (term,
            # primary, members); without a file for it, a cluster that ran past the first
            # compaction (5 minutes) restarted with an empty state: no members, term 0, and
            # a first platform started alone made a Raft cluster of its own
            fullDumpFile=None if where is None else str(where / "election.dump"),
            logCompactionMinTime=settings.election_compact_seconds,
            dynamicMembershipChange=dynamic,
            connectionRetryTime=1.0,
        )
        self.signer = auth.signer(settings, create=False)
        _bound_raft_frames()
        from platform_core.tls import client_context

        self.context = client_context(settings)  # PLATFORM_TLS_CA: the servers' HTTPS
        self.node = Primaryship(raft, [p.raft for p in self.peers], conf)
        self.applied = 0
        self.misses = 0
        self.ticks = 0
        self.stray_looks = 0
        self.own_http_seen = False
        """Whether this server's own HTTP has answered the elector since the start."""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="elkyn-elector", daemon=True)
        if app.fence is not None:
            app.fence.waiting_for = self.no_majority

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(2)
        self.node.destroy()

    def status(self) -> dict[str, Any]:
        """Term, primary, Raft leader and quorum, for ``/.replication/status``."""
        leader = self.node._getLeader()
        return {
            "term": self.node.term,
            "elected_primary": self.node.primary,
            "raft_leader": None if leader is None else str(leader),
            "raft_term": self.node.raftCurrentTerm,
            "has_quorum": bool(self.node.hasQuorum),
            "members": dict(self.node.members),
        }

    def no_majority(self) -> str | None:
        """Why no primary can be named, when no majority of the members answers (a platform
        restarted while most of its cluster is down waits for them): their Raft addresses."""
        if self.node._getLeader() is not None or self.node.hasQuorum:
            return None
        others = sorted(set(self.node.members) - {self.raft}) or [p.raft for p in self.peers]
        return (
            f"no majority of the election's members answers; it waits for "
            f"{', '.join(others) or 'none'} (Raft addresses): writes resume once a majority "
            "of them is up"
        )

    # ---- the elector thread ----
    def _run(self) -> None:
        while not self.stop.wait(TICK):
            try:
                if not self.node.isReady():  # a restarted server's journal may name it
                    continue  # primary of a term long over: wait until synced with a leader
                if self.dynamic:
                    self._members()
                self._reconcile()
                self._confirm_role()
                if self.node._isLeader():
                    self._coordinate()
            except Exception:  # a tick that fails is retried by the next one
                log.exception("election tick failed")

    def _reconcile(self) -> None:
        """Take the role the Raft record gives this server, once per new term."""
        term, primary = self.node.term, self.node.primary
        if term <= self.applied or primary is None:
            return
        fence = self.app.fence
        if fence is not None and term < fence.fenced:  # a coordinator fenced this server at a
            return  # newer term: following this older one would acknowledge a deposed primary
        if primary == self.url:
            self._promote(term)
        else:
            self._follow(term, primary)
        self.applied = term
        log.info(
            "term %d: the primary is %s%s", term, primary, " (this server)" * (primary == self.url)
        )

    def _confirm_role(self) -> None:
        """Count a replica's role as named (``Fence.named``, which the platform's start waits
        for) once its primary answers as the primary of its term. A restarted server's record
        may name a primary that is gone (its own old address, a platform still down): an
        outside tester saw a platform restarted on a new port answer as the replica of its
        own dead address, and its plugins start as a replica, until the next election."""
        fence = self.app.fence
        if fence is None or fence.named.is_set() or fence.primary or fence.term == 0:
            return
        primary = self.node.primary
        if (
            primary is not None
            and self.node.term == fence.term
            and self._answers(primary, fence.term)
        ):
            fence.named.set()

    def _promote(self, term: int) -> None:
        from .replica import mark_followed

        app, store = self.app, self.app.current_store()
        if app.follower is not None:
            app.follower.halt()
        app.follower, app.forwarder = None, None
        mark_followed(store, store.database_id)  # this data is now its own term's
        store.replica_of = None
        assert app.fence is not None  # an election always comes with its fence
        app.fence.promote(term)

    def _follow(self, term: int, primary: str) -> None:
        from .forward import follow

        app = self.app
        if app.follower is not None:
            app.follower.halt()
        assert app.fence is not None
        app.fence.follow(term)
        follow(app, primary, self.settings, term=term, name=self.url, fence=app.fence)

    def _members(self) -> None:
        """With dynamic membership: record this server's URL, and take the servers (and the
        semi-synchronous default: 1 replica once there are two servers) from the record."""
        if self.node.members.get(self.raft) != self.url:  # first start, or a new HTTP port
            self.node.admit(self.raft, self.url, sync=True, timeout=5)
        others = [u for r, u in sorted(self.node.members.items()) if r != self.raft]
        members = dict(self.node.members)
        if self.on_members is not None and members != self.told:
            self.on_members(members)
            self.told = members  # e.g. kept beside the journal
        self.urls = [self.url, *others]
        if self.auto_sync and self.app.fence is not None:
            self.app.fence.sync_replicas = default_sync_replicas(len(others) + 1)

    def _coordinate(self) -> None:
        """On the Raft leader: replace a primary that stopped answering (or name the first),
        or name one when servers stay fenced past the record's term (see :meth:`_stray`)."""
        term, primary = self.node.term, self.node.primary
        if primary == self.url and len(self.urls) == 1:
            return  # alone: nobody to fence or promote, so no checks (4 requests a second)
        if primary is not None and self._answers(primary, term):
            self.misses = 0
            if not self._stray(term):
                return
            log.warning("servers stay fenced above term %d, none named: electing", term)
        else:
            self.misses += 1
            if primary is not None and self.misses < MISSES:
                return
        self._elect(term)

    def _stray(self, term: int) -> bool:
        """Whether a server has stayed fenced above ``term`` for ``STRAY_LOOKS`` looks (one
        every ``STRAY_EVERY`` ticks): a coordinator fenced and died before naming a primary.
        Such servers stopped following, so the primary's writes could never be acknowledged;
        a new term (the same primary, normally: the most caught-up) makes them follow again."""
        self.ticks += 1
        if self.ticks % STRAY_EVERY:
            return False

        def fenced(url: str) -> int:
            if url == self.url:
                return self.app.fence.fenced if self.app.fence is not None else 0
            try:
                return int(self._request(f"{url}/.replication/status").get("fenced", 0))
            except (urllib.error.URLError, OSError, ValueError, TypeError, AttributeError):
                return 0

        with ThreadPoolExecutor(len(self.urls)) as pool:
            stray = any(f > term for f in pool.map(fenced, self.urls))
        self.stray_looks = self.stray_looks + 1 if stray else 0
        return self.stray_looks >= STRAY_LOOKS

    def _elect(self, term: int) -> None:
        """Fence every server at ``term + 1`` and name the most caught-up of a majority."""
        self.stray_looks = 0
        answers = self._fence_all(term + 1)
        if len(answers) * 2 <= len(self.urls):
            log.warning(
                "no majority to elect a primary of term %d: %d of %d servers answered",
                term + 1,
                len(answers),
                len(self.urls),
            )
            return
        known = self.node.databases

        def rank(url: str) -> tuple[int, int, bool]:
            a = answers[url]
            return (known.get(a["database"], 0), int(a["seq"]), url == self.url)

        best = max(answers, key=rank)
        database = str(answers[best]["own_database"])  # what it serves once promoted
        done = self.node.designate(term + 1, best, database, sync=True, timeout=5)
        log.info("named %s primary of term %d (%s): %s", best, term + 1, rank(best), done)
        self.misses = -GRACE  # the named server takes its role at its next tick or so

    def _request(self, url: str, method: str = "GET", body: Any = None) -> Any:
        token = self.signer.cluster_token("elkyn-election", ttl_seconds=60)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            url, data=data, method=method, headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=CHECK_TIMEOUT, context=self.context) as resp:
            return json.loads(resp.read(1 << 20))

    def _answers(self, primary: str, term: int) -> bool:
        """Whether ``primary`` answers, as the unfenced primary of ``term``."""
        if primary == self.url:
            return self._answers_here(term)
        try:
            status = self._request(f"{primary}/.replication/status")
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return bool(status.get("term") == term and status.get("serving"))

    def _answers_here(self, term: int) -> bool:
        """Whether this server is the unfenced primary of ``term``: asked in-process, and
        over its own HTTP once that has answered since the start (before, the gateway's
        plugins are still starting and it serves nothing). The HTTP check keeps a primary
        whose HTTP is wedged (a blocked event loop, a broken certificate) from holding the
        role while its replicas cannot reach it."""
        fence = self.app.fence
        if fence is None or fence.term != term or not fence.serving():
            return False
        try:
            status = self._request(f"{self.url}/.replication/status")
        except (urllib.error.URLError, OSError, ValueError):
            return not self.own_http_seen
        self.own_http_seen = True
        return bool(status.get("term") == term and status.get("serving"))

    def _fence_all(self, term: int) -> dict[str, dict[str, Any]]:
        """Fence every server at ``term``; the answers of those that took it, by URL."""

        def fence(url: str) -> tuple[str, Any]:
            if url == self.url:  # this server, directly: its HTTP serves only once the
                try:  # gateway's plugins started, and Elkyn's start waits for a role
                    return url, fence_here(self.app, term)
                except StaleTermError:  # it already serves a newer term
                    return url, None
            try:
                return url, self._request(f"{url}/.replication/fence", "POST", {"term": term})
            except (urllib.error.URLError, OSError, ValueError):
                return url, None

        pool = ThreadPoolExecutor(len(self.urls))
        pending = {pool.submit(fence, url) for url in self.urls}
        answers: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + CHECK_TIMEOUT + 0.5
        while pending and time.monotonic() < deadline:
            done, pending = wait(pending, deadline - time.monotonic(), FIRST_COMPLETED)
            for future in done:
                url, a = future.result()
                if isinstance(a, dict) and "seq" in a:
                    answers[url] = a
            if len(answers) * 2 > len(self.urls):  # a majority: the rest get a short grace
                deadline = min(deadline, time.monotonic() + FENCE_GRACE)
        pool.shutdown(wait=False)  # a paused server's fence ends at its own timeout
        return answers
