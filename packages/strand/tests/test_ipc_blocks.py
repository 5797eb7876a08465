"""Blocks written by write_record_batch are Arrow IPC messages: sliced inputs (bit offsets,
offsets not starting at 0), every layout, and the cursor's view of the same bytes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import strand
from strand import blocks

INTERN = ["a", "bb", "ccc"]


def _source(rows: int) -> pa.RecordBatch:
    """Every layout, with nulls at irregular places, so slices cut through bitmaps."""
    rng = np.random.default_rng(7)
    mask = rng.random(rows) < 0.3
    ints = pa.array(rng.integers(-(2**40), 2**40, rows), pa.int64(), mask=mask)
    flags = pa.array(rng.random(rows) < 0.5, pa.bool_(), mask=rng.random(rows) < 0.2)
    words = pa.array(
        [None if i % 7 == 3 else "x" * (i % 11) + str(i) for i in range(rows)], pa.utf8()
    )
    lists = pa.array(
        [None if i % 5 == 1 else list(range(i % 4)) for i in range(rows)], pa.list_(pa.int32())
    )
    refs = pa.array([INTERN[i % 3] if i % 6 else None for i in range(rows)], pa.utf8())
    docs = pa.ExtensionArray.from_storage(
        pa.json_(),
        pa.array([json.dumps({"i": i}) if i % 4 else None for i in range(rows)], pa.utf8()),
    )
    return pa.RecordBatch.from_arrays(
        [ints, flags, words, lists, refs.dictionary_encode(), docs],
        names=["i", "b", "s", "l", "r", "j"],
    )


SCHEMA = strand.StrandSchema(
    [
        strand.StrandField("i", "i64"),
        strand.StrandField("b", "bool8"),
        strand.StrandField("s", "utf8"),
        strand.StrandField("l", "i32_array"),
        strand.StrandField("r", "utf8_ref"),
        strand.StrandField("j", "json"),
    ]
)


def _plain(table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    for row in rows:
        if row["j"] is not None:
            row["j"] = json.loads(row["j"])
    return rows


@pytest.mark.parametrize("start", [0, 1, 3, 8, 13])
def test_sliced_batches_round_trip_through_reads_and_the_cursor(name: str, start: int) -> None:
    source = _source(200)
    seg = strand.create_strand(
        name, strand.compute_strand_map(SCHEMA, 1024, 1 << 20, intern=INTERN)
    )
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    pieces = [source.slice(start, 37), source.slice(start + 37, 64), source.slice(150)]
    for piece in pieces:
        writer.write_record_batch(piece)
    expected = _plain(pa.Table.from_batches(pieces))
    got = view.read_table(0, view.committed_count)
    assert _plain(got) == expected
    cursor = view.allocate_cursor()
    for seq, want in enumerate(expected):
        assert cursor.seek(seq)
        assert cursor.get("i") == want["i"]
        assert cursor.get("b") == want["b"]
        assert cursor.get("s") == want["s"]
        assert cursor.get("r") == want["r"]
        lst = cursor.get("l")
        assert (None if lst is None else lst.tolist()) == want["l"]
        assert cursor.get("j") == want["j"]
    del got, cursor, lst
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)


def test_a_block_is_one_ipc_message_read_without_a_copy(name: str) -> None:
    schema = pa.schema([pa.field("x", pa.int64()), pa.field("y", pa.float64())])
    batch = pa.record_batch(
        {"x": np.arange(1000), "y": np.linspace(0, 1, 1000)}, schema=schema
    ).replace_schema_metadata({"pandas": "x" * 10_000})  # never copied into a block
    seg = strand.create_strand(name, strand.compute_strand_map(schema, 4096, 1 << 20))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(batch)
    writer.write_record_batch(batch)
    ring = view._ring
    first, rows, mono, _ = ring.entry(1)
    ipc, block_rows, block_first, _at, length = blocks.read_head(seg.buf, ring.heap_phys(mono), 2)
    assert (ipc, block_rows, block_first) == (True, 1000, 1000) == (True, rows, first)
    assert length < 16_500  # the batch message: 16 KB of values, no schema metadata
    assert ring.entry(1)[2] - ring.entry(0)[2] < 17_500  # block to block, all included
    got = view.read_batch(1000, 2000)
    assert isinstance(got, pa.RecordBatch)
    assert got.equals(batch.replace_schema_metadata(None))
    whole = np.frombuffer(seg.buf, np.uint8)
    base = whole.ctypes.data
    del whole
    for column in got.columns:
        assert base <= column.buffers()[1].address < base + seg.size
    del got, column
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)


def test_a_corrupted_ipc_block_is_a_clear_error(name: str) -> None:
    schema = pa.schema([pa.field("x", pa.int64())])
    seg = strand.create_strand(name, strand.compute_strand_map(schema, 1024, 1 << 16))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(pa.record_batch({"x": np.arange(10)}))
    ring = view._ring
    phys = ring.heap_phys(ring.entry(0)[2])
    _, _, _, at, _ = blocks.read_head(seg.buf, phys, 1)
    seg.buf[phys + at : phys + at + 8] = b"\x00" * 8  # the message's length prefix
    with pytest.raises(strand.StrandValueError, match="corrupted"):
        view.read_batch(0, 10)
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)
