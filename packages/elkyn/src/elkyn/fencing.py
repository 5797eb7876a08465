"""Terms, fencing and semi-synchronous acknowledgement of a server in an election cluster.

An elected cluster (``elkyn.election``) numbers its primaries by term. This server's
:class:`Fence` holds the term it serves (as primary, or as a replica following that term's
primary) and the highest term it has been *fenced* at: the election's coordinator fences a
majority before it names a new primary, after which this server neither applies another entry
from the old primary nor acknowledges a write of its own. A primary acknowledges a write only
when ``sync_replicas`` replicas of its own term have it durably: a replica's poll for the log
after ``since=N`` says it committed everything up to ``N``. With ``sync_replicas >= 1`` a write
acknowledged here is on at least two servers, so promoting the most caught-up server of any
majority keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from .errors import PrimaryUnavailableError

__all__ = ["Fence", "StaleTermError", "default_sync_replicas"]


def default_sync_replicas(servers: int) -> int:
    """The replicas a write waits for unless ``ELKYN_SYNC_REPLICAS`` says: 0 alone, else
    enough that the servers holding an acknowledged write (the primary and these) and any
    majority always share one, ``w + floor(n/2) + 1 > n``: 1 for 2-4 servers, 2 for 5-6, 3
    for 7. With 1 of 5, a majority of three could all lack the write and elect one of them."""
    return 0 if servers <= 1 else max(1, (servers - 1) // 2)


class StaleTermError(PrimaryUnavailableError):
    """A write or a replica poll names a term this server does not serve (503: retry)."""


class Fence:
    """This server's term, fence and replica acknowledgements (on the app's event loop, but
    for the elector thread's plain attribute writes in ``promote`` and ``follow``, and
    ``fence_at``, which a worker thread of ``POST /.replication/fence`` and the elector both
    call: its lock keeps the fence from going down between its check and its write)."""

    def __init__(self, sync_replicas: int, sync_timeout: float) -> None:
        self.term = 0
        """The term this server serves in (0: none named yet)."""
        self.primary = False
        """Whether this server is the primary of ``term``."""
        self.fenced = 0
        """The highest term a coordinator fenced this server at (>= ``term`` once fenced)."""
        self.sync_replicas = sync_replicas
        self.sync_timeout = sync_timeout
        self.acks: dict[str, int] = {}
        """Replica name -> the last sequence number it has committed, in this term."""
        self._changed: asyncio.Event | None = None
        self.waiting_for: Callable[[], str | None] | None = None
        """Why no primary is known yet, if the election can tell (``elkyn.election`` sets
        it: no majority of its members answers), for the write refused meanwhile."""
        self._raising = threading.Lock()  # the HTTP fence and the elector's own, at once
        self.named = threading.Event()
        """Set once this server has a settled role: the primary of a term, or the replica of
        a primary that answers as such (``Election._confirm_role``). The gateway plugin's
        start waits for it, so the plugins after it start knowing the role."""

    def serving(self) -> bool:
        """Whether this server is the primary of an unfenced term (writes may be applied)."""
        return self.primary and self.term > 0 and self.fenced <= self.term

    def check_write(self, sent_term: str | None) -> None:
        """Refuse a write when this server is not an unfenced primary, or the forwarding
        server follows another term than this one serves (a deposed or a newer primary)."""
        if self.term == 0 and not self.primary:
            why = self.waiting_for() if self.waiting_for is not None else None
            raise StaleTermError(
                "this server has not yet learnt from the election which server is the primary "
                f"({why or 'it has just started or joined'}); retry in a moment"
            )
        if not self.serving():
            raise StaleTermError(
                f"this server is not the primary of term {self.term} any more (fenced at term "
                f"{self.fenced}): a new primary is being elected; retry in a moment"
            )
        if sent_term is not None and sent_term != str(self.term):
            raise StaleTermError(
                f"the write was forwarded for term {sent_term[:20]!r} but this primary serves "
                f"term {self.term}; retry in a moment"
            )

    def fence_at(self, term: int) -> bool:
        """Take nothing from a primary of a term below ``term`` from now on; whether that
        raised the fence (the caller then halts this server's follower). Atomic: the
        coordinator's fence over HTTP and the elector's fence of its own server may meet."""
        with self._raising:
            if term < self.term:
                raise StaleTermError(
                    f"this server already serves term {self.term}, not below {term}"
                )
            if term > self.term and term > self.fenced:
                self.fenced = term
                return True
            return False

    def promote(self, term: int) -> None:
        """Serve ``term`` as its primary (acknowledgements start afresh)."""
        self.acks = {}
        self.term, self.primary = term, True
        self.named.set()

    def follow(self, term: int) -> None:
        """Serve ``term`` as a replica (no writes of its own)."""
        self.term, self.primary = term, False

    def record_ack(self, replica: str, term: str | None, since: int, counts: bool = True) -> None:
        """A poll of ``replica`` (a replica of ``term``) says it committed up to ``since``
        (``counts``: and its data is this primary's database, so the numbers compare)."""
        if term is None or replica == "":
            return
        if term != str(self.term):
            if self.primary and term.isdigit() and int(term) > self.term:
                raise StaleTermError(
                    f"this primary serves term {self.term}, the replica follows term {term}: "
                    "it was deposed; follow the new primary"
                )
            return
        if counts and since > self.acks.get(replica, -1):
            self.acks[replica] = since
            if self._changed is not None:
                self._changed.set()

    def acked_by(self, seq: int) -> int:
        """How many replicas of this term have committed ``seq``."""
        return sum(1 for s in self.acks.values() if s >= seq)

    async def acknowledged(self, seq: int) -> None:
        """Return once ``sync_replicas`` replicas have ``seq`` durably and this server is
        still the unfenced primary; else a 503 saying the write was not acknowledged."""
        deadline = time.monotonic() + self.sync_timeout
        if self._changed is None:
            self._changed = asyncio.Event()
        while self.acked_by(seq) < self.sync_replicas:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.serving():
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
        have = self.acked_by(seq)
        if have < self.sync_replicas or not self.serving():
            raise PrimaryUnavailableError(
                f"the write (seq {seq}) was committed on this primary but is not acknowledged: "
                f"{have} of the {self.sync_replicas} replicas ELKYN_SYNC_REPLICAS asks for had "
                f"it within {self.sync_timeout:g} s"
                + ("" if self.serving() else ", and this server was deposed meanwhile")
                + "; it may or may not survive a failover: read it back before retrying"
            )
