"""What the break-test of the IPC blocks found: a corrupted block is strand's error (never a
batch that crashes its user, never an Arrow or Python error), field metadata is not copied
into every block, and a producer that exits with the stream open is seen as dead."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

import strand
from strand import blocks
from strand.layout import CTRL

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def utf8_strand(name: str) -> Iterator[tuple[strand.Segment, strand.StrandView]]:
    schema = pa.schema([pa.field("s", pa.utf8())])
    seg = strand.create_strand(name, strand.compute_strand_map(schema, 64, 1 << 20))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(pa.record_batch({"s": ["hello", "world"]}))
    writer.close()
    yield seg, view
    view.close()
    seg.unlink()
    seg.close(timeout=2)


def test_a_corrupted_last_offset_is_an_error_not_a_batch(
    utf8_strand: tuple[strand.Segment, strand.StrandView],
) -> None:
    seg, view = utf8_strand
    got = view.read_batch(0, 2)
    offsets = got.column(0).buffers()[1]
    whole = np.frombuffer(seg.buf, np.uint8)
    last = offsets.address - whole.ctypes.data + 8  # offsets[2]: where "world" ends
    del got, offsets, whole
    assert struct.unpack_from("<i", seg.buf, last)[0] == 10
    struct.pack_into("<i", seg.buf, last, 0x7FFFFF00)  # another process scribbles on it
    with pytest.raises(strand.StrandValueError, match="corrupted"):
        view.read_batch(0, 2)


@pytest.mark.parametrize("field", ["at", "length"])
def test_a_header_pointing_past_the_segment_is_an_error(
    utf8_strand: tuple[strand.Segment, strand.StrandView], field: str
) -> None:
    seg, view = utf8_strand
    ring = view._ring
    phys = ring.heap_phys(ring.entry(0)[2])
    *head, at, length = blocks._IPC_HEAD.unpack_from(seg.buf, phys)
    huge = 2**64 - 1
    values = (huge, length) if field == "at" else (at, huge)
    blocks._IPC_HEAD.pack_into(seg.buf, phys, *head, *values)
    with pytest.raises(strand.StrandValueError, match="corrupted"):
        view.read_batch(0, 2)
    cursor = view.allocate_cursor()
    with pytest.raises(strand.StrandValueError, match="corrupted"):
        cursor.seek(0)


def test_field_metadata_is_not_copied_into_every_block(name: str) -> None:
    plain = pa.schema([pa.field("id", pa.int64()), pa.field("s", pa.utf8())])
    seg = strand.create_strand(name, strand.compute_strand_map(plain, 1024, 1 << 20))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    doc = {"doc": "d" * 600_000}  # more than half the heap, on a 3-row batch
    schema = pa.schema([pa.field("id", pa.int64()).with_metadata(doc), pa.field("s", pa.utf8())])
    batch = pa.record_batch([pa.array([1, 2, 3]), pa.array(["a", "b", "c"])], schema=schema)
    writer.write_record_batch(batch)
    writer.write_record_batch(batch)
    ring = view._ring
    assert ring.entry(1)[2] - ring.entry(0)[2] < 2048  # the block: 3 rows, no metadata
    got = view.read_batch(3, 6)
    assert got.schema.field("id").metadata is None
    assert got.to_pydict() == {"id": [1, 2, 3], "s": ["a", "b", "c"]}
    del got
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)


_PRODUCE_THEN_RAISE = """
import sys, numpy as np, pyarrow as pa, strand
writer = strand.StrandWriter(sys.argv[1])
writer.begin()
writer.write_record_batch(pa.record_batch({"x": np.arange(3)}))
raise RuntimeError("the producer fails with its stream open")
"""


def test_a_producer_that_dies_of_an_exception_is_seen_dead(name: str) -> None:
    schema = pa.schema([pa.field("x", pa.int64())])
    seg = strand.create_strand(name, strand.compute_strand_map(schema, 64, 1 << 16))
    view = strand.StrandView(seg)
    child = subprocess.run(
        [sys.executable, "-c", _PRODUCE_THEN_RAISE, name], capture_output=True, timeout=60
    )
    assert child.returncode == 1
    assert b"fails with its stream open" in child.stderr
    assert view._ring.load(CTRL.WRITER_PID) != 0  # the role was not given up on the way out
    deadline = time.monotonic() + 5
    while view.status != "error" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert view.status == "error"
    assert view.committed_count == 3
    view.close()
    seg.unlink()
    seg.close(timeout=2)
