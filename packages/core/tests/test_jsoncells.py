"""platform_core.json_rows: every Arrow value as JSON can hold it, checked by a strict dump."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import pyarrow as pa

from platform_core import json_cell, json_rows


def test_every_cell_dumps_as_strict_json() -> None:
    t = pa.table(
        {
            "f": [math.nan, math.inf, -math.inf, 1.5, None],
            "l": pa.array([[1.0, math.nan], [math.inf], [], None, [None]], pa.list_(pa.float32())),
            "s": pa.array([{"a": math.nan}, {"a": 1.0}, None, {"a": None}, {"a": 2.0}]),
            "d": pa.array(
                [
                    decimal.Decimal("1234567890123456789012345678.0123456789"),
                    None,
                    decimal.Decimal("5"),
                    decimal.Decimal("-0.5"),
                    None,
                ],
                pa.decimal128(38, 10),
            ),
            "b": pa.array([b"\xff\xfe", b"ok", None, b"", b"\x00"], pa.binary()),
            "t": [dt.date(2024, 1, 2), None, dt.date(1970, 1, 1), None, None],
        }
    )
    rows = json_rows(t)
    text = json.dumps(rows, allow_nan=False)  # raises on any NaN left as a float
    assert json.loads(text)[0] == [
        "NaN",
        [1.0, "NaN"],
        {"a": "NaN"},
        "1234567890123456789012345678.0123456789",
        "fffe",
        "2024-01-02",
    ]
    assert rows[1][:2] == ["Infinity", ["Infinity"]]
    assert rows[2][3] == "5.0000000000"  # the column's scale is kept
    assert json_cell(decimal.Decimal("42")) == 42  # scale 0 (DuckDB's HUGEINT sums): a number
    assert rows[3][3] == "-0.5000000000"
    assert json_cell(dt.timedelta(seconds=90)) == 90.0
    assert json_rows(pa.table({})) == []


def test_a_timestamp_or_date_outside_python_years_is_its_iso_text() -> None:
    """DuckDB reads ``0001-01-01 00:00:00+02`` as 1 BC in UTC (helper 47): a result holding
    it was a 500 (Python's datetime stops at year 1); the column is Arrow's text instead."""
    early = pa.array([-62135604000000000, 0, None], pa.timestamp("us", "UTC"))
    late = pa.array([253402318800000000, 0, 0], pa.timestamp("us"))
    day = pa.array([-800000, 0, 1], pa.date32())
    rows = json_rows(pa.table({"early": early, "late": late, "day": day, "n": [1, 2, 3]}))
    assert rows == [
        ["0000-12-31 22:00:00.000000Z", "10000-01-01 05:00:00.000000", "-0221-09-04", 1],
        ["1970-01-01 00:00:00.000000Z", "1970-01-01 00:00:00.000000", "1970-01-01", 2],
        [None, "1970-01-01 00:00:00.000000", "1970-01-02", 3],
    ]
    assert json_rows(pa.table({"t": pa.array([0], pa.timestamp("us"))})) == [
        ["1970-01-01T00:00:00"]  # in range: as before
    ]
