"""The consumer side: ``StrandView`` waits for commits, reads batches and acknowledges them.

Each view registers a consumer at the current commit position when it attaches (more with
``register_consumer``); the slowest live consumer gates the writer, and a consumer whose
process dies is evicted by the writer. Data handed out -- Arrow arrays from ``read_batch``,
views from a cursor -- is zero-copy and stays valid until the view acknowledges past it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import pyarrow as pa

from strand import blocks
from strand._intern import InternTable
from strand._ring import Ring
from strand.cursor import RecordCursor
from strand.errors import StrandStateError, StrandValueError
from strand.layout import CTRL, StrandMap, read_strand_header
from strand.segment import Segment

__all__ = ["StrandView"]


def _release_all(ring: Ring, tokens: list[int]) -> None:
    """Finalizer of a view dropped without ``close()``: release its consumers."""
    if not ring.segment.closed:
        for token in tokens:
            ring.release(token)


class StrandView:
    """Reads a strand. ``intern_table`` (optional) replaces the shared utf8_ref table."""

    def __init__(
        self,
        strand: Segment | str,
        intern_table: list[str] | None = None,
        schema: Any = None,
        *,
        register: bool = True,
    ) -> None:
        self._owns_segment = isinstance(strand, str)
        self.segment = Segment.attach(strand) if isinstance(strand, str) else strand
        self.map: StrandMap = read_strand_header(self.segment.buf, schema)
        self.schema = self.map.schema
        self._ring = Ring(self.segment, self.map)
        self._buf = self.segment.buf
        self._intern = InternTable(self._ring)
        self._arrow_schema = self.schema.to_arrow()
        self._has_refs = any(f.type.kind == "utf8_ref" for f in self.schema)
        # IPC blocks are read with the user's schema when no column needs wrapping
        plain = self.schema.ipc_schema.types == self._arrow_schema.types
        self._ipc_read_schema = self._arrow_schema if plain else self.schema.ipc_schema
        if intern_table is not None:
            self.update_intern_table(intern_table)
        self._tokens: list[int] = []
        self._released = 0  # records below this may be overwritten: never read them
        self._next_batch = 0
        self._epoch = self._ring.load(CTRL.EPOCH)
        self._closed = False
        # a view dropped without close() must not gate the writer for ever
        self._finalizer = weakref.finalize(self, _release_all, self._ring, self._tokens)
        self.token: int | None = self.register_consumer() if register else None
        self._update_released()

    # -- state --------------------------------------------------------------------------

    @property
    def committed_count(self) -> int:
        """Records the writer has published (safe to read)."""
        return self._ring.load(CTRL.COMMIT_SEQ)

    @property
    def status(self) -> str:
        """``initializing``, ``streaming``, ``eos`` or ``error`` (also when the writer died)."""
        return self._ring.status_name()

    @property
    def epoch(self) -> int:
        """Incremented by every ``reset()``."""
        return self._ring.load(CTRL.EPOCH)

    @property
    def position(self) -> int:
        """Where this view's own consumer has acknowledged up to."""
        return self._ring.position(self._own_token())

    @property
    def consumers(self) -> int:
        """Live registered consumers across all processes."""
        return self._ring.consumers()

    def _check_open(self) -> None:
        if self._closed or self.segment.closed:
            raise StrandStateError("this view is closed")

    def _sync_epoch(self) -> bool:
        """Notice a ``reset()``: forget cached positions; True if the strand was reset."""
        epoch = self._ring.load(CTRL.EPOCH)
        if epoch == self._epoch:
            return False
        self._epoch = epoch
        self._next_batch = 0
        self._update_released()
        return True

    def _own_token(self, token: int | None = None) -> int:
        if token is not None:
            return token
        if self.token is None:
            raise StrandStateError("this view has no consumer; call register_consumer()")
        return self.token

    # -- consumers ------------------------------------------------------------------------

    def register_consumer(self) -> int:
        """Register a consumer at the current commit position; returns its token."""
        token = self._ring.register()
        self._tokens.append(token)
        self._update_released()
        return token

    def release_consumer(self, token: int) -> None:
        """Release a consumer; a stalled writer waiting on it wakes at once."""
        self._ring.release(token)
        if token in self._tokens:
            self._tokens.remove(token)
        if token == self.token:
            self.token = None
        self._update_released()

    def acknowledge_read(self, upto: int, token: int | None = None) -> None:
        """Release records below ``upto`` for this consumer (monotonic; wakes the writer)."""
        self._check_open()
        if self._sync_epoch():
            raise StrandStateError(
                "the strand was reset since this view last read; the acknowledgement is for the "
                "old stream (read again from 0)"
            )
        committed = self.committed_count
        if not isinstance(upto, int) or upto < 0 or upto > committed:
            raise StrandValueError(
                f"acknowledge_read({upto!r}) is beyond the {committed} committed records"
            )
        self._ring.acknowledge(self._own_token(token), upto)
        self._update_released()

    def _update_released(self) -> None:
        ring = self._ring
        positions = []
        for token in self._tokens:
            try:
                positions.append(ring.position(token))
            except StrandStateError:
                continue
        self._released = min(positions) if positions else ring.load(CTRL.COMMIT_SEQ)

    # -- waiting --------------------------------------------------------------------------

    def wait_for_commit(self, after: int, timeout: float = 5.0) -> int:
        """Block until more than ``after`` records are committed (or the stream ended).

        Returns the committed count; ``StrandTimeoutError`` after ``timeout`` seconds.
        """
        self._check_open()
        self._sync_epoch()
        return self._ring.wait_commit(after, timeout)

    async def wait_for_commit_async(self, after: int, timeout: float = 5.0) -> int:
        """``wait_for_commit`` for asyncio: waits in its own thread (so many concurrent waits
        never queue behind each other in an executor); cancelling the task stops the wait."""
        import asyncio  # here: asyncio costs 13 ms at `import strand`, and only this uses it

        self._check_open()
        self._sync_epoch()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        cancel = threading.Event()

        def settle(result: int | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        def wait() -> None:
            try:
                count = self._ring.wait_commit(after, timeout, cancel)
            except BaseException as exc:  # delivered to the awaiting task
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, count, None)

        threading.Thread(target=wait, name="strand-wait", daemon=True).start()
        try:
            return await future
        finally:
            cancel.set()

    def signal_abort(self) -> None:
        """Ask the producer to stop: its next write raises ``StrandAbortError``."""
        self._ring.store(CTRL.ABORT, 1)
        self._ring.notify_ack()

    def update_intern_table(self, table: list[str]) -> None:
        """Replace the utf8_ref intern table; every cursor in every process sees it at once."""
        self._intern.update(table)

    @property
    def intern_table(self) -> list[str]:
        return list(self._intern.table())

    # -- reading --------------------------------------------------------------------------

    def allocate_cursor(self) -> RecordCursor:
        """A cursor for per-record access; allocate once, ``seek`` many times."""
        return RecordCursor(self)

    def _check_range(self, start: int, stop: int) -> None:
        self._check_open()
        self._sync_epoch()
        if not self._tokens:
            raise StrandStateError(
                "this view has no registered consumer, so nothing protects records from being "
                "overwritten while read; register_consumer() first"
            )
        committed = self.committed_count
        if not (isinstance(start, int) and isinstance(stop, int)) or not 0 <= start <= stop:
            raise StrandValueError(f"read range [{start!r}, {stop!r}) is not a valid range")
        if stop > committed:
            raise StrandValueError(
                f"read range [{start}, {stop}) goes beyond the {committed} committed records"
            )
        if start < self._released:
            raise StrandValueError(
                f"records before {self._released} were acknowledged and may be overwritten; "
                f"read [{start}, {stop}) before acknowledging it"
            )

    def _batch(self, number: int, committed: int) -> tuple[int, pa.RecordBatch]:
        ring = self._ring
        first, rows, mono, _ = ring.entry(number)
        phys = ring.heap_phys(mono)
        ipc, block_rows, block_first, at, length = blocks.read_head(
            self._buf, phys, len(self.schema)
        )
        if first + rows > committed or (block_rows, block_first) != (rows, first):
            raise StrandStateError(
                f"batch {number} (records {first}..{first + rows}) is not committed or was "
                "overwritten; read only committed records you have not acknowledged"
            )
        dictionary = self._intern.current()[0] if self._has_refs else None
        root = pa.py_buffer(self._buf)
        if ipc:  # one call into Arrow's reader; columns in storage form are wrapped after
            batch = blocks.ipc_batch(root, phys, at, length, self._ipc_read_schema)
            if self._ipc_read_schema is self._arrow_schema:
                return first, batch
        else:
            _, _, descs = blocks.read_descriptors(self._buf, phys, mono, self.schema)
        try:  # Arrow checks what it builds; a corrupted block is strand's error, not Arrow's
            if ipc:
                arrays = [
                    blocks.wrap_storage(f, column, dictionary)
                    for f, column in zip(self.schema, batch.columns, strict=True)
                ]
            else:
                arrays = [
                    blocks.build_array(root, ring.heap_phys, f, descs[i], rows, dictionary)
                    for i, f in enumerate(self.schema)
                ]
            return first, pa.RecordBatch.from_arrays(arrays, schema=self._arrow_schema)
        except (pa.ArrowException, OverflowError) as exc:
            raise StrandValueError(
                f"batch {number} (records {first}..{first + rows}) cannot be read ({exc}): "
                "the segment is corrupted"
            ) from None

    def read_batches(self, start: int, stop: int, copy: bool = False) -> list[pa.RecordBatch]:
        """Records ``[start, stop)`` as zero-copy batches, one per committed batch spanned.

        Zero-copy batches point into the ring: use them before ``acknowledge_read`` releases
        them (after that the writer reuses the memory). ``copy=True`` returns batches in
        ordinary memory that may be kept.
        """
        self._check_range(start, stop)
        out: list[pa.RecordBatch] = []
        if start == stop:
            return out
        ring = self._ring
        committed_batches = ring.load(CTRL.BATCH_COMMIT)
        committed = ring.load(CTRL.COMMIT_SEQ)
        number = self._next_batch  # sequential reads start where the last one stopped
        first, rows, _, _ = ring.entry(number)
        if not (number < committed_batches and first <= start < first + rows <= committed):
            number = ring.find_batch(start, committed_batches)
        seq = start
        while seq < stop:
            first, batch = self._batch(number, committed)
            lo = seq - first
            hi = min(stop - first, batch.num_rows)
            part = batch if lo == 0 and hi == batch.num_rows else batch.slice(lo, hi - lo)
            if copy:
                part = pa.RecordBatch.from_arrays(
                    [pa.concat_arrays([column]) for column in part.columns], schema=part.schema
                )
            out.append(part)
            seq = first + hi
            number += 1
        self._next_batch = number - 1 if seq < first + batch.num_rows else number
        return out

    def read_batch(
        self, start: int, stop: int, copy: bool = False
    ) -> pa.RecordBatch | list[pa.RecordBatch]:
        """Records ``[start, stop)``: one zero-copy RecordBatch when they lie in one committed
        batch, else a list of them (see ``read_batches``, also for ``copy``)."""
        batches = self.read_batches(start, stop, copy)
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return pa.RecordBatch.from_pylist([], schema=self._arrow_schema)
        return batches

    def read_table(self, start: int, stop: int, copy: bool = False) -> pa.Table:
        """Records ``[start, stop)`` as a ``pyarrow.Table`` (zero-copy unless ``copy``)."""
        batches = self.read_batches(start, stop, copy)
        return pa.Table.from_batches(batches, schema=self._arrow_schema)

    def find_first(self, field: str, value: Any) -> int | None:
        """First held record whose sorted ``field`` is >= ``value`` (<= for a descending
        field), by binary search; None if there is none."""
        c = self.schema.index(field)
        f = self.schema.fields[c]
        if f.sorted is None:
            raise StrandValueError(
                f'field "{field}" is not flagged sorted; find_first needs sorted="asc" or "desc"'
            )
        self._check_range(self._released, self._released)
        cursor = RecordCursor(self)
        lo, hi = self._released, self.committed_count
        end = hi
        ascending = f.sorted == "asc"
        try:
            while lo < hi:
                mid = (lo + hi) // 2
                if not cursor.seek(mid):
                    raise StrandStateError(f"record {mid} could not be read during find_first")
                current = cursor.get(field)
                if (current >= value) if ascending else (current <= value):
                    hi = mid
                else:
                    lo = mid + 1
        except TypeError:
            raise StrandValueError(
                f'find_first: {value!r} cannot be compared with field "{field}" ({f.type})'
            ) from None
        return lo if lo < end else None

    # -- closing --------------------------------------------------------------------------

    def close(self, timeout: float = 0.0) -> None:
        """Release this view's consumers; close the segment if the view opened it by name."""
        if self._closed:
            return
        if not self.segment.closed:
            for token in list(self._tokens):
                self._ring.release(token)
        self._tokens.clear()
        self.token = None
        self._finalizer.detach()
        if self._owns_segment:
            self.segment.close(timeout=timeout)  # raises while views are alive: close again
        self._closed = True

    def __enter__(self) -> StrandView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
