"""The producer side: ``StrandWriter`` writes Arrow batches (or claimed regions) into the ring.

One writer owns a strand at a time. Each batch becomes one block in the heap ring and one
entry in the batch index, published by a single store of ``COMMIT_SEQ``. The writer blocks
(futex, no polling) while the slowest live consumer is ``index_capacity`` records behind or
the heap holds no room that every consumer has released.
"""

from __future__ import annotations

import json
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa

from strand import blocks
from strand._intern import InternTable
from strand._ring import (
    REASON_WRITER_DIED,
    STATUS_EOS,
    STATUS_ERROR,
    STATUS_INIT,
    STATUS_STREAMING,
    Ring,
)
from strand.errors import (
    StrandAbortError,
    StrandBusyError,
    StrandOrderError,
    StrandStateError,
    StrandValueError,
)
from strand.layout import CTRL, MAX_CONSUMERS, read_strand_header
from strand.schema import Layout
from strand.segment import Segment
from strand.sync import process_alive

__all__ = ["ClaimedColumn", "HeapClaim", "SlotClaim", "StrandWriter"]


@dataclass(eq=False)
class HeapClaim:
    """Heap bytes claimed for variable-length data: fill ``view``, then ``commit_heap()``."""

    mono: int
    nbytes: int
    view: np.ndarray
    committed: bool = False


@dataclass(eq=False)
class ClaimedColumn:
    """One column's regions in a slot claim (numpy views straight into shared memory).

    ``values`` (fixed-width types: one element per row; bool8: a packed bitmap), ``validity``
    (packed bitmap, all valid to start; None for non-nullable fields) and, for utf8, json,
    bytes and arrays, ``offsets`` (rows + 1 int32, relative to the data region set with
    ``SlotClaim.set_data``).
    """

    values: np.ndarray | None
    validity: np.ndarray | None
    offsets: np.ndarray | None
    data: HeapClaim | None = None
    validity_at: int = blocks.NONE  # heap positions of the regions, for the block header
    values_at: int = blocks.NONE


@dataclass(eq=False)
class SlotClaim:
    """``rows`` record slots from ``seq`` claimed by ``claim_slots``; commit in claim order."""

    seq: int
    rows: int
    batch: int
    mono: int
    nbytes: int
    columns: dict[str, ClaimedColumn] = field(default_factory=dict)

    def set_data(self, name: str, heap: HeapClaim) -> None:
        """Use ``heap`` (from ``claim_heap_bytes``) as the data region of column ``name``."""
        column = self.columns.get(name)
        if column is None or column.offsets is None:
            raise StrandValueError(f'"{name}" is not a variable-length column of this claim')
        column.data = heap


_NUMPY: dict[str, Any] = {
    "u8": np.uint8,
    "u16": np.uint16,
    "u32": np.uint32,
    "i32": np.int32,
    "i64": np.int64,
    "f32": np.float32,
    "f64": np.float64,
    "date": np.int32,
    "timestamp": np.int64,
    "utf8_ref": np.int32,
    "decimal": np.dtype("V16"),
}


def _detach(atomic: Any, ctrl: int, pid: int) -> None:
    """Finalizer of a writer dropped without ``close()``: give up the writer role."""
    if not atomic.closed:
        atomic.cas_u64(ctrl + CTRL.WRITER_PID, pid, 0)


# Blocks cycle through this many bytes at the start of the heap while consumers keep up (see
# ``StrandWriter._rewind``): small enough for a last-level cache, large enough that a consumer
# a few blocks behind does not stop the rewind.
HOT_WINDOW: Final = 8 * 1024 * 1024

_NO_INTERN: tuple[pa.Array, dict[str, int]] = (pa.array([], pa.utf8()), {})


class StrandWriter:
    """Writes records into a strand; attach with a ``Segment`` or a segment name.

    ``schema`` (optional) must equal the strand's. Attaching rewinds any claim a previous
    writer left half-written; a second live writer is refused with ``StrandBusyError``.
    """

    def __init__(self, strand: Segment | str, schema: Any = None, *, timeout: float = 60.0):
        self._owns_segment = isinstance(strand, str)
        self.segment = Segment.attach(strand) if isinstance(strand, str) else strand
        self.map = read_strand_header(self.segment.buf, schema)
        self.schema = self.map.schema
        self.timeout = timeout
        ring = self._ring = Ring(self.segment, self.map)
        self._intern = InternTable(ring)
        self._take_ownership()
        # an export of the segment for the writer's lifetime: block copies use raw addresses,
        # so the segment must refuse to unmap while this writer is open
        self._pin: np.ndarray | None = np.frombuffer(self.segment.buf, np.uint8, 1)
        self._finalizer = weakref.finalize(self, _detach, ring.atomic, ring.ctrl, ring.pid)
        # a process that exits with the stream open (an uncaught exception, a forgotten
        # close) keeps its pid here, so readers see the writer died instead of waiting
        self._finalizer.atexit = False
        self._write_seq = ring.load(CTRL.COMMIT_SEQ)
        self._batch = self._committed_batches()
        self._heap_write = ring.load(CTRL.HEAP_COMMIT)
        ring.store(CTRL.WRITE_SEQ, self._write_seq)
        ring.store(CTRL.BATCH_WRITE, self._batch)
        ring.store(CTRL.HEAP_WRITE, self._heap_write)
        self._commit_seq = self._write_seq
        self._outstanding: dict[int, int] = {}  # region start -> end, claimed, uncommitted
        self._pending: deque[SlotClaim] = deque()
        self._heap_claims: list[HeapClaim] = []
        self._safe_seq = 0  # cached: records up to here may be written without checking
        self._safe_heap = 0
        self._next_rewind = 0  # heap position before which no rewind to the hot window is tried
        self._last_sorted: dict[int, Any] = self._read_last_sorted()
        self._has_refs = any(f.type.kind == "utf8_ref" for f in self.schema)
        self._encoder = blocks.IpcEncoder()
        self._closed = False

    # -- ownership ----------------------------------------------------------------------

    def _committed_batches(self) -> int:
        """Batches really committed: a writer that died between storing ``BATCH_COMMIT`` and
        ``COMMIT_SEQ`` left an entry that ``COMMIT_SEQ`` does not cover; drop it."""
        ring = self._ring
        commit = ring.load(CTRL.COMMIT_SEQ)
        batches = ring.load(CTRL.BATCH_COMMIT)
        while batches > 0:
            first, rows, _, _ = ring.entry(batches - 1)
            if first + rows <= commit:
                break
            batches -= 1
        ring.store(CTRL.BATCH_COMMIT, batches)
        return batches

    def _take_ownership(self) -> None:
        ring = self._ring
        current = ring.load(CTRL.WRITER_PID)
        if current and process_alive(current, ring.load(CTRL.WRITER_START)):
            whose = "this process" if current == ring.pid else f"pid {current}"
            raise StrandBusyError(
                f'strand "{self.segment.name}" already has an open writer ({whose}); one writer '
                "at a time: close() it first"
            )
        if not ring.cas(CTRL.WRITER_PID, current, ring.pid):
            raise StrandBusyError(f'another writer attached to "{self.segment.name}" just now')
        ring.store(CTRL.WRITER_START, ring.start)

    def close(self) -> None:
        """Detach (the ring keeps its status); closes the segment if opened by name."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        ring = self._ring
        ring.cas(CTRL.WRITER_PID, ring.pid, 0)
        self._pin = None
        if self._owns_segment:
            self.segment.close(timeout=1.0)

    def __enter__(self) -> StrandWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle ------------------------------------------------------------------------

    def begin(self) -> None:
        """Mark the stream as started and wake consumers."""
        self._check_open()
        ring = self._ring
        status = ring.load(CTRL.STATUS)
        resumable = status == STATUS_ERROR and ring.load(CTRL.STATUS_REASON) == REASON_WRITER_DIED
        if status in (STATUS_EOS, STATUS_ERROR) and not resumable:
            raise StrandStateError(
                f"the stream already ended ({'eos' if status == STATUS_EOS else 'error'}); "
                "reset() before starting a new one"
            )
        # a stream whose previous writer died resumes where its last commit left off
        ring.store(CTRL.STATUS_REASON, 0)
        ring.store(CTRL.STATUS, STATUS_STREAMING)
        self._ring.notify_commit()

    def finalize(self) -> None:
        """End of stream: consumers drain what is committed and see status ``eos``."""
        self._end(STATUS_EOS)

    def abort(self) -> None:
        """Stop the stream with status ``error`` (after ``StrandAbortError`` or a failure)."""
        self._end(STATUS_ERROR)

    def _end(self, status: int) -> None:
        self._check_open()
        self._ring.store(CTRL.STATUS, status)
        self._ring.notify_commit()
        self._ring.notify_ack()

    def reset(self) -> None:
        """Rewind the ring for a fresh stream: counters and consumer positions to zero.

        Consumers must coordinate (they see ``epoch`` change and status ``initializing``);
        the static header is untouched.
        """
        self._check_open()
        if self._pending:
            raise StrandOrderError("commit or abandon_claims() the pending claims before reset()")
        ring = self._ring
        for word in (
            CTRL.WRITE_SEQ, CTRL.COMMIT_SEQ, CTRL.BATCH_WRITE, CTRL.BATCH_COMMIT,
            CTRL.HEAP_WRITE, CTRL.HEAP_COMMIT, CTRL.ABORT, CTRL.STATUS_REASON,
        ):  # fmt: skip
            ring.store(word, 0)
        for slot in range(MAX_CONSUMERS):
            ring.store(ring.slot_word(slot, CTRL.SLOT_POS), 0)
        ring.store(CTRL.STATUS, STATUS_INIT)
        ring.atomic.fetch_add_u64(ring.ctrl + CTRL.EPOCH, 1)
        self._write_seq = self._commit_seq = self._batch = self._heap_write = 0
        self._outstanding.clear()
        self._pending.clear()
        self._heap_claims.clear()
        self._safe_seq = self._safe_heap = self._next_rewind = 0
        self._last_sorted = {}
        ring.notify_commit()
        ring.notify_ack()

    def _check_open(self) -> None:
        if self._closed or self.segment.closed:
            raise StrandStateError("this writer is closed")

    def _check_writable(self) -> None:
        self._check_open()
        ring = self._ring
        if ring.load(CTRL.ABORT):
            raise StrandAbortError("a consumer signalled abort; stop and call abort()")
        status = ring.load(CTRL.STATUS)
        if status != STATUS_STREAMING:
            names = {STATUS_INIT: "not begun (call begin())", STATUS_EOS: "finalized"}
            raise StrandStateError(f"cannot write: the stream is {names.get(status, 'aborted')}")

    @property
    def committed_count(self) -> int:
        return self._commit_seq

    # -- space ------------------------------------------------------------------------------

    def _reserve(self, rows: int, nbytes: int, timeout: float | None) -> int:
        """Wait until ``rows`` records and ``nbytes`` contiguous heap bytes are free; claim
        them and return the heap position."""
        ring = self._ring
        cap = ring.heap_capacity
        pos = self._heap_write
        phys = pos % cap
        if phys + nbytes > cap:  # never straddle the ring end: skip to its start
            pos += cap - phys
        elif phys + nbytes > HOT_WINDOW and pos >= self._next_rewind and not self._outstanding:
            pos = self._rewind(pos, phys, nbytes, self._write_seq + rows)
        end = pos + nbytes
        seq_end = self._write_seq + rows
        if self._outstanding and end - min(self._outstanding) > cap:
            raise StrandValueError(
                f"this claim of {nbytes} bytes and the uncommitted claims before it need more "
                f"than the heap ({cap} bytes); commit them first, or abandon_claims()"
            )
        if seq_end - self._commit_seq > self.map.index_capacity:
            raise StrandValueError(
                f"{seq_end - self._commit_seq} records claimed but not committed exceed "
                f"index_capacity ({self.map.index_capacity}); commit claims first"
            )
        if seq_end > self._safe_seq or end > self._safe_heap:

            def ready(evict: bool) -> bool:
                return self._space(seq_end, end, pos, evict)

            ring.wait_ack(ready, self.timeout if timeout is None else timeout, "ring space")
        self._heap_write = end
        self._write_seq = seq_end
        ring.store(CTRL.HEAP_WRITE, end)
        ring.store(CTRL.WRITE_SEQ, seq_end)
        return pos

    def _rewind(self, pos: int, phys: int, nbytes: int, seq_end: int) -> int:
        """Where to put a block once the hot window is used up: back at the ring's start
        (the next lap) if no consumer still needs those bytes, else on at ``pos``.

        While consumers keep up, blocks thus cycle through the first ``HOT_WINDOW`` bytes of
        the heap, which stay in the CPU caches and TLBs of both processes, instead of
        walking the whole heap through main memory. A lagging consumer makes the writer go
        on through the heap as before; it tries again ``HOT_WINDOW`` bytes later.
        """
        target = pos + self._ring.heap_capacity - phys
        end = target + nbytes
        if end > self._safe_heap:
            self._space(seq_end, end, target, False)  # refreshes the cached bound
        if end <= self._safe_heap:
            return target
        self._next_rewind = pos + HOT_WINDOW
        return pos

    def _space(self, seq_end: int, heap_end: int, start: int, evict: bool) -> bool:
        ring = self._ring
        low = ring.min_position(evict)
        if low is None or low >= self._commit_seq:
            floor = min(self._outstanding, default=start)
            low = self._commit_seq if low is None else low
        else:
            batch = ring.find_batch(low, self._batch_committed())
            floor = ring.entry(batch)[3]
        self._safe_seq = low + ring.index_capacity
        self._safe_heap = floor + ring.heap_capacity
        return seq_end <= self._safe_seq and heap_end <= self._safe_heap

    def _batch_committed(self) -> int:
        return self._ring.load(CTRL.BATCH_COMMIT)

    # -- the fast path ----------------------------------------------------------------------

    def write_record_batch(
        self,
        records: pa.RecordBatch | pa.Table | list[dict[str, Any]],
        timeout: float | None = None,
    ) -> int:
        """Write a ``pyarrow.RecordBatch`` (or Table, or list of dicts); returns rows written.

        Everything is checked before anything is published: a value that does not fit
        (``StrandValueError``), a broken sort order or a record too large for the heap
        leaves the ring exactly as it was. A batch larger than a block is split and
        published block by block; a timeout (``StrandTimeoutError``) or an abort
        (``StrandAbortError``) while waiting for room can therefore leave the blocks before
        it published. Blocks on backpressure up to ``timeout`` (default: the writer's).
        """
        self._check_writable()
        if self._pending:
            raise StrandOrderError("commit the pending slot claims before writing batches")
        if isinstance(records, list):
            records = self._from_pylist(records)
        if isinstance(records, pa.Table):
            batches = records.to_batches()
        elif isinstance(records, pa.RecordBatch):
            batches = [records]
        else:
            raise StrandValueError(
                f"write_record_batch takes a pyarrow RecordBatch, a Table or a list of dicts, "
                f"not {type(records).__name__}"
            )
        pieces: list[tuple[pa.RecordBatch, tuple[int, int, int]]] = []
        last = self._last_sorted
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if self._has_refs:
                values, lookup = self._intern.current()
            else:
                values, lookup = _NO_INTERN
            stored = blocks.normalize_batch(self.schema, batch, lookup, values)
            last = self._check_sorted(stored, last)
            self._split(stored, pieces)
        written = 0
        for stored, sizes in pieces:
            written += self._write_block(stored, sizes, timeout)
        return written

    def _split(
        self, batch: pa.RecordBatch, out: list[tuple[pa.RecordBatch, tuple[int, int, int]]]
    ) -> None:
        """Cut a batch into blocks that fit (half the heap, half the index); size each."""
        rows = batch.num_rows
        sizes = self._encoder.size(batch)
        max_rows = max(1, self.map.index_capacity // 2)
        if sizes[0] <= self.map.max_block_bytes and rows <= max_rows:
            out.append((batch, sizes))
            return
        if rows == 1:
            raise StrandValueError(
                f"one record needs {sizes[0]} bytes but the largest block this heap can hold "
                f"is {self.map.max_block_bytes} bytes (half of heap_capacity "
                f"{self.map.heap_capacity}); create the strand with a larger heap_capacity"
            )
        per_row = sizes[0] / rows
        piece = min(max_rows, max(1, int(self.map.max_block_bytes * 0.9 / per_row)))
        if piece >= 16:
            piece -= piece % 8  # keep validity bitmaps byte-aligned: Arrow copies no bits
        piece = min(piece, rows - 1)
        for start in range(0, rows, piece):
            self._split(batch.slice(start, piece), out)

    def _write_block(
        self, batch: pa.RecordBatch, sizes: tuple[int, int, int], timeout: float | None
    ) -> int:
        rows: int = batch.num_rows
        total = sizes[0]
        mono = self._reserve(rows, total, timeout)
        first = self._commit_seq
        ring = self._ring
        blocks.IpcEncoder.emit(ring.buf, ring.heap_phys(mono), sizes, batch, first)
        self._outstanding[mono] = mono + total
        self._publish(first, rows, mono, [mono])
        self._remember_sorted(batch)
        return rows

    def _publish(self, first: int, rows: int, mono: int, regions: list[int]) -> None:
        ring = self._ring
        heap_start = min(self._outstanding)  # the oldest region this batch may still need
        for region in regions:
            self._outstanding.pop(region, None)
        batch = self._batch
        ring.put_entry(batch, first, rows, mono, heap_start)
        self._batch = batch + 1
        self._commit_seq = first + rows
        ring.store(CTRL.BATCH_WRITE, self._batch)
        ring.store(CTRL.BATCH_COMMIT, self._batch)
        ring.store(CTRL.HEAP_COMMIT, self._heap_write)
        ring.store(CTRL.COMMIT_SEQ, self._commit_seq)  # the one publication of this batch
        ring.notify_commit()

    def _from_pylist(self, records: list[dict[str, Any]]) -> pa.RecordBatch:
        names = set(self.schema.names)
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise StrandValueError(f"record {i} is {type(record).__name__}, not a dict")
            unknown = set(record) - names
            if unknown:
                raise StrandValueError(
                    f"record {i} has unknown field(s) {', '.join(sorted(unknown))}; "
                    f"fields: {', '.join(self.schema.names)}"
                )
        columns = []
        for f in self.schema:
            values = [r.get(f.name) for r in records]
            kind = f.type.kind
            if kind == "json":
                try:
                    values = [None if v is None else json.dumps(v, allow_nan=False) for v in values]
                except (TypeError, ValueError) as exc:
                    raise StrandValueError(f'field "{f.name}" (json): {exc}') from None
            arrow_type = pa.utf8() if kind in ("json", "utf8_ref") else f.arrow_type
            try:
                columns.append(pa.array(values, type=arrow_type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
                raise StrandValueError(f'field "{f.name}" ({f.type}): {e}') from None
        return pa.RecordBatch.from_arrays(columns, names=list(self.schema.names))

    # -- sorted fields ----------------------------------------------------------------------

    def _check_sorted(
        self, arrays: pa.RecordBatch | list[pa.Array], last: dict[int, Any]
    ) -> dict[int, Any]:
        """Refuse arrays that break a sorted field's order (within them, or against ``last``,
        the previous values); return the last values after them. Changes nothing."""
        if not self.schema.has_sorted:
            return last
        import pyarrow.compute as pc  # here: 30 ms at `import strand`, needed by sorted fields only

        after = dict(last)
        for i, f in enumerate(self.schema):
            if f.sorted is None or not len(arrays[i]):
                continue
            arr = arrays[i]
            n = len(arr)
            worse = pc.less if f.sorted == "asc" else pc.greater
            if n > 1:
                bad = worse(arr.slice(1), arr.slice(0, n - 1))
                if pc.any(bad).as_py():
                    row = pc.index(bad, True).as_py() + 1
                    raise StrandValueError(
                        f'field "{f.name}" is flagged sorted_{f.sorted} but row {row} '
                        f"({arr[row].as_py()!r}) comes after {arr[row - 1].as_py()!r}"
                    )
            previous = last.get(i)
            if previous is not None and worse(arr[0], previous).as_py():
                raise StrandValueError(
                    f'field "{f.name}" is flagged sorted_{f.sorted} but the batch starts at '
                    f"{arr[0].as_py()!r}, after {previous.as_py()!r} in the previous batch"
                )
            after[i] = arr[n - 1]
        return after

    def _remember_sorted(self, arrays: pa.RecordBatch) -> None:
        """After a publish: the order of later batches is checked against these values."""
        if self.schema.has_sorted:
            for i, f in enumerate(self.schema):
                if f.sorted is not None and len(arrays[i]):
                    self._last_sorted[i] = arrays[i][len(arrays[i]) - 1]

    def _read_last_sorted(self) -> dict[int, Any]:
        """Last committed value of each sorted field, so a new writer keeps the order."""
        if not any(f.sorted for f in self.schema) or self._commit_seq == 0:
            return {}
        ring = self._ring
        batch = self._batch - 1
        _, _rows, mono, _ = ring.entry(batch)
        rows_, _first, descs = blocks.read_descriptors(
            ring.buf, ring.heap_phys(mono), mono, self.schema
        )
        last = {}
        for i, f in enumerate(self.schema):
            if f.sorted:
                root = pa.py_buffer(ring.buf)
                arr = blocks.build_array(root, ring.heap_phys, f, descs[i], rows_, None)
                last[i] = pa.scalar(arr[rows_ - 1].as_py(), type=arr.type)
                del arr, root
        return last

    # -- claim / commit for producers that write in place --------------------------------

    def claim_slots(self, n: int, timeout: float | None = None) -> SlotClaim:
        """Claim ``n`` record slots (one batch) and return per-column regions to fill.

        Fill ``values``/``validity``/``offsets`` of each column, attach variable-length
        data with ``claim.set_data(name, claim_heap_bytes(k))``, call ``commit_heap()``,
        then ``commit_slots(claim)``. Claims are committed in the order they were made.
        """
        self._check_writable()
        if not isinstance(n, int) or n < 1 or n > self.map.index_capacity:
            raise StrandValueError(
                f"claim_slots takes 1..{self.map.index_capacity} records (index_capacity), got {n!r}"
            )
        layout: list[tuple[str, int, int, int]] = []  # name, validity, values, offsets sizes
        total = blocks.block_header_size(len(self.schema))
        for f in self.schema:
            validity = (n + 7) // 8 if f.nullable else 0
            if f.layout is Layout.FIXED:
                values, offsets = n * f.width, 0
            elif f.layout is Layout.BOOL:
                values, offsets = (n + 7) // 8, 0
            else:
                values, offsets = 0, 4 * (n + 1)
            layout.append((f.name, validity, values, offsets))
            total += sum(blocks._align(x) for x in (validity, values, offsets))
        if total > self.map.max_block_bytes:
            raise StrandValueError(
                f"{n} slots need {total} bytes, more than the largest block "
                f"({self.map.max_block_bytes}); claim fewer"
            )
        first = self._write_seq
        mono = self._reserve(n, total, timeout)
        self._outstanding[mono] = mono + total
        ring = self._ring
        phys = ring.heap_phys(mono)
        batch = self._batch + len(self._pending)
        claim = SlotClaim(first, n, batch, mono, total)
        at = blocks.block_header_size(len(self.schema))
        for f, (name, validity, values, offsets) in zip(self.schema, layout, strict=True):
            vview = bitmap = offs = None
            validity_at = blocks.NONE
            if validity:
                bitmap = np.frombuffer(ring.buf, np.uint8, validity, phys + at)
                bitmap[:] = 0xFF
                validity_at = mono + at
                at += blocks._align(validity)
            values_at = mono + at
            if f.layout is Layout.FIXED:
                vview = np.frombuffer(ring.buf, _NUMPY[f.type.kind], n, phys + at)
            elif f.layout is Layout.BOOL:
                vview = np.frombuffer(ring.buf, np.uint8, values, phys + at)
            else:
                offs = np.frombuffer(ring.buf, np.int32, n + 1, phys + at)
                offs[:] = 0
            at += blocks._align(values) + blocks._align(offsets)
            claim.columns[name] = ClaimedColumn(vview, bitmap, offs, None, validity_at, values_at)
        self._pending.append(claim)
        ring.store(CTRL.BATCH_WRITE, self._batch + len(self._pending))
        return claim

    def claim_heap_bytes(self, nbytes: int, timeout: float | None = None) -> HeapClaim:
        """Claim ``nbytes`` contiguous heap bytes (never straddling the ring end)."""
        self._check_writable()
        if not isinstance(nbytes, int) or nbytes < 0 or nbytes > self.map.max_block_bytes:
            raise StrandValueError(
                f"claim_heap_bytes takes 0..{self.map.max_block_bytes} bytes (half the heap), "
                f"got {nbytes!r}; create the strand with a larger heap_capacity"
            )
        size = blocks._align(max(nbytes, 1))
        mono = self._reserve(0, size, timeout)
        self._outstanding[mono] = mono + size
        ring = self._ring
        view = np.frombuffer(ring.buf, np.uint8, nbytes, ring.heap_phys(mono))
        claim = HeapClaim(mono, nbytes, view)
        self._heap_claims.append(claim)
        return claim

    def commit_heap(self) -> None:
        """Mark every heap claim made so far as written (before ``commit_slots``)."""
        for claim in self._heap_claims:
            claim.committed = True
        self._heap_claims.clear()

    def commit_slots(self, claim: SlotClaim) -> None:
        """Publish a claim: checks order, offsets and data, then one commit store."""
        self._check_open()
        if not self._pending or self._pending[0] is not claim:
            if claim not in self._pending:
                raise StrandOrderError(f"claim at seq {claim.seq} is not pending (committed?)")
            raise StrandOrderError(
                f"claims commit in claim order: seq {self._pending[0].seq} must be committed "
                f"before seq {claim.seq}"
            )
        ring = self._ring
        phys = ring.heap_phys(claim.mono)
        n = claim.rows
        descs = []
        for f in self.schema:
            column = claim.columns[f.name]
            nulls = 0
            if column.validity is not None:
                valid = int(np.unpackbits(column.validity, count=n, bitorder="little").sum())
                nulls = n - valid
            validity_at = column.validity_at if nulls else blocks.NONE
            data_at, data_len = blocks.NONE, 0
            if column.offsets is not None:
                offs = column.offsets
                heap = column.data
                limit = heap.nbytes if heap is not None else 0
                unit = f.width if f.layout is Layout.LIST else 1
                if (
                    offs[0] != 0
                    or (n and bool((np.diff(offs) < 0).any()))
                    or offs[n] * unit > limit
                ):
                    raise StrandValueError(
                        f'column "{f.name}": offsets must start at 0, never decrease and end '
                        f"within the data region ({limit} bytes); got end {int(offs[n]) * unit}"
                    )
                if heap is not None:
                    if not heap.committed:
                        raise StrandOrderError(
                            f'column "{f.name}": call commit_heap() before commit_slots()'
                        )
                    data_at, data_len = heap.mono, int(offs[n]) * unit
            descs.append((validity_at, column.values_at, data_at, data_len, nulls))
        sorted_arrays = self._claim_sorted_arrays(descs, n)
        after = self._check_sorted(sorted_arrays, self._last_sorted) if sorted_arrays else None
        blocks.write_header(ring.buf, phys, descs, n, claim.seq)
        self._pending.popleft()
        regions = [claim.mono] + [c.data.mono for c in claim.columns.values() if c.data]
        self._publish(claim.seq, n, claim.mono, regions)
        if after is not None:
            self._last_sorted = after

    def _claim_sorted_arrays(
        self, descs: list[tuple[int, int, int, int, int]], rows: int
    ) -> list[pa.Array]:
        """Copies of a claim's sorted columns (to check their order before publishing; copies,
        so an error's traceback holds nothing that pins the segment); empty if none."""
        if not self.schema.has_sorted:
            return []
        ring = self._ring
        root = pa.py_buffer(ring.buf)
        arrays = [
            pa.concat_arrays([blocks.build_array(root, ring.heap_phys, f, descs[i], rows, None)])
            if f.sorted
            else pa.nulls(0)
            for i, f in enumerate(self.schema)
        ]
        del root
        return arrays

    def abandon_claims(self) -> None:
        """Drop every pending slot claim and heap claim: nothing of them is published, and the
        heap they hold is released (it is reused once the ring comes round)."""
        self._check_open()
        self._pending.clear()
        self._heap_claims.clear()
        self._outstanding.clear()
        ring = self._ring
        ring.store(CTRL.WRITE_SEQ, self._commit_seq)
        ring.store(CTRL.BATCH_WRITE, self._batch)
        self._write_seq = self._commit_seq
