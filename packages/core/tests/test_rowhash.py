"""hash_columns: equal values hash equal whatever their layout, distinct values do not
collide, results match a per-row model of the documented algorithm and never change."""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import struct
from concurrent.futures import ProcessPoolExecutor
from decimal import Context, Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_core import rowhash
from platform_core.errors import BadInputError
from platform_core.rowhash import hash_columns

# --- an independent per-row model of the algorithm in the rowhash docstring ---------------

MASK = (1 << 64) - 1
M1, M2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53
C_VAL, C_NULL, C_POS = 0x9E3779B97F4A7C15, 0x6A09E667F3BCC909, 0xC2B2AE3D27D4EB4F
C_LEN, C_DEC, C_SEED, K_ROW = (
    0x165667B19E3779F9,
    0x27D4EB2F165667C5,
    0xCBF29CE484222325,
    0x9E3779B185EBCA87,
)
EPOCH = dt.datetime(1970, 1, 1)


def fmix(x: int) -> int:
    x ^= x >> 33
    x = (x * M1) & MASK
    x ^= x >> 33
    x = (x * M2) & MASK
    return x ^ (x >> 33)


def model_sequence(items: list[int], n: int) -> int:
    total = fmix(n ^ C_LEN)
    for k, item in enumerate(items):
        total += fmix(item ^ ((k * C_POS) & MASK))
    return total & MASK


def model_word(value: Any, t: pa.DataType) -> int:
    if pa.types.is_floating(t):
        value = 0.0 if value == 0 else float(value)
        bits: int = struct.unpack("<Q", struct.pack("<d", value))[0]
        return 0x7FF8000000000000 if math.isnan(value) else bits
    if pa.types.is_decimal(t):
        unscaled = int(value.scaleb(t.scale, context=Context(prec=80))) & ((1 << 128) - 1)
        return (unscaled & MASK) ^ fmix((unscaled >> 64) ^ C_DEC)
    if pa.types.is_timestamp(t):
        return int((value - EPOCH) // dt.timedelta(microseconds=1)) & MASK
    if pa.types.is_date(t):
        return int((value - EPOCH.date()).days) & MASK
    if isinstance(value, str | bytes):
        data = value.encode() if isinstance(value, str) else value
        words = [
            int.from_bytes(data[i : i + 8].ljust(8, b"\0"), "little")
            for i in range(0, len(data), 8)
        ]
        return model_sequence(words, len(data))
    if isinstance(value, list):
        return model_sequence([model_value(v, t.value_type) for v in value], len(value))
    return int(value) & MASK  # integers and bools


def model_value(value: Any, t: pa.DataType) -> int:
    return C_NULL if value is None else fmix((model_word(value, t) + C_VAL) & MASK)


def model_rows(table: pa.Table, keys: list[str]) -> list[int]:
    columns = [(table.column(k).to_pylist(), table.schema.field(k).type) for k in keys]
    rows = []
    for i in range(table.num_rows):
        h = C_SEED
        for values, t in columns:
            h = fmix((h * K_ROW + model_value(values[i], t)) & MASK)
        rows.append(h)
    return rows


# --- generated tables ----------------------------------------------------------------------

i64s = st.integers(-(2**63), 2**63 - 1)
column_kinds: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "i64": (pa.int64(), i64s),
    "i16": (pa.int16(), st.integers(-(2**15), 2**15 - 1)),
    "u32": (pa.uint32(), st.integers(0, 2**32 - 1)),
    "f64": (pa.float64(), st.floats(allow_nan=True)),
    "f32": (pa.float32(), st.floats(width=32)),
    "bool": (pa.bool_(), st.booleans()),
    "utf8": (pa.utf8(), st.text(max_size=40)),
    "large_bin": (pa.large_binary(), st.binary(max_size=40)),
    "date": (pa.date32(), st.dates(dt.date(1900, 1, 1), dt.date(2200, 1, 1))),
    "ts": (pa.timestamp("us"), st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))),
    "dec": (
        pa.decimal128(38, 4),
        st.decimals(-(10**33) + 1, 10**33 - 1, places=4, allow_nan=False, allow_infinity=False),
    ),
    "list": (
        pa.list_(pa.int32()),
        st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=5),
    ),
    "strings": (pa.large_list(pa.utf8()), st.lists(st.none() | st.text(max_size=10), max_size=4)),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    names = draw(
        st.lists(st.sampled_from(sorted(column_kinds)), min_size=1, max_size=4, unique=True)
    )
    n = draw(st.integers(0, 12))
    columns = {}
    for name in names:
        arrow_type, values = column_kinds[name]
        column = draw(st.lists(st.none() | values, min_size=n, max_size=n))
        columns[name] = pa.array(column, arrow_type)
    return pa.table(columns)


@settings(max_examples=150, deadline=None)
@given(tables(), st.data())
def test_matches_the_documented_algorithm(table: pa.Table, data: st.DataObject) -> None:
    keys = data.draw(st.permutations(table.column_names))
    got = hash_columns(table, keys)
    assert got.to_pylist() == model_rows(table, keys)
    # Slices and re-chunked copies hash like the rows they hold.
    cut = data.draw(st.integers(0, table.num_rows))
    rechunked = pa.concat_tables([table.slice(0, cut), table.slice(cut)])
    assert hash_columns(rechunked, keys) == got
    assert hash_columns(table.slice(cut), keys).to_pylist() == got.to_pylist()[cut:]


def test_golden_values() -> None:
    # Pinned outputs: if these change, every partitioned dataset written before moves.
    table = pa.table(
        {
            "i": pa.array([0, 1, -1, None, 2**62], pa.int64()),
            "s": pa.array(["", "a", "hello, world", None, "naïve ☃"]),
            "f": pa.array([0.0, 1.5, float("nan"), None, -2.25]),
        }
    )
    assert hash_columns(table, ["i"]).to_pylist() == GOLDEN_I
    assert hash_columns(table, ["s"]).to_pylist() == GOLDEN_S
    assert hash_columns(table, ["i", "s", "f"]).to_pylist() == GOLDEN_ISF


GOLDEN_I = [
    0x3362B8D5EE1CF27A,
    0x125D73FF45822051,
    0xD2DC8EDB1F44EBA6,
    0x841976FEFEE14B8E,
    0xC8CB51EC075D5C97,
]
GOLDEN_S = [
    0xC624044AD3F0AC96,
    0xB96A4017E593166D,
    0xB92F5AD8A17F473F,
    0x841976FEFEE14B8E,
    0x78C47ACA665BF8FC,
]
GOLDEN_ISF = [
    0xAD6447EB1943C43D,
    0x00BB5FBB6E437AD0,
    0x16670C9EE6E101D3,
    0x73F46FCC53E7F564,
    0x5FA552B84CCEFB7C,
]


def test_result_is_a_uint64_array_without_nulls() -> None:
    batch = pa.record_batch({"a": pa.array([1, None, 3])})
    result = hash_columns(batch, ["a"])
    assert isinstance(result, pa.UInt64Array)
    assert result.type == pa.uint64()
    assert len(result) == 3
    assert result.null_count == 0
    assert len(hash_columns(batch.slice(0, 0), "a")) == 0
    empty = pa.table({"a": pa.chunked_array([], pa.utf8())})
    assert len(hash_columns(empty, ["a"])) == 0


# --- equal values, equal hashes --------------------------------------------------------


def _hashes(*arrays: pa.Array | pa.ChunkedArray) -> list[list[int]]:
    return [hash_columns(pa.table({"k": a}), ["k"]).to_pylist() for a in arrays]


def _all_equal(results: list[list[int]]) -> bool:
    return all(r == results[0] for r in results)


def test_integer_widths_hash_alike() -> None:
    values = [0, 1, -1, 127, None, -128, 42]
    arrays = [pa.array(values, t) for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64())]
    assert _all_equal(_hashes(*arrays))
    unsigned = [0, 1, None, 255]
    assert _all_equal(
        _hashes(
            *(
                pa.array(unsigned, t)
                for t in (pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(), pa.int64())
            )
        )
    )


def test_string_layouts_hash_alike() -> None:
    values = ["", "a", None, "ab" * 50, "naïve ☃ 😀", "", "x"]
    assert _all_equal(
        _hashes(
            pa.array(values, pa.utf8()),
            pa.array(values, pa.large_utf8()),
            pa.array(values, pa.string_view()),
            pa.array(values).dictionary_encode(),
            pa.array([v.encode() if v is not None else None for v in values], pa.binary()),
            pa.chunked_array([values[:3], values[3:]]),
            pa.array(values, pa.json_()),
        )
    )


def test_sliced_arrays_with_offsets_hash_like_fresh_ones() -> None:
    strings = ["zz", "", "hello", None, "world, this is longer than eight bytes", "é"]
    lists = [[1], None, [], [2, None, 3], [4, 5, 6, 7, 8, 9, 10]]
    decimals = [Decimal("1.5"), None, Decimal("-2.25"), Decimal("12345678901234567890.5")]
    cases: list[tuple[list[Any], pa.DataType]] = [
        (strings, pa.utf8()),
        (strings, pa.large_binary()),
        (lists, pa.list_(pa.int32())),
        (lists, pa.large_list(pa.int64())),
        (decimals, pa.decimal128(30, 2)),
        ([1, None, 3, 4], pa.int32()),
        ([1.5, None, -0.0, 4.0], pa.float64()),
        ([True, None, False, True], pa.bool_()),
    ]
    for values, arrow_type in cases:
        full = pa.array(values, arrow_type)
        for start in range(1, len(values)):
            sliced, fresh = _hashes(full.slice(start), pa.array(values[start:], arrow_type))
            assert sliced == fresh, (arrow_type, start)


def test_list_layouts_hash_alike() -> None:
    values = [[1, 2], None, [], [None, 3], [1, 2, 3, 4, 5]]
    view = pa.ListViewArray.from_arrays(
        pa.array([0, 0, 0, 2, 4], pa.int32()),
        pa.array([2, 0, 0, 2, 5], pa.int32()),
        pa.array([1, 2, None, 3, 1, 2, 3, 4, 5], pa.int16()),
        mask=pa.array([False, True, False, False, False]),
    )
    assert view.to_pylist() == values
    assert _all_equal(
        _hashes(
            pa.array(values, pa.list_(pa.int32())),
            pa.array(values, pa.large_list(pa.int64())),
            pa.array(values, pa.list_(pa.int8())),
            view,
        )
    )


def test_other_equal_encodings() -> None:
    assert _all_equal(
        _hashes(pa.array([1.5, None, 0.25], pa.float32()), pa.array([1.5, None, 0.25]))
    )
    moments = [dt.datetime(2024, 1, 1, 12), None, dt.datetime(1969, 12, 31, 23, 59, 59)]
    assert _all_equal(
        _hashes(*(pa.array(moments, pa.timestamp(unit)) for unit in ("s", "ms", "us")))
    )
    amounts = [Decimal("1.25"), None, Decimal("-3.50")]
    assert _all_equal(
        _hashes(
            *(
                pa.array(amounts, t)
                for t in (
                    pa.decimal32(5, 2),
                    pa.decimal64(9, 2),
                    pa.decimal128(20, 2),
                    pa.decimal256(30, 2),
                )
            )
        )
    )


def test_zero_signs_and_nans_are_canonical() -> None:
    nan_payload = np.array([0x7FF8000000000001, 0xFFF8000000000000], dtype=np.uint64).view(
        np.float64
    )
    floats = pa.array(np.concatenate([[0.0, -0.0, np.nan], nan_payload]))
    result = hash_columns(pa.table({"f": floats}), ["f"]).to_pylist()
    assert result[0] == result[1]
    assert result[2] == result[3] == result[4]
    assert result[0] != result[2]
    assert _hashes(pa.array([float("nan")], pa.float32())) == _hashes(pa.array([float("nan")]))


def test_null_differs_from_zero_empty_and_every_value() -> None:
    for values, arrow_type in [
        ([None, 0], pa.int64()),
        ([None, ""], pa.utf8()),
        ([None, b""], pa.binary()),
        ([None, []], pa.list_(pa.int32())),
        ([None, [None]], pa.list_(pa.int32())),
        ([None, 0.0], pa.float64()),
        ([None, False], pa.bool_()),
        ([None, Decimal(0)], pa.decimal128(5, 0)),
    ]:
        null, value = hash_columns(pa.table({"k": pa.array(values, arrow_type)}), ["k"]).to_pylist()
        assert null != value, arrow_type
    # A NULL key column differs from a missing one, and NULL twice from NULL once.
    t = pa.table({"a": pa.array([None], pa.int64()), "b": pa.array([None], pa.int64())})
    assert len({hash_columns(t, ["a"])[0], hash_columns(t, ["a", "b"])[0]}) == 2


# --- distinct values, distinct hashes --------------------------------------------------


def test_no_collisions_on_100k_distinct_ints() -> None:
    values = np.arange(-50_000, 50_000, dtype=np.int64) * 7919
    result = hash_columns(pa.table({"k": values}), ["k"]).to_numpy()
    assert len(np.unique(result)) == len(values)
    # Partitions are balanced: each of 16 buckets gets 1/16 of the rows within 5%.
    counts = np.bincount((result % 16).astype(np.int64), minlength=16)
    assert counts.min() > 0.95 * len(values) / 16
    assert counts.max() < 1.05 * len(values) / 16


def test_no_collisions_on_distinct_strings() -> None:
    strings = [str(i) for i in range(50_000)]
    strings += [
        "",
        " ",
        "\0",
        "\0\0",
        "a",
        "a\0",
        "ab",
        "ba",
        "é",
        "e\u0301",
        "😀",
        "x" * 8,
        "x" * 9,
    ]
    strings += [f"prefix-{i:08d}-suffix" for i in range(50_000)]
    result = hash_columns(pa.table({"k": strings}), ["k"]).to_numpy()
    assert len(np.unique(result)) == len(strings)


def test_no_collisions_on_lists_that_differ_by_order_or_length() -> None:
    lists = [[1, 2], [2, 1], [1], [1, 2, 0], [0, 1, 2], [], [0], [None], [None, None], [1, None]]
    result = hash_columns(pa.table({"k": pa.array(lists, pa.list_(pa.int32()))}), ["k"])
    assert len(set(result.to_pylist())) == len(lists)


def test_column_order_matters() -> None:
    t = pa.table({"a": [1, 2, 3], "b": [2, 1, 3]})
    ab, ba = hash_columns(t, ["a", "b"]).to_pylist(), hash_columns(t, ["b", "a"]).to_pylist()
    assert ab[0] != ba[0]
    assert ab[0] == ba[1]  # (1, 2) is the same row either way
    assert ab[2] == ba[2]


def test_small_slice_budgets_hash_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 60, size=500)
    strings = ["".join(map(chr, rng.integers(32, 0x2FF, size=n))) for n in lengths]
    strings[10] = "y" * 5000  # one value longer than a slice
    lists = [list(map(int, rng.integers(-5, 5, size=n))) for n in lengths]
    lists[20] = list(range(1000))
    table = pa.table({"s": pa.array(strings), "l": pa.array(lists, pa.list_(pa.int32()))}).slice(3)
    expected = [hash_columns(table, [key]) for key in ("s", "l")]
    monkeypatch.setattr(rowhash, "_SLICE_BYTES", 64)
    monkeypatch.setattr(rowhash, "_SLICE_ITEMS", 16)
    assert [hash_columns(table, [key]) for key in ("s", "l")] == expected


# --- stable across processes -----------------------------------------------------------


def _seeded_table() -> pa.Table:
    rng = np.random.default_rng(20240531)
    n = 2000
    ints = pa.array(
        rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64), mask=rng.random(n) < 0.1
    )
    words = [
        "".join(map(chr, rng.integers(32, 0x24F, size=k))) for k in rng.integers(0, 30, size=n)
    ]
    lists = [list(map(int, rng.integers(-100, 100, size=k))) for k in rng.integers(0, 5, size=n)]
    return pa.table(
        {
            "i": ints,
            "s": pa.array(words).dictionary_encode(),
            "f": rng.normal(size=n),
            "l": pa.array(lists, pa.list_(pa.int32())),
        }
    )


def test_stable_across_spawned_processes() -> None:
    table = _seeded_table()
    keys = ["s", "i", "f", "l"]
    expected = hash_columns(table, keys)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        in_child = pool.submit(hash_columns, table, keys).result(timeout=120)
    assert in_child == expected
    assert expected.to_pylist()[:3] == model_rows(table.slice(0, 3), keys)


# --- bad input -------------------------------------------------------------------------


def test_unknown_key_names_it_and_the_closest() -> None:
    t = pa.table({"amount": [1], "id": [2]})
    with pytest.raises(BadInputError) as info:
        hash_columns(t, ["amout"])
    assert info.value.message == (
        'key column "amout" not found; did you mean "amount"? (columns: amount, id)'
    )


def test_bad_arguments() -> None:
    t = pa.table({"a": [1], "s": pa.array([{"x": 1}])})
    with pytest.raises(BadInputError, match="at least one key column"):
        hash_columns(t, [])
    with pytest.raises(BadInputError, match='key column "s": cannot hash Arrow type struct'):
        hash_columns(t, ["a", "s"])
    with pytest.raises(BadInputError, match="RecordBatch or Table, got dict"):
        hash_columns({"a": [1]}, ["a"])
    with pytest.raises(BadInputError, match="named by strings, got 0"):
        hash_columns(t, [0])  # type: ignore[list-item]
    duplicated = pa.table([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(BadInputError, match='"a" appears more than once'):
        hash_columns(duplicated, ["a"])


# --- block boundaries, word alignment and buffer layouts --------------------------------


def test_strings_of_every_length_and_alignment_match_the_model() -> None:
    # Lengths around each word boundary, starting at every byte offset modulo 8, so that
    # words straddle aligned words in every way; the last values end at the buffer's end.
    rng = np.random.default_rng(11)
    values = [bytes(rng.integers(0, 256, size=n, dtype=np.uint8)) for n in range(80)]
    values += [v[: i % 9] for i, v in enumerate(values)] + [b"\xff" * 300, b"", b"\x00" * 9]
    for shift in range(8):
        table = pa.table({"b": pa.array([b"\x01" * shift, *values], pa.binary())}).slice(1)
        assert hash_columns(table, ["b"]).to_pylist() == model_rows(table, ["b"]), shift


def test_unaligned_and_unpadded_data_buffers() -> None:
    values = [b"", b"abc", b"0123456789abcdef!", None, b"x" * 40, b"\x00\xff" * 7, b"q"]
    reference = pa.array(values, pa.binary())
    offsets = np.frombuffer(reference.buffers()[1], dtype=np.int32)
    data = reference.buffers()[2].to_pybytes()[: int(offsets[-1])]
    for lead in range(1, 9):
        # A data buffer starting `lead` bytes into an allocation, and ending with the data.
        unaligned = pa.py_buffer(b"\xee" * lead + data)[lead:]
        arr = pa.Array.from_buffers(
            pa.binary(), len(values), [reference.buffers()[0], reference.buffers()[1], unaligned]
        )
        assert arr.to_pylist() == values
        assert _hashes(arr) == _hashes(reference)
    table = pa.table({"b": reference})
    assert hash_columns(table, ["b"]).to_pylist() == model_rows(table, ["b"])


def test_small_blocks_hash_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _seeded_table()
    rng = np.random.default_rng(3)
    n = table.num_rows
    lengths = rng.integers(0, 70, size=n)
    extra = pa.table(
        {
            "b": pa.array([bytes(rng.integers(0, 256, k, dtype=np.uint8)) for k in lengths]),
            "u8": pa.array(rng.integers(0, 256, n).astype(np.uint8), mask=rng.random(n) < 0.2),
            "f32": pa.array(rng.normal(size=n).astype(np.float32), mask=rng.random(n) < 0.2),
            "d": pa.array(rng.integers(-5, 5, n).astype(np.int32)).cast(pa.date32()),
        }
    )
    for name in extra.column_names:
        table = table.append_column(name, extra.column(name))
    table = table.append_column("dd", extra.column("d").dictionary_encode()).slice(5)
    keys = table.column_names
    expected = hash_columns(table, keys)
    monkeypatch.setattr(rowhash, "_SLICE_ROWS", 7)
    monkeypatch.setattr(rowhash, "_SLICE_BYTES", 50)
    monkeypatch.setattr(rowhash, "_SLICE_ITEMS", 5)
    assert hash_columns(table, keys) == expected
    plain = keys[:-1]  # the model takes dictionary-encoded strings, not dates
    assert hash_columns(table, plain).to_pylist()[:40] == model_rows(table.slice(0, 40), plain)
