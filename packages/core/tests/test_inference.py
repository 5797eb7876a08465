"""Schema inference from samples of real CSV, TSV, JSON-lines and Parquet files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from platform_core.errors import BadInputError, NotFoundError
from platform_core.inference import infer_schema
from platform_core.schema import Field, Schema
from platform_core.types import FieldType, decimal, timestamp


def _types(schema: Schema) -> dict[str, str]:
    return {field.name: str(field.type) for field in schema}


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "id,amount,name,paid,day,at,at_utc,at_frac,empty,clock\n"
        "1,2.5,ann,true,2024-01-31,2024-01-31 10:00:00,2024-01-31T10:00:00Z,2024-01-31 10:00:00.123456,,12:30:00\n"
        "2,3,bob,false,2024-02-01,2024-02-01 11:00:00,2024-02-01T11:00:00Z,2024-02-01 11:00:00.5,,13:00:00\n"
    )
    schema = infer_schema(path)
    assert _types(schema) == {
        "id": "i64",
        "amount": "f64",
        "name": "utf8",
        "paid": "bool8",
        "day": "date",
        "at": "timestamp[us]",
        "at_utc": "timestamp[us, UTC]",
        "at_frac": "timestamp[us]",
        "empty": "utf8",  # all null in the sample
        "clock": "utf8",  # a time of day has no vocabulary type; the text is kept
    }
    assert all(field.nullable for field in schema)


def test_tsv_and_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("a\tb\n1\tx,y\n")
    assert _types(infer_schema(path)) == {"a": "i64", "b": "utf8"}
    other = tmp_path / "data.txt"
    other.write_text("a\tb\n1\tx,y\n")
    assert infer_schema(other, format="TSV") == infer_schema(path)


def test_csv_reads_only_the_sample(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    lines = ["n"] + [str(i) for i in range(20_000)] + ["not a number"]
    path.write_text("\n".join(lines) + "\n")
    assert _types(infer_schema(path, sample_bytes=4096)) == {"n": "i64"}
    assert _types(infer_schema(path)) == {"n": "utf8"}  # the whole file fits the default


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    records = [
        {
            "id": 1,
            "x": 1.5,
            "tag": "a",
            "ok": True,
            "nested": {"k": 1},
            "ids": [1, 2],
            "gone": None,
        },
        {"id": 2, "x": 2, "tag": None, "ok": False, "nested": {"k": 2}, "ids": [], "gone": None},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert _types(infer_schema(path)) == {
        "id": "i64",
        "x": "f64",
        "tag": "utf8",
        "ok": "bool8",
        "nested": "json",
        "ids": "json",  # list<int64> does not fit i32_array losslessly
        "gone": "utf8",
    }


def test_jsonl_sample_is_cut_at_a_line_end(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    head = "".join(json.dumps({"a": i, "s": "x" * 20}) + "\n" for i in range(500))
    path.write_text(head + json.dumps({"a": 1, "late": "only after the sample"}) + "\n")
    # The sample ends mid-record; the partial record is dropped, not a parse error.
    assert _types(infer_schema(path, sample_bytes=1000)) == {"a": "i64", "s": "utf8"}
    assert "late" in infer_schema(path).names
    with pytest.raises(BadInputError, match="longer than sample_bytes=10"):
        infer_schema(path, sample_bytes=10)


def test_parquet_uses_the_footer_types(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "small": pa.array([1, 2], pa.int8()),
            "big": pa.array([1, 2], pa.int64()),
            "text": pa.array(["a", "b"], pa.large_string()),
            "cat": pa.array(["a", "b"]).dictionary_encode(),
            "ns": pa.array([1, 2], pa.timestamp("ns", "UTC")),
            "money": pa.array([Decimal("1.5"), None], pa.decimal128(12, 3)),
            "vec": pa.array([[1.0], [2.0]], pa.list_(pa.float32())),
            "nothing": pa.nulls(2),
        },
        schema=pa.schema(
            [
                pa.field("small", pa.int8(), nullable=False),
                ("big", pa.int64()),
                ("text", pa.large_string()),
                ("cat", pa.dictionary(pa.int32(), pa.utf8())),
                ("ns", pa.timestamp("ns", "UTC")),
                ("money", pa.decimal128(12, 3)),
                ("vec", pa.list_(pa.float32())),
                ("nothing", pa.null()),
            ]
        ),
    )
    pq.write_table(table, path)
    schema = infer_schema(path)
    assert schema == Schema(
        [
            Field("small", "i32", nullable=False),
            Field("big", "i64"),
            Field("text", "utf8"),
            Field("cat", "utf8_ref"),
            Field("ns", timestamp("UTC")),
            Field("money", decimal(12, 3)),
            Field("vec", "f32_array"),
            Field("nothing", "utf8"),
        ]
    )


def test_parquet_unsupported_type_asks_for_an_override(tmp_path: Path) -> None:
    path = tmp_path / "u.parquet"
    pq.write_table(pa.table({"n": pa.array([1], pa.uint64()), "s": pa.array([{"a": 1}])}), path)
    with pytest.raises(BadInputError) as info:
        infer_schema(path)
    assert 'column "n"' in info.value.message
    assert str(path) in info.value.message
    assert "overrides=" in info.value.message
    schema = infer_schema(path, overrides={"n": "decimal(20, 0)", "s": FieldType("json")})
    assert _types(schema) == {"n": "decimal(20, 0)", "s": "json"}


def test_overrides(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("id,code,amount\n1,007,2.50\n")
    # A leading zero makes a code text, as DuckDB's sniffer reads it.
    assert _types(infer_schema(path)) == {"id": "i64", "code": "utf8", "amount": "f64"}
    schema = infer_schema(path, overrides={"code": "utf8", "amount": "decimal(10, 2)"})
    assert _types(schema) == {"id": "i64", "code": "utf8", "amount": "decimal(10, 2)"}
    with pytest.raises(BadInputError) as info:
        infer_schema(path, overrides={"amout": "f64"})
    assert info.value.message == (
        'override column "amout" not found; did you mean "amount"? (columns: id, code, amount)'
    )
    with pytest.raises(BadInputError, match='override for column "id": unknown field type "int"'):
        infer_schema(path, overrides={"id": "int"})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.csv"):
        infer_schema(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.parquet", b"this is not parquet at all", "as parquet"),
        ("bad.jsonl", b'{"a": 1}\nnot json\n', "as jsonl"),
        ("array.json", b'[{"a": 1}, {"a": 2}]\n', "one JSON object per line"),
        ("empty.csv", b"", "as csv"),
        ("ragged.csv", b"a,b\n1,2,3\n", "as csv"),
        ("blank.jsonl", b"\n\n", "no JSON records"),
    ],
)
def test_unparsable_file_names_the_file(
    tmp_path: Path, name: str, content: bytes, fragment: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInputError) as info:
        infer_schema(path)
    assert str(path) in info.value.message
    assert fragment in info.value.message


def test_format_and_argument_errors(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("a\n1\n")
    with pytest.raises(BadInputError, match=r'suffix "\.xlsx"'):
        infer_schema(path)
    with pytest.raises(BadInputError, match='unknown format "xls"'):
        infer_schema(path, format="xls")
    with pytest.raises(BadInputError, match="sample_bytes must be a positive integer"):
        infer_schema(path, format="csv", sample_bytes=0)
    with pytest.raises(BadInputError, match="is not a file"):
        infer_schema(tmp_path, format="csv")
