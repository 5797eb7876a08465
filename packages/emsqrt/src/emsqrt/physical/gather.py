"""``take`` over a chunked table without Arrow's chunked take.

``Table.take`` on a table of many chunks concatenated whole columns first: taking 6,000 rows
of a 23 MB, 50-chunk sort run cost 11 MB of pool (measured). ``gather`` groups the indices by
chunk (numpy, vectorised), takes from each chunk, and restores the order on the small result.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["gather", "release_memory"]


def gather(table: pa.Table, indices: pa.Array | np.ndarray) -> pa.Table:
    """``table.take(indices)`` whose memory is that of the result, not of the table."""
    idx = indices if isinstance(indices, np.ndarray) else indices.to_numpy(zero_copy_only=False)
    idx = idx.astype(np.int64, copy=False)
    batches = [b for b in table.to_batches() if b.num_rows]
    if len(batches) <= 1:
        return table.take(pa.array(idx))
    offsets = np.cumsum([0] + [b.num_rows for b in batches])
    chunk = np.searchsorted(offsets, idx, side="right") - 1
    order = np.argsort(chunk, kind="stable")
    by_chunk, sorted_idx = chunk[order], idx[order]
    starts = np.flatnonzero(np.diff(by_chunk)) + 1
    pieces = []
    for part in np.split(np.arange(len(sorted_idx)), starts):
        if len(part) == 0:
            continue
        c = int(by_chunk[part[0]])
        pieces.append(batches[c].take(pa.array(sorted_idx[part] - offsets[c])))
    grouped = pa.Table.from_batches(pieces, schema=table.schema).combine_chunks()
    if np.all(order[:-1] < order[1:]):
        return grouped  # already in the requested order
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return grouped.take(pa.array(inverse))


def release_memory() -> None:
    """Hand freed pool memory back to the OS: Arrow's allocators keep freed pages resident,
    so after a large batch of work (a spilled run, a flushed partition buffer) process RSS
    would stay at the high-water mark of everything ever freed."""
    pa.default_memory_pool().release_unused()
