"""The bytes a distributed query may hold in its coordinator, counted as they arrive.

The lake's planner runs each dataset's fragment where the chunks are and gathers the
fragments' rows into the coordinator's one process, where the final SQL joins them. The
bound is on those rows' Arrow bytes (what they take here, not what their files took on
disk: a repeated string compresses to nothing in Parquet and is whole in memory), counted
batch by batch from every node, and then on the final step's result, held here beside
them; so the query stops at the bound instead of after it. A transfer that fails midway
gives its bytes back: its chunks are read again elsewhere and counted there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pyarrow as pa

from platform_core import format_size

from ..errors import TooLargeError
from ..interfaces import BatchStream, GatherBound

__all__ = ["GatherBudget", "read_counted"]


def read_counted(stream: BatchStream, take: Callable[[int], None]) -> pa.Table:
    """``stream`` read to its end, each batch's bytes counted by ``take`` (which raises to
    stop it) before the batch is kept; the stream is closed however the read ends."""
    batches = []
    try:
        while (batch := stream.next_batch()) is not None:
            take(batch.nbytes)
            batches.append(batch)
    finally:
        stream.close()
    return pa.Table.from_batches(batches, stream.schema)


class GatherBudget:
    """One query's gathered bytes against its limit; thread-safe (fragments arrive from
    several nodes at once). ``bound``, when given, is the declining engine's (tighter) one."""

    def __init__(self, limit: int, query_id: str, bound: GatherBound | None = None) -> None:
        self.limit = min(limit, bound.limit) if bound is not None else limit
        self.query_id = query_id
        self.bound = bound if bound is not None and bound.limit <= limit else None
        self.taken = 0
        self.over: Exception | None = None
        """The error that stopped the query once it went past its limit (it fails the query
        wherever it is raised: no other node would gather less)."""
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> None:
        """Count ``nbytes`` more gathered; raise once the query is past its limit."""
        with self._lock:
            self.taken += nbytes
            taken = self.taken
        if taken > self.limit:
            self.over = self.exceeded(taken)
            raise self.over

    def give_back(self, nbytes: int) -> None:
        """Uncount ``nbytes`` a failed transfer took: its rows were dropped, and the chunks
        are read again elsewhere (and counted there)."""
        with self._lock:
            self.taken -= nbytes

    def read(self, stream: BatchStream) -> pa.Table:
        """``stream`` (the final step's result, held here beside what was gathered) read to
        its end against the budget."""
        return read_counted(stream, self.take)

    def exceeded(self, taken: int) -> Exception:
        if self.bound is not None:
            return self.bound.exceeded(taken)
        return TooLargeError(
            f"query {self.query_id} holds more than {format_size(self.limit)} of rows in the "
            f"coordinator (LAKE_MAX_GATHER_BYTES; {format_size(taken)} when it stopped): what "
            "the nodes' fragments send is gathered there and its final step runs over it in "
            "one process. Filter or aggregate more in the query, or raise "
            "LAKE_MAX_GATHER_BYTES on the coordinating node"
        )
