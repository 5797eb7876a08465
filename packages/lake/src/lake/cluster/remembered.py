"""The peers a node last saw alive, kept on disk so a restarted node finds its cluster again.

A node started with ``--join A`` that is restarted after A died would ping A alone and fail
to start; one started without ``--join`` (the first) would come back alone, its dead entry
never pinged again by the others. :class:`RememberedPeers` keeps the HTTP addresses of the
members last seen alive in ``<node dir>/peers.json`` (temp file, then an atomic rename), and
:class:`lake.cluster.gossip.Gossip` pings them after its ``--join`` address.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

__all__ = ["RememberedPeers"]

log = logging.getLogger(__name__)

MAX_PEERS = 64
"""Addresses kept at most (the ones pinged on a restart, one after the other)."""


class RememberedPeers:
    """``peers.json``: a JSON list of ``host:port`` strings."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._saved: list[str] | None = None

    def load(self) -> list[str]:
        """The addresses saved last ([] when none or unreadable: a restart then needs --join)."""
        if self.path is None or not self.path.exists():
            return []
        try:
            value = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return []
        if not isinstance(value, list):
            return []
        return [a for a in value if isinstance(a, str) and 0 < len(a) <= 300][:MAX_PEERS]

    def save(self, addresses: list[str]) -> None:
        """Keep ``addresses`` if there are any and they changed (an isolated node keeps the
        ones it had: they are how it finds its cluster again)."""
        if self.path is None or not addresses:
            return
        wanted = sorted(set(addresses))[:MAX_PEERS]
        if wanted == self._saved:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(wanted))
            tmp.replace(self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not keep the peers in %s: %s", self.path, exc)
            return
        self._saved = wanted
