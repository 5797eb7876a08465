"""A task's large result goes to a file on the driver's machine, not through the driver.

A task given a ``result_file`` takes its plan's batches as they are made (the DuckDB kernel
streams them): it holds them while they are under ``result_file_bytes``, then writes them
and every later one to that Parquet file, one row group per about ``result_group_bytes``,
and returns only the file. Neither the worker nor the driver holds a result that explodes
(a many-to-many join): the driver reads the file back row group by row group. A failed
write leaves no file.

With ``format="arrow"`` the file is an Arrow IPC file instead, written batch by batch as
DuckDB hands them over (no encoding: a memory copy), which the driver memory-maps (no
decoding, no copy): used where the merge only concatenates the tasks' rows (a group-by
exchanged by rereading, whose partitions' groups are disjoint), so those rows go from the
task's statement to the job's result without being encoded or decoded on the way.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .rowgroups import _groups

__all__ = ["ResultSpool", "read_mapped"]


def read_mapped(path: str | Path) -> pa.Table:
    """An Arrow IPC result file as a table over its memory-mapped pages (no copy; the
    mapping outlives the file's removal)."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


class ResultSpool:
    """``add(batch)`` as the plan makes them; then ``held()`` (the rows, if they stayed
    small) or ``close()`` (the file, if they did not); ``abort()`` on failure."""

    def __init__(
        self, path: str, threshold: int, group_bytes: int, format: str = "parquet"
    ) -> None:
        self.target = path
        self.format = format
        self.threshold = threshold
        self.group_bytes = max(group_bytes, 1024)
        self.batches: list[pa.RecordBatch] = []
        self.held_bytes = 0
        self.nbytes = 0
        self.rows = 0
        self.path: str | None = None
        self._writer: pq.ParquetWriter | pa.ipc.RecordBatchFileWriter | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self.nbytes += batch.nbytes
        if self._writer is not None:
            self._write(batch)
            return
        self.batches.append(batch)
        self.held_bytes += batch.nbytes
        if self.held_bytes > self.threshold:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            self.path = self.target
            if self.format == "arrow":
                self._writer = pa.ipc.new_file(self.target, batch.schema)
            else:
                self._writer = pq.ParquetWriter(
                    self.target,
                    batch.schema,
                    compression="none",
                    use_dictionary=False,  # read once, whole, by the merge: encoding costs only
                    write_statistics=False,
                )
            held, self.batches, self.held_bytes = self.batches, [], 0
            for b in held:
                self._write(b)

    def _write(self, batch: pa.RecordBatch) -> None:
        assert self._writer is not None
        if isinstance(self._writer, pa.ipc.RecordBatchFileWriter):
            self._writer.write_batch(batch)  # DuckDB's batches: about a 64th of its limit
            return
        table = pa.Table.from_batches([batch])
        for start, stop in _groups(table, self.group_bytes):
            part = table.slice(start, stop - start)
            self._writer.write_table(part, row_group_size=max(part.num_rows, 1))

    def held(self, schema: pa.Schema) -> pa.Table:
        """The rows held (all of them unless they went to the file); ``schema`` when none."""
        return pa.Table.from_batches(self.batches) if self.batches else schema.empty_table()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def abort(self) -> None:
        self.close()
        if self.path is not None:
            Path(self.path).unlink(missing_ok=True)
