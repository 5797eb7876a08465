"""Cutting an Arrow table into row ranges of about a target size in bytes, by each row's own
width (the stage results' merge batches and the task result files both cut this way)."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _row_bytes(table: pa.Table) -> np.ndarray:
    """Each row's bytes in Arrow: fixed widths, plus the lengths of its strings and binaries;
    other variable-width columns (lists, structs) spread evenly over their rows."""
    n = table.num_rows
    sizes = np.zeros(n, dtype=np.int64)
    for column in table.columns:
        t = column.type
        if pa.types.is_string(t) or pa.types.is_binary(t):
            sizes += pc.binary_length(column).fill_null(0).to_numpy().astype(np.int64) + 4
        elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
            sizes += pc.binary_length(column).fill_null(0).to_numpy().astype(np.int64) + 8
        else:
            try:
                sizes += max(t.bit_width // 8, 1)
            except ValueError:  # nested or other variable width
                sizes += column.nbytes // max(n, 1) + 1
    return sizes


def _groups(table: pa.Table, target: int) -> list[tuple[int, int]]:
    """Row ranges of about ``target`` bytes each (a row wider than ``target`` alone), by each
    row's own width: a run of wide rows among narrow ones is cut as finely as the wide rows
    need, where the mean width would put them all in one group."""
    n = table.num_rows
    if n == 0:
        return []
    if table.nbytes <= target:
        return [(0, n)]
    sizes = _row_bytes(table)
    starts = np.cumsum(sizes) - sizes
    window = starts // max(target, 1)  # rows that start within one target-sized window
    cuts = np.flatnonzero(np.diff(window)) + 1
    bounds = [0, *cuts.tolist(), n]
    return list(itertools.pairwise(bounds))
