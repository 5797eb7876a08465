"""Checksum scrubbing and repair of this node's chunks.

Every ``scrub_interval`` each chunk is rehashed; a corrupt one is replaced by a good copy
from a peer (``fetch``, from :class:`lake.cluster.replication.Replication`). Queries and the Flight
server call the same :meth:`Scrub.repair` when they meet a corrupt chunk.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from platform_core import NotFoundError

from ..errors import CorruptChunkError
from .chunks import ChunkStore

__all__ = ["Scrub"]

log = logging.getLogger(__name__)


class Scrub:
    """Rehash local chunks and replace corrupt ones with a verified copy from a peer."""

    def __init__(self, chunks: ChunkStore, fetch: Callable[[str], bool]) -> None:
        self.chunks = chunks
        self.fetch = fetch
        self.stats = {"repaired": 0, "unrepaired": 0}
        self._lock = threading.Lock()

    def repair(self, sha: str) -> bool:
        """Replace a corrupt local chunk with a verified copy from a peer, atomically.

        The good copy is hashed as it arrives and renamed over the bad file, so readers see
        the old file or the good one; if no peer has a good copy, the bad file is removed
        (never served again) and the chunk counts as lost here until replication brings it.
        """
        with self._lock:
            with contextlib.suppress(CorruptChunkError, NotFoundError):
                self.chunks.verify(sha, force=True)
                return True  # another reader repaired it meanwhile
            ok = self.fetch(sha)
            if ok:
                self.stats["repaired"] += 1
                log.warning("repaired corrupt chunk %s from a replica", sha[:12])
            else:
                self.chunks.remove(sha)
                self.stats["unrepaired"] += 1
                log.error("chunk %s is corrupt here and no replica had a good copy", sha[:12])
            return ok

    def scrub_once(self) -> dict[str, int]:
        """Rehash every local chunk; repair the corrupt ones. Returns the counts."""
        checked = corrupt = repaired = 0
        for sha in self.chunks.all():
            checked += 1
            try:
                self.chunks.verify(sha, force=True)
            except CorruptChunkError:
                corrupt += 1
                repaired += int(self.repair(sha))
        return {"checked": checked, "corrupt": corrupt, "repaired": repaired}
