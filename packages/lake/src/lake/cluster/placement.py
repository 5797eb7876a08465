"""Replica placement by rendezvous (highest-random-weight) hashing.

Each (node, chunk) pair gets a score from SHA-256; a chunk's replicas are the ``k`` nodes with
the highest scores. When a node leaves, only the chunks it held move (to the next-highest
node), and every node computes the same answer from the same member list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["rank", "replicas"]


def _score(node: str, key: str) -> bytes:
    return hashlib.sha256(f"{node}\x00{key}".encode()).digest()


def rank(key: str, nodes: Iterable[str]) -> list[str]:
    """All ``nodes`` ordered by their weight for ``key`` (best first)."""
    return sorted(set(nodes), key=lambda n: _score(n, key), reverse=True)


def replicas(key: str, nodes: Iterable[str], k: int) -> list[str]:
    """The ``k`` nodes that hold ``key`` (fewer if there are fewer nodes)."""
    return rank(key, nodes)[: max(k, 0)]
