"""The lake's live state mirrored into the platform's store (``platform_core.live``).

What a browser subscribes to instead of polling ``/api/lake/...``:

- ``/datasets/<name>``: what ``GET /api/lake/datasets`` gives per dataset, plus ``replicas``
  (how many members hold each of its chunks, at the minimum) and ``under_replicated`` (how
  many of its chunks have fewer copies than the replication factor);
- ``/nodes/<id>``: each member's ``id``, ``http``, ``flight``, ``state`` (alive, suspect,
  dead), ``incarnation``, ``chunks``, ``bytes`` (null while it does not answer) and
  ``last_seen`` (epoch seconds);
- ``/cluster``: ``replication_factor``, ``chunks`` (live chunks), ``under_replicated``.

It is event-driven: the catalog's and the membership's listeners wake the publisher, which
publishes within ``COALESCE_SECONDS``; who holds which chunk comes from the members (an HTTP
call each) every ``replicate_interval_seconds`` on a thread of its own, so a peer that hangs
never delays a state change. Each round is diffed against what was published last and only
the paths that changed are written (``last_seen`` alone is rewritten once it moved by
``SEEN_SLACK_SECONDS``), so a quiet cluster writes nothing. Dataset names are already store
keys (letters, digits, ``_``); node ids are escaped with ``platform_core.escape_key``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from platform_core import LiveSink, escape_key

from ..storage.manifest import Manifest
from .routes import _dataset

if TYPE_CHECKING:
    from ..node import LakeNode

__all__ = ["LIVE_RULES", "LiveMirror"]

log = logging.getLogger(__name__)

LIVE_RULES: Mapping[str, Any] = {".read": "auth != null", ".write": False}
"""Readable by any signed-in user, writable by nobody (the platform writes as the admin)."""
KEYS = ("datasets", "nodes", "cluster")
COALESCE_SECONDS = 0.05
SEEN_SLACK_SECONDS = 5.0


class LiveMirror:
    """Publishes one node's view of the catalog and the cluster into a :class:`LiveSink`."""

    def __init__(self, node: LakeNode, sink: LiveSink, holdings_interval: float | None = None):
        self.node = node
        self.sink = sink
        self.holdings_interval = (
            holdings_interval
            if holdings_interval is not None
            else node.settings.replicate_interval_seconds
        )
        self._wake = threading.Event()
        self._recount = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._heads: dict[str, Manifest] = {}
        self._held: dict[str, list[str] | None] = {}
        self._published: dict[str, Any] | None = None
        self._threads: list[threading.Thread] = []
        self.rounds = 0
        """Publishing rounds that wrote something (tests read it)."""

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        for key in KEYS:
            self.sink.reserve(key, LIVE_RULES)
        catalog = self.node.catalog
        with catalog._lock:  # no install can slip between the snapshot and the listener
            self._heads = {m.name: m for m in catalog.heads()}
            catalog.listeners.append(self._on_manifest)
        if self.node.cluster is not None:
            self.node.cluster.members.listeners.append(self._wake.set)
        self._refresh_holdings()
        self._publish()  # the first round replaces whatever a previous run left
        for target, name in ((self._run, "publish"), (self._poll_holdings, "holdings")):
            t = threading.Thread(target=target, daemon=True, name=f"lake-live-{name}")
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._recount.set()
        if self._on_manifest in self.node.catalog.listeners:
            self.node.catalog.listeners.remove(self._on_manifest)
        if self.node.cluster is not None and self._wake.set in self.node.cluster.members.listeners:
            self.node.cluster.members.listeners.remove(self._wake.set)
        for t in self._threads:
            t.join(5)

    # --- events ----------------------------------------------------------------------------

    def _on_manifest(self, manifest: Manifest) -> None:
        # Called under the catalog lock: remember it and wake the publisher, nothing more.
        with self._lock:
            self._heads[manifest.name] = manifest
        self._wake.set()
        self._recount.set()  # its chunks are new: count who holds them now, not in a while

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._stop.wait(COALESCE_SECONDS)  # a burst of events becomes one write
            self._wake.clear()
            try:
                self._publish()
            except Exception:
                log.exception("publishing the lake's live state failed (retrying on change)")

    def _poll_holdings(self) -> None:
        while not self._stop.is_set():
            self._recount.wait(self.holdings_interval)
            self._recount.clear()
            if self._stop.is_set():
                return
            try:
                self._refresh_holdings()
            except Exception:
                log.exception("reading which member holds which chunk failed")

    def _refresh_holdings(self) -> None:
        cluster = self.node.cluster
        held: dict[str, list[str] | None] = (
            cluster.replication.holdings()
            if cluster is not None
            else {self.node.node_id: self.node.chunks.all()}
        )
        with self._lock:
            changed = held != self._held
            self._held = held
        if changed:
            self._wake.set()

    # --- the state -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """``{"datasets": {...}, "nodes": {...}, "cluster": {...}}`` as it stands now."""
        with self._lock:
            heads = [m for m in self._heads.values() if not m.deleted]
            held = dict(self._held)
        cluster = self.node.cluster
        if cluster is not None:
            members = cluster.members.all()
            wanted = cluster.replication.replication_factor()
        else:
            members = []
            wanted = 1
        copies: dict[str, int] = {}
        for shas in held.values():
            for sha in shas or ():
                copies[sha] = copies.get(sha, 0) + 1
        sizes = {c.sha256: c.bytes for m in heads for c in m.chunks}

        datasets: dict[str, Any] = {}
        for m in heads:
            counts = [copies.get(c.sha256, 0) for c in m.chunks]
            datasets[m.name] = {
                **_dataset(m),
                "replicas": min(counts) if counts else None,
                "under_replicated": sum(1 for n in counts if n < wanted),
            }
        nodes: dict[str, Any] = {}
        if cluster is None:
            me = self.node.node_id
            members_info: list[tuple[str, dict[str, Any]]] = [
                (me, {"id": me, "http": "", "flight": "", "state": "alive"})
            ]
        else:
            members_info = [
                (m.id, {**m.to_dict(), "last_seen": cluster.members.last_seen(m.id)})
                for m in members
            ]
        for node_id, info in members_info:
            shas = held.get(node_id)
            nodes[escape_key(node_id)] = {
                **info,
                "chunks": None if shas is None else len(shas),
                "bytes": None if shas is None else sum(sizes.get(s, 0) for s in shas),
            }
        live = set(sizes)
        return {
            "datasets": datasets,
            "nodes": nodes,
            "cluster": {
                "replication_factor": wanted,
                "chunks": len(live),
                "under_replicated": sum(1 for s in live if copies.get(s, 0) < wanted),
            },
        }

    def _publish(self) -> None:
        state = self.snapshot()
        last = self._published
        if last is None:
            self.sink.publish_many({f"/{k}": state[k] or None for k in KEYS})
            self._published = state
            self.rounds += 1
            return
        changes: dict[str, Any] = {}
        if state["cluster"] != last["cluster"]:
            changes["/cluster"] = state["cluster"]
        for key in ("datasets", "nodes"):
            new, old = state[key], last[key]
            for k in old.keys() - new.keys():
                changes[f"/{key}/{k}"] = None
            for k, v in new.items():
                before = old.get(k)
                if before is None or _differs(v, before):
                    changes[f"/{key}/{k}"] = v
                else:
                    new[k] = before  # keep the published last_seen as the reference
        if changes:
            self.sink.publish_many(changes)
            self.rounds += 1
        self._published = state


def _differs(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether a record changed, ``last_seen`` counting only once it moved by the slack."""
    if {k: v for k, v in new.items() if k != "last_seen"} != {
        k: v for k, v in old.items() if k != "last_seen"
    }:
        return True
    a, b = new.get("last_seen"), old.get("last_seen")
    if a is None or b is None:
        return a != b
    return abs(float(a) - float(b)) >= SEEN_SLACK_SECONDS
