"""Faults and misuse found in review: each case once broke the ring or a reader."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

import strand
from strand import StrandField, StrandSchema
from strand.layout import CTRL

IDS = StrandSchema([StrandField("id", "i64", nullable=False)])
SORTED = StrandSchema([StrandField("pos", "i64", nullable=False, sorted="asc")])


@pytest.fixture
def seg(name: str) -> Iterator[strand.Segment]:
    segment = strand.create_strand(name, strand.compute_strand_map(IDS, 64, 1 << 16))
    yield segment
    gc.collect()
    segment.unlink()
    segment.close(timeout=2)


def _ids(n0: int, n: int) -> list[dict[str, Any]]:
    return [{"id": i} for i in range(n0, n0 + n)]


def test_a_batch_published_only_halfway_is_dropped_by_the_next_writer(
    seg: strand.Segment,
) -> None:
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(_ids(0, 10))
    # a writer that dies after storing BATCH_COMMIT and before COMMIT_SEQ: the batch entry
    # is there, the records are not committed
    writer.write_record_batch(_ids(100, 3))
    seg.atomics.store_u64(writer._ring.ctrl + CTRL.COMMIT_SEQ, 10)
    writer.close()
    assert view.committed_count == 10
    fresh = strand.StrandWriter(seg)
    fresh.write_record_batch(_ids(200, 3))
    assert view.read_table(0, 13).column("id").to_pylist() == [*range(10), 200, 201, 202]
    fresh.close()
    view.close()


def test_reads_need_a_registered_consumer(seg: strand.Segment) -> None:
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(_ids(0, 4))
    bystander = strand.StrandView(seg, register=False)
    with pytest.raises(strand.StrandStateError, match="no registered consumer"):
        bystander.read_batch(0, 4)
    cursor = bystander.allocate_cursor()
    assert not cursor.seek(0)  # committed before it looked: never readable
    writer.write_record_batch(_ids(4, 4))
    with pytest.raises(strand.StrandStateError, match="no registered consumer"):
        cursor.seek(5)
    token = bystander.register_consumer()
    assert bystander.read_batch(8, 8).num_rows == 0  # it starts at the current commit
    bystander.release_consumer(token)
    bystander.close()
    writer.close()


def test_reset_invalidates_cursors_and_lets_views_read_the_new_stream(
    seg: strand.Segment,
) -> None:
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(_ids(100, 6))
    cursor = view.allocate_cursor()
    assert cursor.seek(5)
    assert cursor.get_i64("id") == 105
    view.acknowledge_read(6)
    writer.reset()
    writer.begin()
    writer.write_record_batch(_ids(0, 2))
    assert not cursor.seek(5)  # only 2 records exist in the new stream
    assert cursor.seek(1)
    assert cursor.get_i64("id") == 1
    assert view.read_batch(0, 2).column("id").to_pylist() == [0, 1]
    view.close()
    writer.close()


def test_refused_writes_change_nothing(name: str) -> None:
    schema = StrandSchema(
        [StrandField("pos", "i64", nullable=False, sorted="asc"), StrandField("blob", "bytes")]
    )
    seg = strand.create_strand(name, strand.compute_strand_map(schema, 64, 1 << 16))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    big = b"x" * 40_000  # more than half the 64 KiB heap
    with pytest.raises(strand.StrandValueError, match="larger heap_capacity"):
        writer.write_record_batch([{"pos": 1, "blob": b""}, {"pos": 2, "blob": big}])
    table = pa.Table.from_batches(
        [
            pa.record_batch({"pos": [1, 2], "blob": [b"", b""]}),
            pa.record_batch({"pos": [0], "blob": [b""]}),  # breaks the order across chunks
        ]
    )
    with pytest.raises(strand.StrandValueError, match="sorted_asc"):
        writer.write_record_batch(table)
    assert view.committed_count == 0  # nothing of either refused write is visible
    writer.write_record_batch([{"pos": 1, "blob": b"ok"}])  # the order was not poisoned
    assert view.read_batch(0, 1).to_pylist() == [{"pos": 1, "blob": b"ok"}]
    writer.close()
    view.close()
    gc.collect()
    seg.unlink()
    seg.close(timeout=2)


def test_claims_keep_sorted_fields_in_order(name: str) -> None:
    seg = strand.create_strand(name, strand.compute_strand_map(SORTED, 64, 1 << 16))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    claim = writer.claim_slots(3)
    claim.columns["pos"].values[:] = [10, 20, 5]
    with pytest.raises(strand.StrandValueError, match="sorted_asc"):
        writer.commit_slots(claim)
    claim.columns["pos"].values[:] = [10, 20, 30]
    writer.commit_slots(claim)
    with pytest.raises(strand.StrandValueError, match="after 30"):
        writer.write_record_batch([{"pos": 29}])
    assert view.find_first("pos", 15) == 1
    del claim  # its numpy regions point into the segment
    writer.close()
    view.close()
    gc.collect()
    seg.unlink()
    seg.close(timeout=2)


def test_claims_that_cannot_fit_are_refused_and_can_be_abandoned(seg: strand.Segment) -> None:
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    held = [writer.claim_heap_bytes(30_000), writer.claim_heap_bytes(30_000)]
    assert [h.nbytes for h in held] == [30_000, 30_000]
    with pytest.raises(strand.StrandValueError, match="abandon_claims"):
        writer.claim_heap_bytes(30_000)  # with two pinned, a third can never fit
    del held
    writer.abandon_claims()
    writer.claim_heap_bytes(30_000)
    writer.abandon_claims()
    writer.write_record_batch(_ids(0, 3))
    assert view.read_batch(0, 3).num_rows == 3
    writer.close()
    view.close()


def test_a_stream_whose_writer_died_can_be_resumed(name: str, seg: strand.Segment) -> None:
    code = (
        "import strand\n"
        f"w = strand.StrandWriter({seg.name!r})\n"
        "w.begin()\n"
        "w.write_record_batch([{'id': 1}, {'id': 2}])\n"
        "import os; os._exit(0)\n"  # gone without close() or finalize()
    )
    view = strand.StrandView(seg)
    subprocess.run([sys.executable, "-c", code], check=True)
    assert view.wait_for_commit(0, 2) == 2
    assert view.status == "error"  # the writer is gone
    writer = strand.StrandWriter(seg)
    writer.begin()  # resumes: nothing committed is lost
    writer.write_record_batch([{"id": 3}])
    assert view.status == "streaming"
    assert view.read_table(0, 3).column("id").to_pylist() == [1, 2, 3]
    writer.close()
    view.close()


def test_a_dropped_view_stops_gating(seg: strand.Segment) -> None:
    writer = strand.StrandWriter(seg, timeout=1)
    writer.begin()
    forgotten = strand.StrandView(seg)
    writer.write_record_batch(_ids(0, 32))
    writer.write_record_batch(_ids(32, 32))
    del forgotten  # never closed: its finalizer releases its consumer
    gc.collect()
    writer.write_record_batch(_ids(64, 32))
    assert writer.committed_count == 96
    writer.close()


def test_cleanup_dead_keeps_a_live_segment_with_a_large_header(name: str) -> None:
    smap = strand.compute_strand_map(IDS, 64, 1 << 16, meta={"query": "q" * (2 << 20)})
    seg = strand.create_strand(name, smap)
    try:
        assert smap.header_bytes > 1 << 20
        assert strand.cleanup_dead(prefix=name) == []
        assert name in strand.list_segments()
    finally:
        seg.unlink()
        seg.close()


def test_use_after_close_is_a_clear_error(seg: strand.Segment) -> None:
    view = strand.StrandView(seg)
    cursor = view.allocate_cursor()
    view.close()
    with pytest.raises(strand.StrandStateError, match="closed"):
        view.read_batch(0, 0)
    with pytest.raises(strand.StrandStateError, match="closed"):
        cursor.seek(0)


def test_read_batch_copy_outlives_the_ring(seg: strand.Segment) -> None:
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(_ids(0, 5))
    kept = view.read_batch(0, 5, copy=True)
    view.acknowledge_read(5)
    for i in range(20):  # the ring goes round many times
        writer.write_record_batch(_ids(1000 + i * 30, 30))
        view.acknowledge_read(view.committed_count)
    writer.close()
    view.close()
    gc.collect()
    seg.close(timeout=2)  # the copy does not point into the segment
    assert kept.column("id").to_pylist() == [0, 1, 2, 3, 4]
