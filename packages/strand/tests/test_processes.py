"""Producers and consumers in real, separate processes: backpressure, wrap, gating, faults."""

from __future__ import annotations

import signal
import time
from typing import Any

import pyarrow.compute as pc
import pytest

import strand


def _create(name: str, w: Any, index_capacity: int = 256, heap: int = 256 * 1024) -> strand.Segment:
    return strand.create_strand(name, strand.compute_strand_map(w.SCHEMA, index_capacity, heap))


def _expected_sum(batches: int, rows: int) -> int:
    n = batches * rows
    return n * (n - 1) // 2


def test_flood_with_slow_consumer_stalls_and_wakes_the_writer(name: str, w: Any) -> None:
    seg = _create(name, w, index_capacity=256)
    view = strand.StrandView(seg)
    batches, rows = 40, 100  # 4000 records through a 256-record ring: over 15 times around
    producer = w.spawn("produce", name, f"batches={batches}", f"rows={rows}")
    try:
        seen = 0
        total = 0
        stalls = 0
        while True:
            count = view.wait_for_commit(seen, 10)
            for batch in view.read_batches(seen, count):
                w.check_batch(batch)
                total += pc.sum(batch.column("id")).as_py()
            batch = None  # drop the zero-copy views before acknowledging
            if stalls < 3 and view.status == "streaming":
                # hold what was read unacknowledged: the writer must stop within the ring
                time.sleep(0.3)
                stalled_at = view.committed_count
                time.sleep(0.2)
                assert view.committed_count == stalled_at, "the writer ran past the ring"
                assert stalled_at - seen <= 256
                stalls += 1
            view.acknowledge_read(count)  # wakes the writer
            seen = count
            if view.status == "eos" and view.committed_count == seen:
                break
        assert w.result(producer)["written"] == batches * rows
        assert seen == batches * rows
        assert total == _expected_sum(batches, rows)
        assert stalls == 3
    finally:
        producer.kill()
        view.close()
        seg.unlink()
        seg.close(timeout=1)


def test_heap_wraps_many_times_with_strings_and_arrays_read_back_exactly(name: str, w: Any) -> None:
    seg = _create(name, w, index_capacity=1024, heap=64 * 1024)
    consumer = w.spawn("consume", name)
    w.wait_line(consumer, "ready")
    producer = w.spawn("produce", name, "batches=200", "rows=60")
    try:
        got = w.result(consumer)
        assert w.result(producer)["written"] == 12_000
        # every batch was compared value by value inside the consumer (check_batch)
        assert got == got | {"records": 12_000, "sum": _expected_sum(200, 60), "status": "eos"}
    finally:
        producer.kill()
        consumer.kill()
        seg.unlink()
        seg.close()


def test_two_consumers_each_get_everything_and_the_slow_one_gates(name: str, w: Any) -> None:
    seg = _create(name, w, index_capacity=128, heap=128 * 1024)
    fast = w.spawn("consume", name)
    slow = w.spawn("consume", name, "slow=0.01")
    w.wait_line(fast, "ready")
    w.wait_line(slow, "ready")
    producer = w.spawn("produce", name, "batches=60", "rows=50")
    try:
        for proc in (fast, slow):
            got = w.result(proc)
            assert got["records"] == 3000
            assert got["sum"] == _expected_sum(60, 50)
        assert w.result(producer)["written"] == 3000
    finally:
        for proc in (fast, slow, producer):
            proc.kill()
        seg.unlink()
        seg.close()


def test_abort_reaches_a_blocked_producer_within_its_timeout(name: str, w: Any) -> None:
    seg = _create(name, w, index_capacity=64)
    view = strand.StrandView(seg)
    producer = w.spawn("produce", name, "batches=1000", "rows=32", "timeout=30")
    try:
        w.wait_line(producer, "started")
        view.wait_for_commit(0, 10)
        time.sleep(0.2)  # the producer is now blocked on the full ring
        sent = time.monotonic()
        view.signal_abort()
        out = w.result(producer, timeout=10)
        assert out["aborted"] is True
        assert out["written"] < 1000 * 32
        assert time.monotonic() - sent < 5, "abort did not reach the blocked writer promptly"
        assert view.status == "error"
    finally:
        producer.kill()
        view.close()
        seg.unlink()
        seg.close()


def test_producer_killed_mid_batch_leaves_no_torn_record(name: str, w: Any) -> None:
    seg = _create(name, w)
    view = strand.StrandView(seg)
    producer = w.spawn("produce_torn", name, "rows=100")
    try:
        w.wait_line(producer, "half")
        producer.send_signal(signal.SIGKILL)
        producer.wait(10)
        count = view.wait_for_commit(100, 3)  # returns once it sees the writer is dead
        assert count == 100
        assert view.status == "error"
        batch = view.read_batch(0, count)
        w.check_batch(batch)
        del batch
        # a new writer rewinds the half-written claim and the ring is usable again
        writer = strand.StrandWriter(seg)
        writer.reset()
        view2 = strand.StrandView(seg)
        writer.begin()
        writer.write_record_batch(w.make_batch(0, 10))
        assert view2.wait_for_commit(0, 1) == 10
        writer.close()
        view2.close()
    finally:
        producer.kill()
        view.close()
        seg.unlink()
        seg.close(timeout=1)


def test_killed_consumer_is_evicted_and_the_writer_continues(name: str, w: Any) -> None:
    seg = _create(name, w, index_capacity=64)
    consumer = w.spawn("consume", name, "register_only=true")
    w.wait_line(consumer, "ready")
    writer = strand.StrandWriter(seg, timeout=20)
    writer.begin()
    try:
        writer.write_record_batch(w.make_batch(0, 32))
        writer.write_record_batch(w.make_batch(1, 32))
        with pytest.raises(strand.StrandTimeoutError):
            writer.write_record_batch(w.make_batch(2, 32), timeout=0.5)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(10)
        for i in range(2, 12):  # far past the ring: only possible once the dead one is gone
            writer.write_record_batch(w.make_batch(i, 32))
        assert writer.committed_count == 12 * 32
    finally:
        consumer.kill()
        writer.close()
        seg.unlink()
        seg.close()


def test_a_blocked_reader_uses_almost_no_cpu(name: str, w: Any) -> None:
    seg = _create(name, w)
    reader = w.spawn("wait_blocked", name, "seconds=5")
    try:
        got = w.result(reader, timeout=30)
        assert got["outcome"] == "timeout"
        assert got["wall"] >= 4.9
        assert got["cpu"] < 0.05 * got["wall"], f"a blocked reader used {got['cpu']:.3f} s CPU"
    finally:
        reader.kill()
        seg.unlink()
        seg.close()


def test_attaching_process_exit_does_not_unlink_the_segment(name: str, w: Any) -> None:
    seg = _create(name, w)
    try:
        reader = w.spawn("wait_blocked", name, "seconds=0.1")
        assert w.result(reader)["outcome"] == "timeout"
        assert name in strand.list_segments()
        strand.StrandView(name).close()  # still attachable by name
    finally:
        seg.unlink()
        seg.close()
