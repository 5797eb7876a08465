"""Finished jobs' results on disk: one Arrow IPC file per job, bounded, expiring, paged.

Layout under ``root`` (``<home>/results/elytra`` by default)::

    <job id>/result.arrow   the rows (Arrow IPC file format: random access by batch)
    <job id>/meta.json      owner, rows, bytes, schema, each batch's rows, created, expires
    .writing/<job id>/      a result being written, locked while its job runs (``JobDir``)

A result is written into ``.writing/<id>`` and renamed into place whole when its job
succeeds, so a reader sees all of it or nothing; a failed or cancelled job's directory is
removed, and one a killed process left is swept at the next start (its lock died with it).
Each result is bounded by ``max_bytes``, and with its owner's other results (stored, or
being written by their running jobs) by ``quota_bytes``;
it expires ``ttl_seconds`` after it was written. Reads go batch by batch (``StoredResult``),
so serving a page never loads the whole result.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import ResultGoneError, ResultTooLargeError
from .spilldirs import JobDir, sweep

__all__ = ["ResultStore", "ResultWriter", "StoredResult"]

STORED_BATCH_BYTES = 8 << 20
"""The most one stored batch holds (rows wider than it are stored one per batch)."""
RESULT = "result.arrow"
META = "meta.json"
WRITING = ".writing"

_HOW = (
    'submit it with a dataset to write to instead (POST /api/jobs with "write": "<name>", '
    "elytra run --write <name>, or pipeline.write_dataset(name)), which has no such limit, "
    "or narrow it (filter, select, limit)"
)


@dataclass(frozen=True)
class StoredResult:
    """A stored result: its schema, size and batches, read from disk on demand.

    The file is opened once, when the result is opened: a delete or an expiry that removes
    it meanwhile does not cut a page or a stream being served (the open file stays whole
    until the reader lets it go); a reader that comes after gets ``ResultGoneError``."""

    path: Path
    meta: dict[str, Any]
    source: Any = None
    """The open ``result.arrow`` (a ``pyarrow.OSFile``); None for a result just written."""

    def _reader(self) -> pa.ipc.RecordBatchFileReader:
        if self.source is None:
            object.__setattr__(self, "source", pa.OSFile(str(self.path / RESULT)))
        return pa.ipc.open_file(self.source)

    @property
    def num_rows(self) -> int:
        return int(self.meta["rows"])

    @property
    def nbytes(self) -> int:
        return int(self.meta["bytes"])

    @property
    def owner(self) -> str | None:
        return self.meta.get("owner")

    def schema(self) -> pa.Schema:
        return self._reader().schema

    def batches(self, offset: int = 0, limit: int | None = None) -> Iterator[pa.RecordBatch]:
        """Rows ``offset`` to ``offset + limit`` (to the end when None), one stored batch at a
        time: only the batches that hold them are read, each freed before the next."""
        counts = np.asarray(self.meta["batches"], dtype=np.int64)
        ends = np.cumsum(counts)
        stop = int(ends[-1]) if len(ends) else 0
        if limit is not None:
            stop = min(stop, offset + limit)
        first = int(np.searchsorted(ends, offset, side="right"))
        reader = self._reader()
        for i in range(first, len(counts)):
            begin = int(ends[i] - counts[i])
            if begin >= stop:
                break
            batch = reader.get_batch(i)
            lo, hi = max(offset - begin, 0), min(stop - begin, batch.num_rows)
            yield batch.slice(lo, hi - lo)


class ResultWriter:
    """Writes one job's rows into ``.writing/<id>`` (``write(batch)``), refusing to pass its
    limit; ``commit()`` moves it into place, ``abort()`` removes it."""

    def __init__(self, store: ResultStore, job_id: str, owner: str | None) -> None:
        self.store, self.job_id, self.owner = store, job_id, owner
        # stored now; the owner's other writers count as they go, and what they commit after
        # this writer started counts from then on (ResultStore.others)
        self._used = store.used(owner)
        self._since = store.committed(owner)
        self.limit, self.limit_name = store.max_bytes, store.limit_name
        self.size = 0
        self._dir = JobDir(store.root / WRITING, job_id)
        self.path = self._dir.acquire()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._file = pa.OSFile(str(self.path / RESULT), "wb")
        except BaseException:
            self._dir.release()
            raise
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self.rows = 0
        self.counts: list[int] = []
        self.alive = True
        """False once committed or aborted."""
        store.live(self, True)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self._writer = pa.ipc.new_file(self._file, batch.schema)
        if batch.num_rows:
            # stored in pieces of at most STORED_BATCH_BYTES: a reader loads one stored batch
            # at a time, so that bounds what serving any page or stream holds
            width = max(batch.nbytes // batch.num_rows, 1)
            step = max(STORED_BATCH_BYTES // width, 1)
            for start in range(0, batch.num_rows, step):
                piece = batch.slice(start, step)
                self._writer.write_batch(piece)
                self.rows += piece.num_rows
                self.counts.append(piece.num_rows)
        self.size = self._file.tell()
        if self.size > self.limit:
            raise self._over()
        self._check_quota()

    def _check_quota(self) -> None:
        others = self.store.others(self.owner, self, self._since)
        if self._used + others + self.size > self.store.quota_bytes:
            raise self._over(others)

    def _over(self, others: int | None = None) -> ResultTooLargeError:
        mib = self.limit / (1 << 20)
        if others is not None:
            quota, used = self.store.quota_bytes, self._used + others
            self.limit_name, self.limit = "ELYTRA_RESULT_QUOTA_BYTES", quota
            what = (
                f"the result passed {self.owner!r}'s quota of stored results "
                f"({quota / (1 << 20):.1f} MiB, ELYTRA_RESULT_QUOTA_BYTES; "
                f"{used / (1 << 20):.1f} MiB stored or being written by other jobs); "
                "delete old results (DELETE /api/jobs/{id}/result) or "
            )
        else:
            what = f"the result passed the limit per job of {mib:.1f} MiB ({self.limit_name}); "
        return ResultTooLargeError(
            what + _HOW, limit=self.limit_name, limit_bytes=self.limit, rows_written=self.rows
        )

    def commit(self, schema: pa.Schema) -> StoredResult:
        """Close the file and move it into place; returns it as stored."""
        if self._writer is None:
            self._writer = pa.ipc.new_file(self._file, schema)
        self._writer.close()
        self._file.close()
        size = (self.path / RESULT).stat().st_size
        self.size = size
        if size > self.limit:
            raise self._over()
        self._check_quota()  # jobs of the same owner that finished meanwhile count now
        now = time.time()
        meta = {
            "job_id": self.job_id,
            "owner": self.owner,
            "rows": self.rows,
            "bytes": size,
            "batches": self.counts,
            "created": now,
            "expires": now + self.store.ttl_seconds,
        }
        (self.path / META).write_text(json.dumps(meta))
        target = self.store.root / self.job_id
        os.replace(self.path, target)  # the whole directory at once (both on ``root``)
        self.alive = False
        self.store.live(self, False, committed=size)
        self._dir.release()
        return StoredResult(target, meta)

    def abort(self) -> None:
        """Remove what was written (a failed, cancelled or over-limit job); after a commit,
        nothing (the result is in place)."""
        if not self.alive:
            return
        self.alive = False
        self.store.live(self, False)
        try:
            if self._writer is not None:
                self._writer.close()
        except (OSError, pa.ArrowException):
            pass
        self._file.close()
        self._dir.release()


class ResultStore:
    """The stored results under ``root`` and their bounds."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        quota_bytes: int,
        ttl_seconds: float,
        limit_name: str = "ELYTRA_MAX_RESULT_BYTES",
    ) -> None:
        self.root = root
        self.max_bytes, self.quota_bytes, self.ttl_seconds = max_bytes, quota_bytes, ttl_seconds
        self.limit_name = limit_name
        """The setting ``max_bytes`` comes from, named in the error of a result past it."""
        self.holder: str | None = None
        """This platform's node id (the cluster reaches its results through it), once known."""
        self._live: set[ResultWriter] = set()
        self._committed: dict[str | None, int] = {}
        """Bytes each owner's writers committed since this store opened (only ever grows)."""
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)

    def live(self, writer: ResultWriter, writing: bool, committed: int = 0) -> None:
        """``writer`` starts (or stops) counting against its owner's quota as it writes; a
        commit moves its ``committed`` bytes to the owner's committed count in one step."""
        with self._lock:
            (self._live.add if writing else self._live.discard)(writer)
            if committed:
                self._committed[writer.owner] = self._committed.get(writer.owner, 0) + committed

    def committed(self, owner: str | None) -> int:
        with self._lock:
            return self._committed.get(owner, 0)

    def others(self, owner: str | None, but: ResultWriter, since: int) -> int:
        """Bytes ``owner``'s other results hold beyond what ``but`` found stored when it
        started: being written now, or committed since (committed as ``since``)."""
        with self._lock:
            writing = sum(w.size for w in self._live if w.owner == owner and w is not but)
            return writing + self._committed.get(owner, 0) - since

    def writer(self, job_id: str, owner: str | None) -> ResultWriter:
        return ResultWriter(self, job_id, owner)

    def _meta(self, job_id: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.root / job_id / META).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def open(self, job_id: str) -> StoredResult:
        """The job's stored result; ``ResultGoneError`` when it expired or was deleted."""
        meta = self._meta(job_id)
        if meta is None:
            raise ResultGoneError(
                f"the result of job {job_id} is no longer stored (deleted, or it expired); "
                "run the job again"
            )
        if meta["expires"] <= time.time():
            self.delete(job_id)
            raise ResultGoneError(
                f"the result of job {job_id} expired (results are kept "
                f"ELYTRA_RESULT_TTL_SECONDS = {self.ttl_seconds:g} s); run the job again"
            )
        try:  # opened now: a delete from here on cannot cut what this reader serves
            source = pa.OSFile(str(self.root / job_id / RESULT))
        except (FileNotFoundError, pa.ArrowIOError):
            raise ResultGoneError(
                f"the result of job {job_id} is no longer stored (deleted, or it expired); "
                "run the job again"
            ) from None
        return StoredResult(self.root / job_id, meta, source)

    def delete(self, job_id: str) -> bool:
        """Remove a stored result; False when there was none."""
        path = self.root / job_id
        if not path.exists():
            return False
        shutil.rmtree(path, ignore_errors=True)
        return True

    def ids(self) -> list[str]:
        """The jobs with a result directory here, committed or not (what a killed run left
        included): the candidates a restarted platform checks against its cluster."""
        return sorted(
            e.name
            for e in os.scandir(self.root)
            if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
        )

    def _all(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for job_id in self.ids():
            meta = self._meta(job_id)
            if meta is not None:
                yield job_id, meta

    def used(self, owner: str | None) -> int:
        """Bytes of ``owner``'s results stored now (expired ones not counted)."""
        now = time.time()
        return sum(
            int(m["bytes"])
            for _, m in self._all()
            if m.get("owner") == owner and m["expires"] > now
        )

    def expire(self) -> int:
        """Remove expired results and what killed writers left; returns how many results."""
        now = time.time()
        gone = [job_id for job_id, m in self._all() if m["expires"] <= now]
        for job_id in gone:
            self.delete(job_id)
        sweep(self.root / WRITING)
        return len(gone)
