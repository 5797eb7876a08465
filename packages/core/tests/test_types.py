"""The field-type vocabulary: text and Arrow round trips, aliases, widening, clear errors."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_core.errors import BadInputError
from platform_core.types import (
    DATE,
    F32,
    F32_ARRAY,
    I32,
    I32_ARRAY,
    I64,
    JSON,
    UTF8,
    UTF8_REF,
    VOCABULARY,
    FieldType,
    decimal,
    from_arrow,
    parse_type,
    timestamp,
)

SIMPLE = [kind for kind in VOCABULARY if kind not in ("timestamp", "decimal")]

time_zones = st.one_of(
    st.none(),
    st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "+05:30"]),
    st.timezone_keys(),
)
field_types = st.one_of(
    st.sampled_from(SIMPLE).map(FieldType),
    time_zones.map(timestamp),
    st.integers(1, 38).flatmap(lambda p: st.integers(0, p).map(lambda s: decimal(p, s))),
)


@given(field_types)
def test_text_and_arrow_round_trips(t: FieldType) -> None:
    assert parse_type(str(t)) == t
    assert from_arrow(t.to_arrow()) == t
    assert parse_type(t.to_arrow()) == t
    assert parse_type(t) is t
    assert hash(parse_type(str(t))) == hash(t)


def test_every_kind_has_a_canonical_spelling() -> None:
    examples = [*(FieldType(k) for k in SIMPLE), timestamp(), timestamp("UTC"), decimal(10, 2)]
    assert {t.kind for t in examples} == set(VOCABULARY)
    assert [str(t) for t in examples[-3:]] == [
        "timestamp[us]",
        "timestamp[us, UTC]",
        "decimal(10, 2)",
    ]
    assert repr(decimal(10, 2)) == "<FieldType decimal(10, 2)>"


@pytest.mark.parametrize(
    ("text", "arrow"),
    [
        ("u8", pa.uint8()),
        ("u16", pa.uint16()),
        ("u32", pa.uint32()),
        ("i32", pa.int32()),
        ("i64", pa.int64()),
        ("f32", pa.float32()),
        ("f64", pa.float64()),
        ("bool8", pa.bool_()),
        ("utf8", pa.utf8()),
        ("utf8_ref", pa.dictionary(pa.int32(), pa.utf8())),
        ("json", pa.json_()),
        ("bytes", pa.binary()),
        ("i32_array", pa.list_(pa.int32())),
        ("f32_array", pa.list_(pa.float32())),
        ("date", pa.date32()),
        ("timestamp[us]", pa.timestamp("us")),
        ("timestamp[us, Europe/Paris]", pa.timestamp("us", "Europe/Paris")),
        ("decimal(38, 10)", pa.decimal128(38, 10)),
    ],
)
def test_to_arrow(text: str, arrow: pa.DataType) -> None:
    assert parse_type(text).to_arrow() == arrow


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("Utf8", UTF8),
        ("string", UTF8),
        ("large_string", UTF8),
        ("LargeUtf8", UTF8),
        ("string_view", UTF8),
        ("Int64", I64),
        ("INT64", I64),
        ("int64", I64),
        ("Int32", I32),
        ("int8", I32),
        ("int16", I32),
        ("UInt8", FieldType("u8")),
        ("uint16", FieldType("u16")),
        ("UInt32", FieldType("u32")),
        ("Float64", FieldType("f64")),
        ("double", FieldType("f64")),
        ("float", F32),
        ("Float32", F32),
        ("halffloat", F32),
        ("Boolean", FieldType("bool8")),
        ("bool", FieldType("bool8")),
        ("Binary", FieldType("bytes")),
        ("large_binary", FieldType("bytes")),
        ("Date32", DATE),
        ("date32[day]", DATE),
        ("  I64 ", I64),
        ("timestamp", timestamp()),
        ("timestamp[ms]", timestamp()),
        ("timestamp[us, tz=UTC]", timestamp("UTC")),
        ("Timestamp[s, Asia/Tokyo]", timestamp("Asia/Tokyo")),
        ("decimal128(10, 2)", decimal(10, 2)),
        ("decimal(7)", decimal(7, 0)),
        ("list<item: int32>", I32_ARRAY),
        ("list<int16>", I32_ARRAY),
        ("large_list<item: float not null>", F32_ARRAY),
        ("dictionary<values=string, indices=int8, ordered=0>", UTF8_REF),
        ("extension<arrow.json>", JSON),
    ],
)
def test_aliases(alias: str, expected: FieldType) -> None:
    assert parse_type(alias) == expected


@pytest.mark.parametrize(
    ("arrow", "expected"),
    [
        (pa.int8(), I32),
        (pa.int16(), I32),
        (pa.float16(), F32),
        (pa.large_string(), UTF8),
        (pa.string_view(), UTF8),
        (pa.large_binary(), FieldType("bytes")),
        (pa.binary_view(), FieldType("bytes")),
        (pa.dictionary(pa.int8(), pa.utf8()), UTF8_REF),
        (pa.dictionary(pa.uint16(), pa.large_utf8()), UTF8_REF),
        (pa.timestamp("s"), timestamp()),
        (pa.timestamp("ms", "UTC"), timestamp("UTC")),
        (pa.large_list(pa.int32()), I32_ARRAY),
        (pa.list_view(pa.int8()), I32_ARRAY),
        (pa.large_list_view(pa.float32()), F32_ARRAY),
        (pa.list_(pa.field("x", pa.int16(), nullable=False)), I32_ARRAY),
        (pa.decimal256(38, 4), decimal(38, 4)),
        (pa.json_(pa.large_string()), JSON),
    ],
)
def test_from_arrow_widens(arrow: pa.DataType, expected: FieldType) -> None:
    assert from_arrow(arrow) == expected


@pytest.mark.parametrize(
    ("arrow", "advice"),
    [
        (pa.uint64(), "decimal128(20, 0)"),
        (pa.timestamp("ns"), "timestamp('us')"),
        (pa.timestamp("ns", "UTC"), "timestamp('us', 'UTC')"),
        (pa.date64(), "date32"),
        (pa.time32("s"), "cast to"),
        (pa.time64("us"), "cast to"),
        (pa.duration("s"), "int64"),
        (pa.null(), "cast to"),
        (pa.struct([("a", pa.int32())]), "JSON"),
        (pa.map_(pa.utf8(), pa.int32()), "JSON"),
        (pa.list_(pa.int64()), "int32 or float32"),
        (pa.list_(pa.utf8()), "int32 or float32"),
        (pa.dictionary(pa.int32(), pa.int64()), "dictionaries of strings"),
        (pa.decimal256(40, 2), "precision"),
        (pa.decimal128(5, -2), "scale"),
        (pa.binary(16), "binary"),
        (pa.list_(pa.int32(), 3), "list<int32>"),
    ],
)
def test_from_arrow_rejects_with_advice(arrow: pa.DataType, advice: str) -> None:
    with pytest.raises(BadInputError) as info:
        from_arrow(arrow)
    message = info.value.message
    assert str(arrow) in message
    assert advice in message
    assert "supported:" in message


def test_unknown_name_suggests_and_lists() -> None:
    with pytest.raises(BadInputError) as info:
        parse_type("strng")
    message = info.value.message
    assert '"strng"' in message
    assert 'did you mean "string"' in message
    assert "i32_array" in message
    assert "decimal(p, s)" in message


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(BadInputError, match=r'unknown field type "qqqqqqqq" \(allowed') as info:
        parse_type("qqqqqqqq")
    assert "did you mean" not in info.value.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("uint64", 'unsupported field type "uint64"'),
        ("time64[us]", 'unsupported field type "time64[us]"'),
        ("struct<a: int32>", 'unsupported field type "struct<a: int32>"'),
        ("timestamp[ns]", 'unsupported field type "timestamp[ns]"'),
        ("timestamp[xs]", 'unknown timestamp unit "xs"'),
        ("timestamp[us, ]", 'missing time zone in "timestamp[us, ]"'),
        ("timestamp[us, Mars/Olympus]", 'unknown time zone "Mars/Olympus"'),
        ("timestamp[us, Europe/Pariss]", 'did you mean "Europe/Paris"'),
        ("decimal(39, 2)", "between 1 and 38, got 39"),
        ("decimal(0, 0)", "between 1 and 38, got 0"),
        ("decimal(10, 11)", "between 0 and the precision (10), got 11"),
        ("decimal(10, -1)", "got -1"),
        ("list<int64>", 'unsupported field type "list<int64>"'),
        ("list<list<int32>>", 'unsupported field type "list<list<int32>>"'),
        ("dictionary<values=int64, indices=int32, ordered=0>", "only dictionaries of strings"),
    ],
)
def test_bad_text_names_the_value(text: str, fragment: str) -> None:
    with pytest.raises(BadInputError) as info:
        parse_type(text)
    assert fragment in info.value.message


def test_non_text_input() -> None:
    with pytest.raises(BadInputError, match="got int 5"):
        parse_type(5)


def test_field_type_validates_its_parts() -> None:
    with pytest.raises(BadInputError, match='kind "int64"; did you mean "i64"'):
        FieldType("int64")
    with pytest.raises(BadInputError, match='not "u8"'):
        FieldType("u8", tz="UTC")
    with pytest.raises(BadInputError, match='not "utf8"'):
        FieldType("utf8", precision=3, scale=0)
    with pytest.raises(BadInputError, match="precision must be an integer"):
        FieldType("decimal")


def test_field_type_is_a_frozen_hashable_value() -> None:
    t = decimal(10, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.scale = 3  # type: ignore[misc]
    assert {t, decimal(10, 2), timestamp("UTC"), timestamp("UTC")} == {t, timestamp("UTC")}
    assert timestamp("UTC") != timestamp() != timestamp("Europe/Paris")
    assert decimal(10, 2) != decimal(10, 3)
