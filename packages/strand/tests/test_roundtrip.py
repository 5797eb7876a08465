"""Every type, nulls included, read back equal through read_batch and through the cursor."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import tracemalloc
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strand
from strand import StrandField, StrandSchema

KINDS = [
    "u8", "u16", "u32", "i32", "i64", "f32", "f64", "bool8", "utf8", "utf8_ref", "json",
    "bytes", "i32_array", "f32_array", "date", "timestamp", "timestamp[us, UTC]",
    "decimal(12, 3)",
]  # fmt: skip
INTERN = ["red", "green", "blue", "ünïcode", ""]


def _value(kind: str) -> st.SearchStrategy[Any]:
    ints = {
        "u8": (0, 255), "u16": (0, 65535), "u32": (0, 2**32 - 1),
        "i32": (-(2**31), 2**31 - 1), "i64": (-(2**63), 2**63 - 1),
    }  # fmt: skip
    if kind in ints:
        return st.integers(*ints[kind])
    if kind == "f32":
        return st.floats(width=32, allow_nan=False)
    if kind == "f64":
        return st.floats(allow_nan=False)
    if kind == "bool8":
        return st.booleans()
    if kind == "utf8":
        return st.text(max_size=40)
    if kind == "utf8_ref":
        return st.sampled_from(INTERN)
    if kind == "json":
        leaf = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5)
        tree = st.recursive(leaf, lambda c: st.lists(c, max_size=3), max_leaves=5)
        return tree.filter(lambda v: v is not None)  # None is SQL NULL, not JSON null
    if kind == "bytes":
        return st.binary(max_size=40)
    if kind == "i32_array":
        return st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6)
    if kind == "f32_array":
        return st.lists(st.floats(width=32, allow_nan=False), max_size=6)
    if kind == "date":
        return st.dates(dt.date(1900, 1, 1), dt.date(2200, 1, 1))
    if kind.startswith("timestamp"):
        naive = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))
        if "UTC" in kind:
            return naive.map(lambda d: d.replace(tzinfo=dt.UTC))
        return naive
    return st.decimals(-(10**9) + 1, 10**9 - 1, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def schemas_and_batches(draw: st.DrawFn) -> tuple[StrandSchema, list[list[dict[str, Any]]]]:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
    fields = [
        StrandField(f"c{i}", kind, nullable=draw(st.booleans())) for i, kind in enumerate(kinds)
    ]
    batches = []
    for _ in range(draw(st.integers(1, 4))):
        rows = draw(st.integers(1, 40))
        batch = []
        for _ in range(rows):
            record = {}
            for f in fields:
                value = _value(str(f.type) if f.type.kind != "timestamp" else _ts(f))
                record[f.name] = draw(st.none() | value if f.nullable else value)
            batch.append(record)
        batches.append(batch)
    return StrandSchema(fields), batches


def _ts(f: StrandField) -> str:
    return "timestamp[us, UTC]" if f.type.tz else "timestamp"


def _arrow(schema: StrandSchema, records: list[dict[str, Any]]) -> pa.RecordBatch:
    columns = []
    for f in schema:
        values = [r[f.name] for r in records]
        if f.type.kind == "json":
            storage = pa.array([None if v is None else json.dumps(v) for v in values], pa.utf8())
            columns.append(pa.ExtensionArray.from_storage(pa.json_(), storage))
        elif f.type.kind == "utf8_ref":
            columns.append(pa.array(values, pa.utf8()).dictionary_encode())
        else:
            columns.append(pa.array(values, f.arrow_type))
    return pa.RecordBatch.from_arrays(columns, names=list(schema.names))


def _normalise(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        return value.tobytes()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=schemas_and_batches(), as_arrow=st.booleans())
def test_round_trip_random_schemas_and_batches(
    data: tuple[StrandSchema, list[list[dict[str, Any]]]], as_arrow: bool, name: str
) -> None:
    schema, batches = data
    smap = strand.compute_strand_map(schema, 256, 1 << 16, intern=INTERN)
    seg = strand.create_strand(name, smap)
    try:
        view = strand.StrandView(seg)
        writer = strand.StrandWriter(seg)
        writer.begin()
        for records in batches:
            writer.write_record_batch(_arrow(schema, records) if as_arrow else records)
            count = view.committed_count
            start = count - len(records)
            got = view.read_table(start, count)
            expected = _arrow(schema, records).to_pylist()
            for row in expected:
                for f in schema:
                    if f.type.kind == "utf8_ref" or row[f.name] is None:
                        continue
                    if f.type.kind == "json":
                        row[f.name] = json.dumps(json.loads(row[f.name]))
            rows = got.to_pylist()
            for row in rows:
                for f in schema:
                    if f.type.kind == "json" and row[f.name] is not None:
                        row[f.name] = json.dumps(json.loads(row[f.name]))
            assert rows == expected
            cursor = view.allocate_cursor()
            for i, record in enumerate(records):
                assert cursor.seek(start + i)
                for f in schema:
                    assert _normalise(cursor.get(f.name)) == record[f.name], f.name
            del got, cursor
            view.acknowledge_read(count)
        writer.finalize()
        writer.close()
        view.close()
    finally:
        seg.unlink()
        seg.close(timeout=2)


def test_read_batch_is_zero_copy_and_spans_batches(name: str, w: Any) -> None:
    seg = strand.create_strand(name, strand.compute_strand_map(w.SCHEMA, 1024, 1 << 20))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(w.make_batch(0, 100))
    writer.write_record_batch(w.make_batch(1, 100))
    one = view.read_batch(10, 60)
    assert isinstance(one, pa.RecordBatch)
    assert one.num_rows == 50
    ids = one.column("id").buffers()[1]
    whole = np.frombuffer(seg.buf, np.uint8)
    base = whole.ctypes.data
    del whole
    assert base <= ids.address < base + seg.size  # the values live in the shared segment
    two = view.read_batch(50, 150)
    assert isinstance(two, list)
    assert [b.num_rows for b in two] == [50, 50]
    assert pa.Table.from_batches(two).equals(
        pa.Table.from_batches([w.make_batch(0, 200).slice(50, 100)])
    )
    writer.close()
    with pytest.raises(strand.StrandBusyError, match="live views"):
        seg.close()  # the arrays above still point into the segment
    del one, two, ids
    view.close()
    seg.unlink()
    seg.close(timeout=2)


def test_100k_seeks_allocate_nothing_that_stays(name: str, w: Any) -> None:
    seg = strand.create_strand(name, strand.compute_strand_map(w.SCHEMA, 4096, 1 << 20))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    for i in range(10):
        writer.write_record_batch(w.make_batch(i, 100))
    cursor = view.allocate_cursor()
    for seq in range(1000):  # warm every code path once
        cursor.seek(seq)
        cursor.get_i64("id")
        cursor.get_string("s")
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(100_000):
        cursor.seek(n % 1000)
        cursor.get_string("s")
        cursor.get_string("s")  # second read of the same record comes from the cache
        cursor.get_f64("x")
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert growth < 100_000, f"100k seeks grew traced memory by {growth} bytes"
    del cursor
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)


def test_cursor_values_and_caching(name: str) -> None:
    schema = StrandSchema(
        [StrandField("j", "json"), StrandField("s", "utf8"), StrandField("d", "decimal(5, 2)")]
    )
    seg = strand.create_strand(name, strand.compute_strand_map(schema, 64, 1 << 16))
    view = strand.StrandView(seg)
    writer = strand.StrandWriter(seg)
    writer.begin()
    writer.write_record_batch(
        [{"j": {"a": [1]}, "s": "x", "d": decimal.Decimal("-1.25")}, {"j": None, "s": None}]
    )
    cursor = view.allocate_cursor()
    assert cursor.seq == -1
    assert cursor.seek(0)
    first = cursor.get_json("j")
    assert first == {"a": [1]}
    assert cursor.get_json("j") is first  # parsed once per record
    assert cursor.get_decimal("d") == decimal.Decimal("-1.25")
    assert cursor.seek(1)
    assert cursor.get_json("j") is None
    assert cursor.get_string("s") is None
    assert not cursor.seek(2)
    with pytest.raises(strand.StrandValueError, match="use get_decimal"):
        cursor.get_string("d")
    with pytest.raises(strand.StrandValueError, match='no field "zz"'):
        cursor.get("zz")
    del cursor, first
    writer.close()
    view.close()
    seg.unlink()
    seg.close(timeout=2)
