"""Blocks written by write_record_batch are Arrow IPC messages: sliced inputs (bit offsets,
offsets not starting at 0), every layout, and the cursor's view of the same bytes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import strand
from strand import _ipcmeta, blocks

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


def _arrow_descriptors(
    seg: strand.Segment, phys: int, mono: int, schema: strand.StrandSchema
) -> list[tuple[int, int, int, int, int]]:
    """The oracle: each column's buffer positions as pyarrow's own reader finds them."""
    ipc, rows, _, at, length = blocks.read_head(seg.buf, phys, len(schema))
    assert ipc
    root = pa.py_buffer(seg.buf)
    batch = blocks.ipc_batch(root, phys, at, length, schema.ipc_schema)
    block = root.address + phys
    descs = []
    for field, arr in zip(schema.fields, batch.columns, strict=True):
        bufs = arr.buffers()
        nulls = arr.null_count
        validity = mono + bufs[0].address - block if nulls and bufs[0] is not None else blocks.NONE
        data, data_len = blocks.NONE, 0
        if field.type.kind in ("utf8", "json", "bytes", "i32_array", "f32_array"):
            offsets = np.frombuffer(bufs[1], np.int32, rows + 1)
            unit = 1 if field.type.kind in ("utf8", "json", "bytes") else 4
            data_len = int(offsets[rows] - offsets[0]) * unit
            source = bufs[2] if unit == 1 else bufs[3]
            if source is not None and source.size:
                data = mono + source.address - block
        descs.append((validity, mono + bufs[1].address - block, data, data_len, nulls))
    del batch, root, arr, bufs, source
    return descs


@pytest.mark.parametrize("start", [0, 5, 150])
def test_descriptors_from_the_message_metadata_match_arrows_reader(name: str, start: int) -> None:
    seg = strand.create_strand(
        name, strand.compute_strand_map(SCHEMA, 1024, 1 << 20, intern=INTERN)
    )
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(_source(200).slice(start, 45))
    ring = view._ring
    mono = ring.entry(0)[2]
    phys = ring.heap_phys(mono)
    rows, first, descs = blocks.read_descriptors(seg.buf, phys, mono, SCHEMA)
    assert (rows, first) == (45, 0)
    assert descs == _arrow_descriptors(seg, phys, mono, SCHEMA)
    assert any(d[0] != blocks.NONE for d in descs)  # nulls present: bitmaps are located too
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (0, b"\x00\x00\x00\x00"),  # the continuation marker
        (4, b"\xff\xff\xff\x7f"),  # a metadata length beyond the message
        (8, b"\xff\xff\x00\x00"),  # the flatbuffer's root offset
        (-1, b""),  # a buffer offset pointing outside the body (set below)
    ],
)
def test_a_cursor_on_a_corrupted_message_gets_a_clear_error(
    name: str, where: int, value: bytes
) -> None:
    schema = pa.schema([pa.field("x", pa.int64()), pa.field("s", pa.utf8())])
    seg = strand.create_strand(name, strand.compute_strand_map(schema, 1024, 1 << 16))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(pa.record_batch({"x": np.arange(10), "s": list("abcdefghij")}))
    ring = view._ring
    phys = ring.heap_phys(ring.entry(0)[2])
    _, _, _, at, length = blocks.read_head(seg.buf, phys, 2)
    message = phys + at
    if where < 0:  # find the values buffer of "x" (16 bytes: offset, length) and move it away
        meta = _ipcmeta.read_batch_meta(seg.buf, message, length)
        offset, size = meta.buffers[1]
        raw = bytes(
            seg.buf[
                message : message + 8 + int.from_bytes(seg.buf[message + 4 : message + 8], "little")
            ]
        )
        pair = (offset - 8 - (len(raw) - 8)).to_bytes(8, "little") + size.to_bytes(8, "little")
        where = raw.index(pair)
        value = (1 << 40).to_bytes(8, "little")
    seg.buf[message + where : message + where + len(value)] = value
    cursor = view.allocate_cursor()
    with pytest.raises(strand.StrandValueError, match="corrupted"):
        cursor.seek(3)
    del cursor
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)
