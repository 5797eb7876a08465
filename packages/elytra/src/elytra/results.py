"""The tasks' results on their way to the merge: in memory up to a budget, then on disk.

Every stage's results (and every exchange's joined rows) are held as Arrow tables while the
total stays under ``budget`` bytes (half the driver's cap by default). Past it, the largest
stage's tables go to a Parquet file in the job's directory, and its later results are
appended there; the merge plan then reads that stage with a scan, which emsqrt streams under
the driver's cap. So the driver's memory does not grow with the job's data. The files'
row groups (and the batches read back) hold about one merge batch each, because a scan decodes
a row group whole under that same cap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from emsqrt import plan as lp
from platform_core import Schema

from .rowgroups import _groups

__all__ = ["StageResults"]


@dataclass
class _Held:
    schema: pa.Schema
    tables: list[pa.Table] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    """Files tasks wrote their results to: the merge reads them as they are."""
    mapped: list[pa.Table] = field(default_factory=list)
    """Arrow IPC files tasks wrote, memory-mapped (their pages are the file's, not the
    driver's heap: outside the budget); only where the merge concatenates the rows."""
    filed: int = 0
    nbytes: int = 0
    path: Path | None = None
    writer: pq.ParquetWriter | None = None
    written: int = 0


class StageResults:
    """Results by input name (a stage or an exchange), bounded in memory by ``budget``."""

    def __init__(self, directory: Path, budget: int) -> None:
        self.directory = directory
        self.budget = budget
        # the merge runs under twice the budget; its batches are a 64th of that cap
        self.group_bytes = min(max(budget // 32, 1024), 8 << 20)
        self.held: dict[str, _Held] = {}
        self.spilled_bytes = 0
        """Bytes of results on disk rather than in memory: spilled here, or tasks' files."""
        self._files = 0

    def expect(self, name: str, schema: pa.Schema) -> None:
        """Declare an input and its schema (an input no result reaches is empty)."""
        self.held.setdefault(name, _Held(schema))

    def add(self, name: str, table: pa.Table) -> None:
        h = self.held[name]
        if not table.schema.equals(h.schema):
            table = table.select(h.schema.names).cast(h.schema)
        if h.writer is not None:
            self._write(h, table)
            return
        h.tables.append(table)
        h.nbytes += table.nbytes
        while sum(x.nbytes for x in self.held.values()) > self.budget:
            biggest = max(self.held.values(), key=lambda x: x.nbytes)
            if not biggest.nbytes:
                break
            self._spill(biggest)

    def add_file(self, name: str, path: Path, nbytes: int) -> None:
        """A result a task wrote to a file (row groups the merge reads under its cap): kept
        as the file, never read here and written again."""
        h = self.held[name]
        h.files.append(path)
        h.filed += nbytes
        self.spilled_bytes += nbytes

    def add_mapped(self, name: str, table: pa.Table) -> None:
        """A task's Arrow IPC result file, memory-mapped as it is (``taskfile.read_mapped``):
        its pages stay the file's, so it is counted as filed, not held."""
        h = self.held[name]
        if not table.schema.equals(h.schema):
            table = table.select(h.schema.names).cast(h.schema)
        h.mapped.append(table)
        h.filed += table.nbytes
        self.spilled_bytes += table.nbytes

    def size(self, name: str) -> int:
        """Bytes of ``name``'s results so far (held, written or in tasks' files)."""
        h = self.held[name]
        return h.nbytes + h.written + h.filed

    def take(self, name: str) -> Iterator[pa.Table]:
        """``name``'s results (from memory, then its file), forgotten here: they move on."""
        h = self.held.pop(name)
        yield from h.tables
        yield from h.mapped
        h.tables = []
        for path in h.files:
            f = pq.ParquetFile(path)
            for i in range(f.num_row_groups):
                yield f.read_row_group(i)
            path.unlink(missing_ok=True)
        if h.writer is not None:
            h.writer.close()
            h.writer = None
        if h.path is not None:
            f = pq.ParquetFile(h.path)
            for i in range(f.num_row_groups):  # each about one merge batch (see _groups)
                yield f.read_row_group(i)
            h.path.unlink(missing_ok=True)

    def _spill(self, h: _Held) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files += 1  # never a name in use: taken inputs leave ``held``, their files stay
        h.path = self.directory / f"result{self._files}.parquet"
        h.writer = pq.ParquetWriter(h.path, h.schema, compression="none")
        tables, h.tables, h.nbytes = h.tables, [], 0
        for t in tables:
            self._write(h, t)

    def _write(self, h: _Held, table: pa.Table) -> None:
        assert h.writer is not None
        for start, stop in _groups(table, self.group_bytes):
            part = table.slice(start, stop - start)
            h.writer.write_table(part, row_group_size=max(part.num_rows, 1))
        h.written += table.nbytes
        self.spilled_bytes += table.nbytes

    def close(self) -> None:
        for h in self.held.values():
            if h.writer is not None:
                h.writer.close()
                h.writer = None

    def merge_inputs(self, merge: lp.Node) -> tuple[lp.Node, dict[str, pa.Table]]:
        """The merge plan with each spilled input read from its file, and the held tables."""
        self.close()
        tables: dict[str, pa.Table] = {}
        files: dict[str, lp.Node] = {}
        for name, h in self.held.items():
            schema = Schema.from_arrow(h.schema)
            paths = [*h.files, *([h.path] if h.path is not None else [])]
            scans: list[lp.Node] = [lp.Scan(str(p), "parquet", schema) for p in paths]
            if h.tables or h.mapped:
                tables[name] = pa.concat_tables(
                    [*h.tables, *h.mapped], promote_options="permissive"
                )
                if scans:  # the held tables beside the files, under another name
                    alias = f"{name}__held"
                    tables[alias] = tables.pop(name)
                    scans.append(lp.Input(alias, schema))
            if not scans:
                tables.setdefault(name, h.schema.empty_table())
            else:
                files[name] = scans[0] if len(scans) == 1 else lp.Union(tuple(scans))
        return _swap(merge, files), tables


def _swap(node: lp.Node, files: dict[str, lp.Node]) -> lp.Node:
    if isinstance(node, lp.Input) and node.name in files:
        return files[node.name]
    kids = lp.children(node)
    return lp.replace_children(node, tuple(_swap(k, files) for k in kids)) if kids else node
