"""A task's large result goes to a file on the driver's machine, not through the driver.

A task whose result is larger than its ``result_file_bytes`` (an exploding join, a wide
select) writes it to the Parquet file the driver named, one row group per about
``result_group_bytes``, and returns only the file: the driver reads it back row group by row
group, so its memory does not grow with a task's result. A failed write leaves no file.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .results import _groups

__all__ = ["write_result_file"]


def write_result_file(table: pa.Table, path: str, group_bytes: int) -> int:
    """Write ``table`` to ``path`` in row groups of about ``group_bytes``; returns its bytes
    in Arrow (what the driver would have held)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with pq.ParquetWriter(target, table.schema, compression="none") as writer:
            for start, stop in _groups(table, max(group_bytes, 1024)):
                part = table.slice(start, stop - start)
                writer.write_table(part, row_group_size=max(part.num_rows, 1))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return int(table.nbytes)
