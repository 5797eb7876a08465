"""The lake cluster as the backends see it: this platform's node, its live peers, where each
chunk is and how to fetch it. ``elytra.lakepeers.LakeChunks`` is the lake's; Ray's placement
(:mod:`.ray`) and the gateway's result forwarding use it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ChunkCluster", "Peer"]


@dataclass(frozen=True)
class Peer:
    """Another platform of the cluster: its node id and its gateway's base URL."""

    id: str
    url: str


class ChunkCluster(Protocol):
    """What a backend needs of the lake cluster this platform belongs to."""

    def me(self) -> str: ...

    def peers(self) -> list[Peer]:
        """The live members other than this one."""
        ...

    def holders(self, sha: str) -> list[str]:
        """Node ids that hold (or are to hold) chunk ``sha``."""
        ...

    def locate(self, sha: str) -> str | None:
        """This platform's copy of chunk ``sha``, if it has one."""
        ...

    def fetch(self, sha: str) -> bytes:
        """Chunk ``sha``'s checked bytes from a member that has it."""
        ...
