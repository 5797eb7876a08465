"""The SQL route's answers on disk: a query's rows go from the driver's merge into a file,
and the route streams them from there batch by batch, so no answer is held whole in memory.

An answer lives under ``<spill dir>/sql-answers/<job id>`` (a :class:`ResultStore` of its own:
written into ``.writing`` and renamed into place whole, so a failed or cancelled query leaves
nothing) only while the route streams it: it is removed once the stream ends, fails or is cut
off, and what a killed platform left is removed at its next start. Its bound is the lake's
``LAKE_MAX_STREAM_BYTES``, which caps the stream anyway; it never counts against a user's
stored job results (``ELYTRA_RESULT_QUOTA_BYTES``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from .resultstore import ResultStore, StoredResult

__all__ = ["ANSWERS_DIR", "ANSWER_TTL_SECONDS", "StoredAnswer", "open_answers"]

ANSWERS_DIR = "sql-answers"
ANSWER_TTL_SECONDS = 6 * 3600.0
"""An answer a stream never let go (a bug, or a reader that vanished without a close) is
removed this long after it was written; a stream already reading it keeps its open file."""


def open_answers(spill_dir: Path, max_bytes: int) -> ResultStore:
    """The answers' store under ``spill_dir``, emptied: an answer outlives no platform run."""
    root = spill_dir / ANSWERS_DIR
    shutil.rmtree(root, ignore_errors=True)
    return ResultStore(
        root,
        max_bytes=max_bytes,
        quota_bytes=max_bytes,
        ttl_seconds=ANSWER_TTL_SECONDS,
        limit_name="LAKE_MAX_STREAM_BYTES",
    )


class StoredAnswer:
    """One query's answer on disk, as the lake's ``SQLAnswer``: its schema, its batches (one
    stored batch in memory at a time) and ``close()``, which removes it."""

    def __init__(self, store: ResultStore, job_id: str) -> None:
        self._store, self._job_id = store, job_id
        self._stored: StoredResult | None = store.open(job_id)
        self.schema: pa.Schema = self._stored.schema()

    def batches(self) -> Iterator[pa.RecordBatch]:
        stored = self._stored
        if stored is None:
            return
        yield from stored.batches()

    def close(self) -> None:
        """Remove the answer (idempotent); a reader mid-batch keeps its open file."""
        stored, self._stored = self._stored, None
        if stored is None:
            return
        if stored.source is not None:
            stored.source.close()
        self._store.delete(self._job_id)
