"""SWIM-style membership: members, their states and incarnations, and how views merge.

Each member has a state (``alive``, ``suspect``, ``dead``) and an incarnation number that only
the member itself raises. When views meet, for each member the higher incarnation wins; at
equal incarnation the worse state wins (dead > suspect > alive), so a suspicion spreads until
the suspected member hears of it and refutes it by announcing itself alive with a higher
incarnation. A node that restarts starts from a fresh, larger incarnation (its start time),
so it is taken back as alive. The protocol loop (ping, indirect ping through ``k`` members,
suspicion timeout) lives in :mod:`lake.cluster.gossip`; this module is pure data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["ALIVE", "DEAD", "SUSPECT", "Member", "Membership"]

ALIVE, SUSPECT, DEAD = "alive", "suspect", "dead"
_RANK = {ALIVE: 0, SUSPECT: 1, DEAD: 2}


@dataclass(frozen=True)
class Member:
    """One node as some view knows it."""

    id: str
    http: str
    """``host:port`` of its HTTP API (and gossip)."""
    flight: str
    """``host:port`` of its Flight server."""
    incarnation: int
    state: str = ALIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Member:
        state = str(d.get("state", ALIVE))
        if state not in _RANK:
            raise ValueError(f"unknown member state {state!r}")
        return cls(str(d["id"]), str(d["http"]), str(d["flight"]), int(d["incarnation"]), state)


def newer(a: Member, b: Member) -> bool:
    """Whether ``a`` overrides ``b`` (same member id)."""
    if a.incarnation != b.incarnation:
        return a.incarnation > b.incarnation
    return _RANK[a.state] > _RANK[b.state]


class Membership:
    """This node's view of the group (thread-safe)."""

    def __init__(self, me: Member) -> None:
        self.me_id = me.id
        self._members: dict[str, Member] = {me.id: me}
        self._since: dict[str, float] = {me.id: time.monotonic()}
        self._seen: dict[str, float] = {me.id: time.time()}
        self._lock = threading.Lock()
        self.refutations = 0
        self.listeners: list[Callable[[], None]] = []
        """Called (outside the lock, on the changing thread) after any member changed state,
        incarnation or address: keep them quick (the live mirror only sets an event)."""

    def _changed(self) -> None:
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # a listener's bug must not stop the protocol
                logging.getLogger(__name__).exception("membership listener failed")

    def heard(self, node_id: str) -> None:
        """Note that ``node_id`` spoke to us just now (its ``last_seen``)."""
        with self._lock:
            self._seen[node_id] = time.time()

    def last_seen(self, node_id: str) -> float | None:
        """Wall time (epoch seconds) we last heard from ``node_id`` (now for ourselves)."""
        if node_id == self.me_id:
            return time.time()
        with self._lock:
            return self._seen.get(node_id)

    @property
    def me(self) -> Member:
        with self._lock:
            return self._members[self.me_id]

    def get(self, node_id: str) -> Member | None:
        with self._lock:
            return self._members.get(node_id)

    def all(self) -> list[Member]:
        with self._lock:
            return sorted(self._members.values(), key=lambda m: m.id)

    def live(self) -> list[Member]:
        """Members not declared dead (suspects still hold and serve their data)."""
        return [m for m in self.all() if m.state != DEAD]

    def since(self, node_id: str) -> float:
        with self._lock:
            return self._since.get(node_id, time.monotonic())

    def merge(self, members: Iterable[Member]) -> list[Member]:
        """Adopt newer facts; refute any suspicion of ourselves. Returns what changed."""
        changed = []
        with self._lock:
            for m in members:
                if m.id == self.me_id:
                    mine = self._members[m.id]
                    if m.state != ALIVE and m.incarnation >= mine.incarnation:
                        self._members[m.id] = replace(mine, incarnation=m.incarnation + 1)
                        self.refutations += 1
                        changed.append(self._members[m.id])
                    continue
                cur = self._members.get(m.id)
                if cur is None or newer(m, cur):
                    if cur is None or cur.state != m.state:
                        self._since[m.id] = time.monotonic()
                    self._members[m.id] = m
                    changed.append(m)
        if changed:
            self._changed()
        return changed

    def locate(self, *, flight: str) -> Member:
        """Set this node's own Flight address (known once its server is bound); the raised
        incarnation makes the new address win over any the peers heard before."""
        with self._lock:
            mine = self._members[self.me_id]
            self._members[self.me_id] = me = replace(
                mine, flight=flight, incarnation=mine.incarnation + 1
            )
        self._changed()
        return me

    def mark(self, node_id: str, state: str) -> Member | None:
        """Suspect or declare dead a member at its current incarnation."""
        with self._lock:
            cur = self._members.get(node_id)
            if cur is None or node_id == self.me_id or _RANK[state] <= _RANK[cur.state]:
                return None
            self._members[node_id] = marked = replace(cur, state=state)
            self._since[node_id] = time.monotonic()
        self._changed()
        return marked
