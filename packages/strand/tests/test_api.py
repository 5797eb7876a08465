"""Claim/commit, find_first, bad input, intern table, reset, segments and asyncio waiting."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import strand
from strand import StrandField, StrandSchema


class Ring:
    """A strand with one writer and one view in this process, cleaned up afterwards."""

    def __init__(self, name: str, schema: Any, **kwargs: Any) -> None:
        smap = strand.compute_strand_map(
            schema, kwargs.pop("index", 64), kwargs.pop("heap", 1 << 16), **kwargs
        )
        self.seg = strand.create_strand(name, smap)
        self.view = strand.StrandView(self.seg)
        self.writer = strand.StrandWriter(self.seg, timeout=2)
        self.writer.begin()

    def close(self) -> None:
        self.writer.close()
        self.view.close()
        self.seg.unlink()
        self.seg.close(timeout=2)


@pytest.fixture
def make(name: str) -> Iterator[Any]:
    rings: list[Ring] = []

    def build(schema: Any, **kwargs: Any) -> Ring:
        ring = Ring(f"{name}-{len(rings)}", schema, **kwargs)
        rings.append(ring)
        return ring

    yield build
    for ring in rings:
        ring.close()


SIMPLE = StrandSchema(
    [
        StrandField("id", "i64", nullable=False),
        StrandField("s", "utf8"),
        StrandField("v", "f32_array"),
    ]
)


def test_claim_commit_writes_in_place(make: Any) -> None:
    r = make(SIMPLE)
    claim = r.writer.claim_slots(3)
    claim.columns["id"].values[:] = [7, 8, 9]
    text = b"aabbbc"
    heap = r.writer.claim_heap_bytes(len(text))
    heap.view[:] = np.frombuffer(text, np.uint8)
    claim.columns["s"].offsets[:] = [0, 2, 5, 6]
    claim.set_data("s", heap)
    floats = np.array([1.5, 2.5], np.float32)
    vheap = r.writer.claim_heap_bytes(floats.nbytes)
    vheap.view[:] = floats.view(np.uint8)
    claim.columns["v"].offsets[:] = [0, 0, 2, 2]
    claim.columns["v"].validity[0] = 0b101  # row 1 is null... then valid again
    claim.columns["v"].validity[0] = 0b111 & ~0b010
    claim.set_data("v", vheap)
    assert r.view.committed_count == 0  # nothing visible before the commit
    r.writer.commit_heap()
    r.writer.commit_slots(claim)
    got = r.view.read_batch(0, 3).to_pylist()
    assert got == [
        {"id": 7, "s": "aa", "v": []},
        {"id": 8, "s": "bbb", "v": None},
        {"id": 9, "s": "c", "v": []},
    ]


def test_claims_commit_in_order_and_errors_leave_the_ring_usable(make: Any) -> None:
    r = make(StrandSchema([StrandField("id", "i64", nullable=False)]))
    first = r.writer.claim_slots(2)
    second = r.writer.claim_slots(2)
    first.columns["id"].values[:] = [1, 2]
    second.columns["id"].values[:] = [3, 4]
    with pytest.raises(strand.StrandOrderError, match="claim order"):
        r.writer.commit_slots(second)
    with pytest.raises(strand.StrandOrderError, match="pending slot claims"):
        r.writer.write_record_batch([{"id": 0}])
    r.writer.commit_slots(first)
    r.writer.commit_slots(second)
    with pytest.raises(strand.StrandOrderError, match="not pending"):
        r.writer.commit_slots(second)
    assert r.view.read_table(0, 4).column("id").to_pylist() == [1, 2, 3, 4]


def test_bad_offsets_and_uncommitted_heap_are_refused(make: Any) -> None:
    r = make(SIMPLE)
    claim = r.writer.claim_slots(2)
    claim.columns["s"].offsets[:] = [0, 3, 1]
    heap = r.writer.claim_heap_bytes(3)
    claim.set_data("s", heap)
    with pytest.raises(strand.StrandValueError, match="never decrease"):
        r.writer.commit_slots(claim)
    claim.columns["s"].offsets[:] = [0, 1, 3]
    with pytest.raises(strand.StrandOrderError, match="commit_heap"):
        r.writer.commit_slots(claim)
    r.writer.commit_heap()
    r.writer.commit_slots(claim)
    assert r.view.committed_count == 2


def test_a_new_writer_rewinds_a_half_written_claim(make: Any) -> None:
    r = make(StrandSchema([StrandField("id", "i64", nullable=False)]))
    r.writer.write_record_batch([{"id": 1}])
    half = r.writer.claim_slots(5)
    half.columns["id"].values[:2] = [99, 99]
    r.writer.close()  # the producer goes away without committing
    fresh = strand.StrandWriter(r.seg)
    fresh.write_record_batch([{"id": 2}, {"id": 3}])
    assert r.view.read_table(0, r.view.committed_count).column("id").to_pylist() == [1, 2, 3]
    r.writer = fresh


def test_a_second_open_writer_is_refused(make: Any) -> None:
    r = make(SIMPLE)
    with pytest.raises(strand.StrandBusyError, match=r"open writer \(this process\)"):
        strand.StrandWriter(r.seg)  # the same process counts too: two writers would interleave
    ctrl = r.writer._ring.ctrl
    parent = os.getppid()  # a live process that is not this one
    r.seg.atomics.store_u64(ctrl + strand.layout.CTRL.WRITER_PID, parent)
    r.seg.atomics.store_u64(
        ctrl + strand.layout.CTRL.WRITER_START, strand.sync.process_start_time(parent)
    )
    with pytest.raises(strand.StrandBusyError, match=f"open writer \\(pid {parent}\\)"):
        strand.StrandWriter(r.seg)
    r.seg.atomics.store_u64(ctrl + strand.layout.CTRL.WRITER_PID, os.getpid())
    r.seg.atomics.store_u64(ctrl + strand.layout.CTRL.WRITER_START, r.writer._ring.start)
    r.writer.close()
    again = strand.StrandWriter(r.seg)  # after close() the role is free
    r.writer = again


def test_a_dropped_writer_frees_the_role(make: Any) -> None:
    r = make(SIMPLE)
    r.writer.close()
    dropped = strand.StrandWriter(r.seg)
    del dropped  # never closed: its finalizer gives the role back
    import gc

    gc.collect()
    r.writer = strand.StrandWriter(r.seg)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_find_first_edges(make: Any, order: str) -> None:
    schema = StrandSchema([StrandField("pos", "i64", nullable=False, sorted=order)])  # type: ignore[arg-type]
    r = make(schema)
    assert r.view.find_first("pos", 5) is None  # empty
    values = [1, 3, 3, 3, 7, 9] if order == "asc" else [9, 7, 3, 3, 3, 1]
    r.writer.write_record_batch([{"pos": v} for v in values[:3]])
    r.writer.write_record_batch([{"pos": v} for v in values[3:]])  # search spans batches
    if order == "asc":
        cases = {0: 0, 1: 0, 2: 1, 3: 1, 4: 4, 9: 5, 10: None}
    else:
        cases = {10: 0, 9: 0, 8: 1, 3: 2, 2: 5, 1: 5, 0: None}
    for probe, expected in cases.items():
        assert r.view.find_first("pos", probe) == expected, probe
    bad = [{"pos": 0}] if order == "asc" else [{"pos": 100}]
    with pytest.raises(strand.StrandValueError, match=f"sorted_{order}"):
        r.writer.write_record_batch(bad)
    unsorted = [{"pos": 20}, {"pos": 10}] if order == "asc" else [{"pos": 0}, {"pos": 1}]
    with pytest.raises(strand.StrandValueError, match="comes after"):
        r.writer.write_record_batch(unsorted)
    r.view.acknowledge_read(2)  # released records are no longer searched
    assert r.view.find_first("pos", values[0]) == 2
    with pytest.raises(strand.StrandValueError, match="not flagged sorted"):
        make(SIMPLE).view.find_first("id", 1)


def test_bad_values_are_clear_errors_and_the_ring_stays_usable(make: Any) -> None:
    schema = StrandSchema(
        [
            StrandField("small", "u8"),
            StrandField("req", "utf8", nullable=False),
            StrandField("tag", "utf8_ref"),
        ]
    )
    r = make(schema, heap=1 << 16, intern=["x", "y"])
    ok = {"small": 1, "req": "a", "tag": "x"}
    with pytest.raises(strand.StrandValueError, match='"small"'):
        r.writer.write_record_batch([{**ok, "small": 300}])
    with pytest.raises(strand.StrandValueError, match="not nullable"):
        r.writer.write_record_batch([{**ok, "req": None}])
    with pytest.raises(strand.StrandValueError, match=r"not in the intern table.*'z'"):
        r.writer.write_record_batch([{**ok, "tag": "z"}])
    with pytest.raises(strand.StrandValueError, match="unknown field"):
        r.writer.write_record_batch([{**ok, "extra": 1}])
    with pytest.raises(strand.StrandValueError, match="missing: tag"):
        r.writer.write_record_batch(pa.record_batch({"small": [1], "req": ["a"]}))
    with pytest.raises(strand.StrandValueError, match="larger heap_capacity"):
        r.writer.write_record_batch([{**ok, "req": "q" * 40_000}])
    assert r.view.committed_count == 0  # nothing of a refused batch was written
    r.writer.write_record_batch([ok])
    assert r.view.read_batch(0, 1).to_pylist() == [ok]


def test_values_up_to_16_mib(make: Any) -> None:
    r = make(StrandSchema([StrandField("blob", "bytes")]), heap=64 << 20)
    blob = os.urandom(16 << 20)
    r.writer.write_record_batch([{"blob": blob}])
    cursor = r.view.allocate_cursor()
    assert cursor.seek(0)
    assert cursor.get_bytes("blob").tobytes() == blob
    del cursor


def test_a_batch_larger_than_the_ring_is_split_and_streamed(make: Any) -> None:
    import threading

    r = make(StrandSchema([StrandField("id", "i64", nullable=False)]), index=1024, heap=1 << 16)
    got: list[int] = []

    def drain() -> None:
        seen = 0
        while seen < 50_000:
            count = r.view.wait_for_commit(seen, 5)
            got.append(
                sum(b.column("id").to_numpy().sum() for b in r.view.read_batches(seen, count))
            )
            r.view.acknowledge_read(count)
            seen = count

    reader = threading.Thread(target=drain)
    reader.start()
    ids = np.arange(50_000, dtype=np.int64)  # 400 KB through a 64 KiB heap and 1024 slots
    assert r.writer.write_record_batch(pa.record_batch([pa.array(ids)], names=["id"])) == 50_000
    reader.join(10)
    assert sum(got) == int(ids.sum())


def test_intern_table_update_is_seen_by_every_cursor(make: Any) -> None:
    r = make(StrandSchema([StrandField("tag", "utf8_ref")]), intern=["a", "b"])
    r.writer.write_record_batch([{"tag": "b"}, {"tag": None}])
    cursors = [r.view.allocate_cursor() for _ in range(3)]
    for c in cursors:
        c.seek(0)
        assert c.get_ref("tag") == "b"
    other = strand.StrandView(r.seg, register=False)
    other.update_intern_table(["A", "B", "C"])  # another view replaces the table
    assert [c.get_ref("tag") for c in cursors] == ["B", "B", "B"]
    r.writer.write_record_batch([{"tag": "C"}])
    assert r.view.read_table(0, 3).column("tag").to_pylist() == ["B", None, "C"]
    other.close()


def test_reset_starts_a_fresh_stream(make: Any) -> None:
    r = make(SIMPLE)
    r.writer.write_record_batch([{"id": 1, "s": "x", "v": [1.0]}])
    r.writer.finalize()
    assert r.view.status == "eos"
    with pytest.raises(strand.StrandStateError, match="finalized"):
        r.writer.write_record_batch([{"id": 2}])
    epoch = r.view.epoch
    r.writer.reset()
    assert (r.view.status, r.view.committed_count, r.view.epoch) == ("initializing", 0, epoch + 1)
    r.writer.begin()
    r.writer.write_record_batch([{"id": 5, "s": None, "v": None}])
    assert r.view.read_batch(0, 1).column("id").to_pylist() == [5]


def test_wait_for_commit_times_out_and_the_async_variant_wakes(make: Any) -> None:
    r = make(SIMPLE)
    with pytest.raises(strand.StrandTimeoutError, match=r"within 0\.05 s"):
        r.view.wait_for_commit(0, 0.05)

    async def scenario() -> int:
        waiter = asyncio.create_task(r.view.wait_for_commit_async(0, 5))
        await asyncio.sleep(0.05)
        r.writer.write_record_batch([{"id": 1}])
        return await waiter

    assert asyncio.run(scenario()) == 1


def test_acknowledge_and_consumers(make: Any) -> None:
    r = make(SIMPLE)
    r.writer.write_record_batch([{"id": i} for i in range(4)])
    with pytest.raises(strand.StrandValueError, match="beyond the 4 committed"):
        r.view.acknowledge_read(5)
    token = r.view.register_consumer()
    assert r.view.consumers == 2
    r.view.acknowledge_read(4)
    with pytest.raises(strand.StrandValueError, match="acknowledged"):
        r.view.read_batch(0, 4)  # both of the view's consumers are past them
    r.view.release_consumer(token)
    with pytest.raises(strand.StrandStateError, match="not registered"):
        r.view.acknowledge_read(4, token)


def test_segment_errors(name: str) -> None:
    with pytest.raises(strand.StrandNotFoundError, match="no shared-memory segment"):
        strand.StrandView(f"{name}-missing")
    with pytest.raises(strand.StrandConfigError, match="not allowed"):
        strand.Segment.create("../etc/passwd", 100)
    seg = strand.Segment.create(name, 4096)
    try:
        with pytest.raises(strand.StrandBusyError, match="already exists"):
            strand.Segment.create(name, 4096)
        with pytest.raises(strand.StrandHeaderError, match="wrong magic"):
            strand.StrandView(seg)
    finally:
        seg.unlink()
        seg.close()
    free = os.statvfs(strand.segment.SHM_DIR)
    too_big = free.f_bavail * free.f_frsize + (1 << 30)
    with pytest.raises(strand.StrandSpaceError, match="no room in shared memory"):
        strand.Segment.create(name, too_big)
    assert name not in strand.list_segments()


def test_close_waits_for_views_to_go(make: Any) -> None:
    r = make(SIMPLE)
    r.writer.write_record_batch([{"id": 1}])
    batch = r.view.read_batch(0, 1)
    cursor = r.view.allocate_cursor()
    cursor.seek(0)
    with pytest.raises(strand.StrandBusyError, match="open StrandWriter"):
        r.seg.close()  # the writer copies through raw addresses: it pins the mapping
    r.writer.close()
    with pytest.raises(strand.StrandBusyError, match="live views"):
        r.seg.close()
    del batch
    r.seg.close(timeout=2)  # collects the dropped batch and closes
    assert r.seg.closed


def test_cleanup_dead_removes_segments_of_dead_owners(name: str, w: Any) -> None:
    import subprocess
    import sys

    code = (
        "import strand, sys\n"
        f"m = strand.compute_strand_map(strand.StrandSchema([strand.StrandField('x','i64')]), 2, 65536)\n"
        f"strand.create_strand({name!r}, m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert name in strand.list_segments()  # its creator exited without unlinking
    mine = strand.create_strand(f"{name}-alive", strand.compute_strand_map(SIMPLE, 2, 65536))
    removed = strand.cleanup_dead(prefix=name)
    assert removed == [name]
    assert f"{name}-alive" in strand.list_segments()
    mine.unlink()
    mine.close()


def test_the_slowest_consumer_gates_the_writer(make: Any) -> None:
    r = make(StrandSchema([StrandField("id", "i64", nullable=False)]), index=8)
    lagging = r.view.register_consumer()
    r.writer.write_record_batch([{"id": i} for i in range(4)])
    r.writer.write_record_batch([{"id": i} for i in range(4, 8)])
    r.view.acknowledge_read(8)  # the view's own consumer is done; "lagging" is at 0
    with pytest.raises(strand.StrandTimeoutError, match="slowest consumer"):
        r.writer.write_record_batch([{"id": 8}], timeout=0.2)
    r.view.acknowledge_read(4, lagging)
    r.writer.write_record_batch([{"id": i} for i in range(8, 12)], timeout=1)
    with pytest.raises(strand.StrandTimeoutError):
        r.writer.write_record_batch([{"id": 12}], timeout=0.2)
    r.view.release_consumer(lagging)  # releasing wakes the writer as well
    r.writer.write_record_batch([{"id": 12}], timeout=1)
    assert r.view.committed_count == 13
