"""Spill files: Arrow IPC segments, compressed, each with a CRC32 checked on read.

A run gets its own directory under the spill root (``SpillManager.open_run``); it is removed
when the run ends, whether it succeeded, failed or was interrupted, so the spill root is left
as it was found. A spill file is a sequence of segments, each one record batch serialised as an
IPC stream (lz4 or zstd buffers) behind a 16-byte header: magic, length, CRC32 of the body.
Every byte written and read goes through here, so the manifest's I/O counts are our own.
"""

from __future__ import annotations

import errno
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .cancel import Cancel, cancel_check
from .errors import CorruptSpillError, EmsqrtError, SpillDiskFullError

__all__ = ["SpillFile", "SpillManager", "SpillStats"]

_MAGIC = b"EMSQ"
_HEADER = struct.Struct("<4sQI")  # magic, body length, crc32 of body


@dataclass
class SpillStats:
    """Bytes through the spill layer: on disk (compressed) and as Arrow (uncompressed)."""

    bytes_written: int = 0
    bytes_read: int = 0
    arrow_bytes_written: int = 0
    arrow_bytes_read: int = 0
    segments_written: int = 0
    files: int = 0


@dataclass
class _Segment:
    offset: int
    length: int
    rows: int
    arrow_bytes: int


@dataclass
class SpillFile:
    """One spill file: append batches, then read them back in order (or one by index)."""

    manager: SpillManager
    path: Path
    schema: pa.Schema | None = None
    segments: list[_Segment] = field(default_factory=list)
    _size: int = 0
    _handle: object | None = None

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.segments)

    @property
    def arrow_bytes(self) -> int:
        """Uncompressed Arrow bytes of everything appended (what reading it all would hold)."""
        return sum(s.arrow_bytes for s in self.segments)

    @property
    def max_segment_bytes(self) -> int:
        return max((s.arrow_bytes for s in self.segments), default=0)

    def append(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Write one segment (a table is written as one batch)."""
        self.manager.check_cancel()
        if isinstance(batch, pa.Table):
            batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else None
            if batch is None:
                return
        if batch.num_rows == 0:
            return
        if self.schema is None:
            self.schema = batch.schema
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema, options=self.manager.ipc_options) as writer:
            writer.write_batch(batch)
        body = sink.getvalue()
        header = _HEADER.pack(_MAGIC, body.size, zlib.crc32(body))
        try:
            with open(self.path, "ab") as f:
                f.write(header)
                f.write(body)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpillDiskFullError(
                    f"spill directory {self.manager.root} is full ({exc.strerror}); free space "
                    "there or point EMSQRT_SPILL_DIR / --spill-dir at a larger disk"
                ) from exc
            raise EmsqrtError(f"cannot write spill file {self.path}: {exc}") from exc
        self.segments.append(_Segment(self._size, body.size, batch.num_rows, batch.nbytes))
        self._size += _HEADER.size + body.size
        stats = self.manager.stats
        stats.bytes_written += _HEADER.size + body.size
        stats.arrow_bytes_written += batch.nbytes
        stats.segments_written += 1

    def read(self, index: int) -> pa.RecordBatch:
        """Segment ``index``, its checksum verified (``CorruptSpillError`` if it does not match)."""
        self.manager.check_cancel()
        seg = self.segments[index]
        with open(self.path, "rb") as f:
            f.seek(seg.offset)
            raw = f.read(_HEADER.size + seg.length)
        if len(raw) != _HEADER.size + seg.length:
            raise CorruptSpillError(
                f"spill segment {index} of {self.path} is truncated "
                f"({len(raw)} of {_HEADER.size + seg.length} bytes); the run cannot continue"
            )
        magic, length, crc = _HEADER.unpack_from(raw)
        body = memoryview(raw)[_HEADER.size :]
        if magic != _MAGIC or length != seg.length or zlib.crc32(body) != crc:
            raise CorruptSpillError(
                f"spill segment {index} of {self.path} failed its checksum (written "
                f"{crc:#010x}, read {zlib.crc32(body):#010x}); the disk or another process "
                "changed it: the run was stopped rather than use it"
            )
        stats = self.manager.stats
        stats.bytes_read += len(raw)
        stats.arrow_bytes_read += seg.arrow_bytes
        with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
            return reader.read_next_batch()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for i in range(len(self.segments)):
            yield self.read(i)

    def delete(self) -> None:
        """Remove the file now (its directory goes when the run ends anyway)."""
        self.path.unlink(missing_ok=True)
        self.segments = []


class SpillManager:
    """Owns one run's spill directory under ``root``; ``close()`` removes it. With
    ``cancel``, every segment written or read first checks it (``CancelledError``)."""

    def __init__(self, root: Path | str, codec: str = "lz4", cancel: Cancel | None = None) -> None:
        self.root = Path(root)
        self.check_cancel = cancel_check(cancel)
        if codec not in ("lz4", "zstd"):
            raise EmsqrtError(f"spill codec must be lz4 or zstd, got {codec!r}")
        self.codec = codec
        self.ipc_options = pa.ipc.IpcWriteOptions(compression="lz4" if codec == "lz4" else "zstd")
        self.stats = SpillStats()
        self._dir: Path | None = None
        self._counter = 0

    @property
    def directory(self) -> Path:
        """This run's own directory, made on first use."""
        if self._dir is None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                self._dir = Path(tempfile.mkdtemp(prefix="emsqrt-run-", dir=self.root))
            except OSError as exc:
                raise EmsqrtError(
                    f"cannot create a spill directory under {self.root}: {exc.strerror}; set "
                    "EMSQRT_SPILL_DIR / --spill-dir to a writable directory"
                ) from exc
        return self._dir

    def create(self, label: str) -> SpillFile:
        """A new empty spill file named after the operator that spills."""
        self._counter += 1
        safe = "".join(c if c.isalnum() else "-" for c in label)[:40]
        self.stats.files += 1
        return SpillFile(self, self.directory / f"{self._counter:06d}-{safe}.arrows")

    def close(self) -> None:
        """Remove this run's directory and everything in it."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> SpillManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
