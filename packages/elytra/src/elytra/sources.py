"""Where a pipeline's rows come from: a lake dataset's chunks, files, or an Arrow table.

A source is cut into parts (one task each): a lake chunk, or a group of small chunks up to
``task_bytes``; a file. An Arrow table handed in by the caller is not cut: it is already in
the driver's memory, so the stages over it run there.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from emsqrt import plan as lp
from emsqrt.planning import decoded
from platform_core import Schema, infer_schema, new_id

from .chunkrefs import chunk_ref
from .errors import PipelineError

__all__ = [
    "ArrowSource",
    "FileSource",
    "LakeSource",
    "Part",
    "Source",
    "balance_parts",
    "split_row_groups",
]


@dataclass(frozen=True)
class Part:
    """The files one task reads, and their size."""

    files: tuple[str, ...]
    bytes: int
    row_groups: tuple[tuple[int, int] | None, ...] = ()
    """For each file, the Parquet row groups ``(start, stop)`` the task reads (None: all of
    it); empty when it reads every file whole. A source smaller than the workers' count of
    parts is split this way (:func:`split_row_groups`)."""

    def ranges(self) -> tuple[tuple[int, int] | None, ...]:
        return self.row_groups or (None,) * len(self.files)


@dataclass(frozen=True)
class Source:
    """Base of the sources; ``name`` is the plan's ``Input`` leaf."""

    name: str
    schema: pa.Schema
    partitions: int | None = None
    """Tasks to cut this source into (``repartition``); None: by ``task_bytes``."""

    def leaf(self) -> lp.Input:
        # categorical columns are their values to a pipeline: scans decode them
        return lp.Input(self.name, Schema.from_arrow(decoded(self.schema)))

    def parts(self, task_bytes: int) -> list[Part]:
        return []

    def rows(self) -> int | None:
        """The rows a full read of this source gives (a job's ``rows_in``), when known
        without reading it; None otherwise (CSV and JSON files)."""
        return None

    def scan(self, path: str, row_groups: tuple[int, int] | None = None) -> lp.Node:
        raise NotImplementedError

    def splittable(self) -> bool:
        """Whether a part may be cut by Parquet row groups (Parquet files only)."""
        return False

    def describe(self) -> str:
        return self.name


def _group(sized: list[tuple[str, int]], task_bytes: int) -> list[Part]:
    """Consecutive files grouped up to ``task_bytes`` each (a big one alone)."""
    parts: list[Part] = []
    files: list[str] = []
    total = 0
    for path, size in sized:
        if files and total + size > task_bytes:
            parts.append(Part(tuple(files), total))
            files, total = [], 0
        files.append(path)
        total += size
    if files:
        parts.append(Part(tuple(files), total))
    return parts


def split_row_groups(
    parts: list[Part],
    tasks: int,
    min_bytes: int,
    locate: Callable[[str], str] = lambda f: f,
) -> list[Part]:
    """``parts`` cut by Parquet row groups into about ``tasks`` parts of balanced size, so
    that a source of fewer parts than workers (one 18 MB chunk, one file) still gives every
    worker a task; ``parts`` as they are when there are already ``tasks`` of them, when they
    hold less than ``min_bytes`` (a split costs each extra task its fixed cost: below that it
    does not pay), or when their files have too few row groups. Only the footers are read
    (a few KiB a file, and only for a source of fewer parts than ``tasks``), at
    ``locate(file)``: a lake chunk a task names by hash is read where this node keeps it."""
    total = sum(p.bytes for p in parts)
    if len(parts) >= tasks or total < min_bytes:
        return parts
    return _cut_row_groups(parts, tasks, locate)


def balance_parts(
    parts: list[Part],
    workers: int,
    most_bytes: int,
    locate: Callable[[str], str] = lambda f: f,
) -> list[Part]:
    """``parts`` (at least ``workers`` of them) cut again by Parquet row groups so that each
    worker gets the same bytes, in as few tasks as keep each at most ``most_bytes``: ``n``
    per worker, ``n`` = ceil(total / (workers * most_bytes)).

    Grouped by ``task_bytes`` alone, G1's seven chunks were parts of 60, 60, 60 and 11 MB:
    one worker read 120 MB while the other read 71, so a short question took the time of
    120 MB where 96 would do. Each task also costs about 10 ms besides its scan (planning its
    statement, DuckDB's start, the result's trip), a third of a 25 ms task over 48 MB, so
    fewer, larger tasks answer sooner, up to what the task's memory allows (the driver's
    ``most_bytes``). Parts are kept as they are when they already are that many and even
    (within a tenth), when there are four or more per worker (the scheduler evens those
    out), or when their files will not cut."""
    if workers < 2 or not parts or len(parts) >= 4 * workers:
        return parts
    total = sum(p.bytes for p in parts)
    tasks = workers * max(1, -(-total // max(1, workers * most_bytes)))
    loads = [0] * workers
    for part in parts:  # as the scheduler hands them out: to the first worker free
        loads[loads.index(min(loads))] += part.bytes
    if len(parts) == tasks and max(loads) * workers <= total * 1.1:
        return parts
    return _cut_row_groups(parts, tasks, locate)


_GROUP_SIZES: dict[tuple[str, int, int], tuple[int, ...]] = {}
"""Each file's row groups' compressed bytes by (path, size, modification time): a lake chunk
never changes, so a job asked again cuts its parts without reading the footers again."""


def _group_sizes(path: str) -> tuple[int, ...] | None:
    """The compressed bytes of each Parquet row group of ``path`` (at least 1 each), from
    its footer; None when it cannot be read (not here yet, or not Parquet)."""
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        if key in _GROUP_SIZES:
            return _GROUP_SIZES[key]
        meta = pq.read_metadata(path)
    except (OSError, pa.ArrowException):
        return None
    sizes = tuple(
        max(sum(g.column(j).total_compressed_size for j in range(g.num_columns)), 1)
        for g in (meta.row_group(i) for i in range(meta.num_row_groups))
    )
    if len(_GROUP_SIZES) >= 4096:
        _GROUP_SIZES.pop(next(iter(_GROUP_SIZES)))
    _GROUP_SIZES[key] = sizes
    return sizes


def _cut_row_groups(parts: list[Part], tasks: int, locate: Callable[[str], str]) -> list[Part]:
    """``parts``' row groups, in order, into at most ``tasks`` parts of about the same
    compressed bytes; ``parts`` as they are when a file cannot be read here or there are no
    more row groups than parts."""
    total = sum(p.bytes for p in parts)
    units: list[tuple[str, int, int]] = []  # (file, row group, compressed bytes), in order
    groups_of: dict[str, int] = {}
    for part in parts:
        for path, rg in zip(part.files, part.ranges(), strict=True):
            sizes = _group_sizes(locate(path))
            if sizes is None:
                return parts  # not here yet, or not Parquet: the task says what is wrong
            groups_of[path] = len(sizes)
            first, stop = rg or (0, len(sizes))
            units += [(path, i, sizes[i]) for i in range(first, stop)]
    if len(units) <= len(parts):
        return parts
    n = min(tasks, len(units))
    whole = sum(u[2] for u in units)
    groups: list[list[tuple[str, int, int]]] = [[] for _ in range(n)]
    done = 0
    for unit in units:  # each row group to the part its middle byte falls in
        groups[min(n - 1, (2 * done + unit[2]) * n // (2 * whole))].append(unit)
        done += unit[2]
    out: list[Part] = []
    for group in (g for g in groups if g):
        files: list[str] = []
        ranges: list[tuple[int, int] | None] = []
        for path, i, _ in group:
            if files and files[-1] == path and ranges[-1] is not None and ranges[-1][1] == i:
                ranges[-1] = (ranges[-1][0], i + 1)
            else:
                files.append(path)
                ranges.append((i, i + 1))
        size = sum(u[2] for u in group) * total // whole
        # a file read whole is named without a range: DuckDB reads such files in one scan
        whole_files = [r == (0, groups_of[f]) for f, r in zip(files, ranges, strict=True)]
        ranges = [None if w else r for w, r in zip(whole_files, ranges, strict=True)]
        out.append(Part(tuple(files), size, () if all(whole_files) else tuple(ranges)))
    return out


def _split(sized: list[tuple[str, int]], n: int) -> list[Part]:
    """``n`` groups of consecutive files (fewer if there are fewer files), sizes balanced."""
    total = sum(size for _, size in sized)
    return _group(sized, max(1, -(-total // max(1, n)))) if sized else []


@dataclass(frozen=True)
class LakeSource(Source):
    """A version of a lake dataset: its chunks as Parquet files on this node."""

    dataset: str = ""
    version: int = 0
    chunks: tuple[tuple[str, str, int], ...] = ()
    """(sha256, path, bytes) of each chunk, in manifest order; path "" when the chunk is not
    on this node (the driver fetches it from a replica for the job, see ``localized``)."""
    origin: str = ""
    row_count: int | None = None
    """The version's rows, from its manifest."""
    int_ranges: tuple[tuple[tuple[str, int, int], ...], ...] = ()
    """For each chunk (as ``chunks``), ``(column, min, max)`` of its integer columns, from the
    manifest's statistics; empty when unknown."""

    def rows(self) -> int | None:
        return self.row_count

    def key_range(self, files: Sequence[str], column: str) -> tuple[int, int] | None:
        """The smallest and largest value of integer ``column`` in the chunks ``files`` name
        (their paths here, or ``lake-chunk:<sha>``), or None when a chunk's is unknown."""
        if len(self.int_ranges) != len(self.chunks):
            return None
        index = {path: i for i, (_, path, _) in enumerate(self.chunks) if path}
        index |= {chunk_ref(sha): i for i, (sha, _, _) in enumerate(self.chunks)}
        lo = hi = None
        for f in files:
            i = index.get(f)
            found = (
                None
                if i is None
                else next(((a, b) for c, a, b in self.int_ranges[i] if c == column), None)
            )
            if found is None:
                return None
            lo = found[0] if lo is None else min(lo, found[0])
            hi = found[1] if hi is None else max(hi, found[1])
        return None if lo is None or hi is None else (lo, hi)

    def missing(self) -> list[str]:
        return [sha for sha, path, _ in self.chunks if not path]

    def localized(self, paths: dict[str, str]) -> LakeSource:
        """This source reading its chunks from ``paths`` (sha -> file) where given: fetched
        ones, or pinned copies of this node's."""
        chunks = tuple((sha, paths.get(sha, path), n) for sha, path, n in self.chunks)
        return replace(self, chunks=chunks)

    def parts(self, task_bytes: int) -> list[Part]:
        sized = [(path, size) for _, path, size in self.chunks]
        if self.partitions:
            return _split(sized, self.partitions)
        return _group(sized, task_bytes)

    def scan(self, path: str, row_groups: tuple[int, int] | None = None) -> lp.Node:
        return lp.Scan(path, "parquet", Schema.from_arrow(self.schema), row_groups=row_groups)

    def splittable(self) -> bool:
        return True

    def describe(self) -> str:
        return f"dataset {self.dataset!r} v{self.version} ({len(self.chunks)} chunks)"


@dataclass(frozen=True)
class FileSource(Source):
    """CSV, JSON lines or Parquet files (a path or a glob), read with one schema."""

    paths: tuple[str, ...] = ()
    format: str = "parquet"
    delimiter: str = ","
    run_first: bool = False
    """A join side the job ran first (``prerun.py``): already reduced from what it read."""

    @classmethod
    def open(cls, pattern: str | os.PathLike[str], format: str, delimiter: str = ",") -> FileSource:
        text = str(pattern)
        paths = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        paths = [p for p in paths if Path(p).is_file()]
        if not paths:
            raise PipelineError(
                f"no {format} file matches {text!r}; give an existing file or a glob such as "
                f"'data/*.{format}'"
            )
        if format == "parquet":
            try:
                schema = pq.read_schema(paths[0])
            except (OSError, pa.ArrowException) as exc:
                raise PipelineError(f"{paths[0]} is not a readable Parquet file: {exc}") from None
        else:
            schema = infer_schema(paths[0], format=format).to_arrow()
        return cls(
            f"files:{new_id()}", schema, paths=tuple(paths), format=format, delimiter=delimiter
        )

    def rows(self) -> int | None:
        """Parquet files: the row counts of their footers (read now, a few KiB each)."""
        if self.format != "parquet":
            return None
        try:
            return sum(int(pq.read_metadata(p).num_rows) for p in self.paths)
        except (OSError, pa.ArrowException):
            return None  # the task that reads it says what is wrong

    def parts(self, task_bytes: int) -> list[Part]:
        sized = [(p, os.path.getsize(p)) for p in self.paths]
        if self.partitions:
            return _split(sized, self.partitions)
        return [Part((p,), n) for p, n in sized]

    def scan(self, path: str, row_groups: tuple[int, int] | None = None) -> lp.Node:
        fmt = "jsonl" if self.format == "json" else self.format
        return lp.Scan(
            path,
            fmt,  # type: ignore[arg-type]
            Schema.from_arrow(self.schema),
            delimiter=self.delimiter,
            row_groups=row_groups,
        )

    def splittable(self) -> bool:
        return self.format == "parquet"

    def describe(self) -> str:
        return f"{len(self.paths)} {self.format} file(s) {self.paths[0]!r}..."


@dataclass(frozen=True)
class ArrowSource(Source):
    """A table the caller handed in; its stages run in the driver."""

    table: pa.Table = field(default_factory=lambda: pa.table({}))

    def describe(self) -> str:
        return f"an Arrow table of {self.table.num_rows} rows"

    def rows(self) -> int | None:
        return int(self.table.num_rows)
