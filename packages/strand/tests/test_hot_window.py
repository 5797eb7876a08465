"""The writer keeps blocks in a hot window at the start of the heap while consumers keep up,
and never rewinds over a block a consumer still holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

import strand
from strand.writer import HOT_WINDOW

MIB = 1 << 20
HEAP = 64 * MIB
SCHEMA = pa.schema([pa.field(f"c{k}", pa.int64(), nullable=False) for k in range(4)])


def _batch(i: int, rows: int = MIB // 32) -> pa.RecordBatch:
    """About 1 MiB (4 x int64), every value unique to batch ``i``."""
    base = np.arange(rows, dtype=np.int64) + i * rows
    return pa.record_batch([pa.array(base * (k + 1)) for k in range(4)], schema=SCHEMA)


def _phys(view: strand.StrandView, batch: int) -> int:
    """Where batch number ``batch``'s block starts, as an offset into the heap."""
    return view._ring.entry(batch)[2] % HEAP


@contextlib.contextmanager
def _strand(name: str, consumer: bool = True) -> Iterator[tuple[strand.StrandView, Any]]:
    """A fresh strand with a view (registered unless ``consumer`` is False) and a begun
    writer; all closed and unlinked afterwards."""
    seg = strand.create_strand(name, strand.compute_strand_map(SCHEMA, 1 << 22, HEAP))
    view = strand.StrandView(seg, register=consumer)
    writer = strand.StrandWriter(seg)
    writer.begin()
    try:
        yield view, writer
    finally:
        writer.close()
        view.close()
        seg.unlink()
        seg.close(timeout=2)


def test_blocks_cycle_through_the_hot_window_while_the_consumer_keeps_up(name: str) -> None:
    with _strand(name) as (view, writer):
        _keep_up(view, writer)


def _keep_up(view: strand.StrandView, writer: Any) -> None:
    """(A function of its own, so its Arrow views are gone before the strand closes.)"""
    n = 3 * HEAP // MIB  # three heaps' worth: without the window, every heap byte is used
    for i in range(n):
        writer.write_record_batch(_batch(i))
        got = view.read_batch(view.position, view.committed_count)
        assert isinstance(got, pa.RecordBatch)
        assert got.equals(_batch(i))
        del got
        view.acknowledge_read(view.committed_count)
    assert max(_phys(view, b) for b in range(n)) < HOT_WINDOW
    assert view._ring.entry(n - 1)[2] > 2 * HEAP  # positions went round: laps were skipped


def test_a_consumer_holding_a_block_stops_the_rewind_until_it_lets_go(name: str) -> None:
    with _strand(name) as (view, writer):
        _hold_then_let_go(view, writer)


def _hold_then_let_go(view: strand.StrandView, writer: Any) -> None:
    """(A function of its own, so its Arrow views are gone before the strand closes.)"""
    slow = view.register_consumer()  # holds batch 0 until acknowledged
    n = HEAP // MIB // 2  # room for all of them without waiting for ``slow``
    for i in range(n):
        writer.write_record_batch(_batch(i))
        view.acknowledge_read(view.committed_count)  # the fast consumer keeps up
    # the rewind would have overwritten batch 0: the writer went on through the heap instead
    assert max(_phys(view, b) for b in range(n)) > HOT_WINDOW
    rows = _batch(0).num_rows
    first = view.read_batch(0, rows)
    assert isinstance(first, pa.RecordBatch)
    assert first.equals(_batch(0))
    del first
    view.acknowledge_read(view.committed_count, slow)
    for i in range(n, n + 2 * HOT_WINDOW // MIB):
        view.acknowledge_read(view.committed_count)
        view.acknowledge_read(view.committed_count, slow)
        writer.write_record_batch(_batch(i))
    # once the slow consumer let go, blocks went back to the start of the heap
    assert _phys(view, view._ring.load(strand.layout.CTRL.BATCH_COMMIT) - 1) < HOT_WINDOW
    tail = view.read_batch(view.committed_count - rows, view.committed_count)
    assert isinstance(tail, pa.RecordBatch)
    assert tail.equals(_batch(n + 2 * HOT_WINDOW // MIB - 1))
    del tail


def test_without_consumers_the_writer_rewinds_too(name: str) -> None:
    with _strand(name, consumer=False) as (view, writer):
        for i in range(2 * HOT_WINDOW // MIB):
            writer.write_record_batch(_batch(i))
        assert max(_phys(view, b) for b in range(2 * HOT_WINDOW // MIB)) < HOT_WINDOW
