"""The lake cluster as the backends see it (:class:`~elytra.backends.chunkcluster.ChunkCluster`):
this platform's node, its live peers' gateways, where chunks are and how to fetch them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backends.chunkcluster import Peer

if TYPE_CHECKING:
    from lake.node import LakeNode

__all__ = ["LakeChunks"]


class LakeChunks:
    """A clustered lake node's view (``node.cluster`` must be set); ``scheme`` is how its
    peers' gateways are reached."""

    def __init__(self, node: LakeNode, scheme: str = "http") -> None:
        assert node.cluster is not None
        self.node, self.cluster, self.scheme = node, node.cluster, scheme

    def me(self) -> str:
        return self.node.node_id

    def peers(self) -> list[Peer]:
        me = self.node.node_id
        return [
            Peer(m.id, f"{self.scheme}://{m.http}")
            for m in self.cluster.members.all()
            if m.id != me and m.state == "alive"
        ]

    def holders(self, sha: str) -> list[str]:
        return self.cluster.replication.targets(sha)

    def locate(self, sha: str) -> str | None:
        path = self.node.catalog.chunks.path(sha)
        return str(path) if path.is_file() else None

    def fetch(self, sha: str) -> bytes:
        return self.cluster.read_chunk(sha)
