"""Geometry, header validation order, schema encoding and fingerprints."""

from __future__ import annotations

import pyarrow as pa
import pytest

import strand
from platform_core import Field, Schema
from strand import (
    StrandConfigError,
    StrandField,
    StrandHeaderError,
    StrandSchema,
    compute_strand_map,
    fnv1a64,
    init_strand_header,
    read_strand_header,
)

ALL_TYPES = Schema(
    [
        Field("u8", "u8"), Field("u16", "u16"), Field("u32", "u32"), Field("i32", "i32"),
        Field("i64", "i64", nullable=False), Field("f32", "f32"), Field("f64", "f64"),
        Field("b", "bool8"), Field("s", "utf8"), Field("r", "utf8_ref"), Field("j", "json"),
        Field("y", "bytes"), Field("ia", "i32_array"), Field("fa", "f32_array"),
        Field("d", "date"), Field("t", "timestamp[us, Europe/Paris]"), Field("n", "timestamp"),
        Field("m", "decimal(38, 9)"),
    ]
)  # fmt: skip


def test_fnv1a64_reference_values() -> None:
    # published FNV-1a 64-bit test vectors
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_binary_schema_round_trips_every_type_and_flag() -> None:
    schema = StrandSchema.of(ALL_TYPES, sorted={"i64": "desc"})
    back = StrandSchema.from_binary(schema.to_binary())
    assert back == schema
    assert back.fields[4].sorted == "desc"
    assert back.fields[4].flags == strand.FLAG_SORTED_DESC
    assert back.fields[0].flags == strand.FLAG_NULLABLE
    assert [str(f.type) for f in back] == [str(f.type) for f in ALL_TYPES]
    assert back.fingerprint == fnv1a64(schema.to_binary())


def test_arrow_schema_input_keeps_sort_metadata() -> None:
    arrow = pa.schema(
        [pa.field("pos", pa.int64(), nullable=False, metadata={b"strand.sorted": b"asc"})]
    )
    assert StrandSchema.of(arrow).fields[0].sorted == "asc"


@pytest.mark.parametrize("capacity", [0, 1, 3, 1000, 2**31, -4])
def test_index_capacity_must_be_a_power_of_two(capacity: int) -> None:
    with pytest.raises(StrandConfigError, match="power of two"):
        compute_strand_map(ALL_TYPES, capacity, 1 << 20)


def test_bad_geometry_and_flags_are_refused() -> None:
    with pytest.raises(StrandConfigError, match="heap_capacity"):
        compute_strand_map(ALL_TYPES, 1024, 1000)
    with pytest.raises(StrandConfigError, match="cannot hold nulls"):
        StrandField("x", "i64", nullable=True, sorted="asc")
    with pytest.raises(StrandConfigError, match="cannot be flagged sorted"):
        StrandField("x", "json", nullable=False, sorted="asc")
    with pytest.raises(StrandConfigError, match="unknown fields"):
        compute_strand_map(ALL_TYPES, 1024, 1 << 20, sorted={"nope": "asc"})
    with pytest.raises(StrandConfigError, match="intern_capacity"):
        compute_strand_map(ALL_TYPES, 1024, 1 << 20, intern=["x" * 100], intern_capacity=50)
    with pytest.raises(StrandConfigError, match="JSON"):
        compute_strand_map(ALL_TYPES, 1024, 1 << 20, meta={"q": object()})


def test_map_regions_are_page_aligned_and_ordered() -> None:
    m = compute_strand_map(ALL_TYPES, 4096, 1 << 20, {"query": {"chrom": "1"}}, 500)
    offsets = [m.control_offset, m.intern_offset, m.batches_offset, m.heap_offset]
    assert offsets == sorted(offsets)
    assert all(o % 4096 == 0 for o in offsets)
    assert m.total_bytes >= m.heap_offset + m.heap_capacity
    assert m.query == {"chrom": "1"}
    assert m.meta["columns"] == list(ALL_TYPES.names)


def _header(meta: dict[str, object] | None = None) -> tuple[bytearray, strand.StrandMap]:
    m = compute_strand_map(ALL_TYPES, 64, 1 << 16, meta, 10, intern=["a", "b"])
    buf = bytearray(m.total_bytes)
    init_strand_header(buf, m, owner_pid=123, owner_start=456)
    return buf, m


def test_header_round_trip() -> None:
    buf, m = _header({"query": [1, 2]})
    back = read_strand_header(buf, ALL_TYPES)
    assert back.schema == m.schema
    assert back.query == [1, 2]
    assert back.intern_table == ["a", "b"]
    assert (back.owner_pid, back.owner_start, back.estimated_records) == (123, 456, 10)


def test_attach_checks_magic_first() -> None:
    buf, _ = _header()
    buf[0:4] = b"XXXX"
    buf[100] ^= 0xFF  # also corrupt: the magic must be reported, not the checksum
    with pytest.raises(StrandHeaderError, match="wrong magic"):
        read_strand_header(buf)


def test_attach_checks_checksum_before_schema() -> None:
    buf, _m = _header({"query": "abc"})
    at = bytes(buf).index(b'"abc"')
    buf[at + 1] = ord("x")
    with pytest.raises(StrandHeaderError, match="checksum mismatch"):
        read_strand_header(buf, Schema([Field("other", "i32")]))


def test_attach_names_the_schema_difference() -> None:
    buf, _ = _header()
    other = Schema([*ALL_TYPES.fields[:3], Field("i32", "i64"), *ALL_TYPES.fields[4:]])
    with pytest.raises(StrandHeaderError, match='field "i32" is i64 nullable here but i32'):
        read_strand_header(buf, other)


def test_unsupported_version_is_named() -> None:
    buf, _ = _header()
    buf[4] = 9
    with pytest.raises(StrandHeaderError, match="version 9"):
        read_strand_header(buf)
