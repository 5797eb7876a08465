"""The shared CSV reader against DuckDB's ``read_csv`` with default options, as the oracle.

A hypothesis corpus (quotes, doubled quotes, newlines and delimiters inside quotes, unicode,
empty and quoted-empty fields, null-like words, leading zeros, signs, floats, booleans, dates,
timestamps, times) is read by ``sniff_csv_schema`` + ``read_csv_batches`` with blocks small
enough that rows and quoted newlines cross block boundaries, and by DuckDB: same names, same
types (through the mapping below), same values.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from platform_core import BadInputError, infer_schema
from platform_core.csv import CsvError, read_csv_batches, sniff_csv_schema
from platform_core.types import BOOL8, DATE, F64, I64, UTF8, timestamp

# DuckDB type -> ours. TIME has no vocabulary type: it is read as its text (generated as
# HH:MM:SS, which is also how DuckDB prints a TIME).
DUCK_TO_ARROW = {
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "VARCHAR": pa.string(),
    "TIME": pa.string(),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", "UTC"),
}
EXAMPLES = int(os.environ.get("CSV_EXAMPLES", "60"))

NULL_WORDS = ["NA", "null", "nan", "#N/A", "NULL", "None", "N/A", "NaN", "nil", "-nan"]
# No ";", "|" or tab (DuckDB's sniffer would consider them delimiters) and no "\r"; no space or
# line break around a value (DuckDB sniffs `"0\n"` as the number 0, we read text: README).
TEXT = st.text(
    st.sampled_from([*"abcXYZ019 -.,:'\"\n", "é", "ß", "中", "🙂", "\u00a0"]),
    max_size=12,
).filter(lambda s: s == s.strip(" \n"))  # surrounding spaces or line breaks: see README


def _int(lead0: bool) -> st.SearchStrategy[str]:
    n = st.integers(-(2**63), 2**63 - 1).map(str)
    return st.one_of(n, st.integers(0, 999).map(lambda i: f"{i:03d}")) if lead0 else n


VALUES: dict[str, st.SearchStrategy[str]] = {
    "int": _int(False),
    "int_lead0": _int(True),
    "float": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["nan", "NaN", "-nan", "inf", "-Infinity", "1e5", ".5", "5.", "-0.0"]),
        st.integers(-1000, 1000).map(str),
    ),
    "bool": st.sampled_from(["true", "false", "TRUE", "False", "t", "F", "yes", "No"]),
    "bool01": st.sampled_from(["0", "1", "true"]),
    "date": st.dates().map(lambda d: d.isoformat()),
    "timestamp": st.datetimes().map(
        lambda d: d.isoformat(
            sep=st_sep(d), timespec="microseconds" if d.microsecond else "seconds"
        )
    ),
    "timestamptz": st.tuples(st.datetimes(), st.sampled_from(["Z", "+02", "-05:30", "+0100"])).map(
        lambda d: d[0].isoformat(sep=" ", timespec="seconds") + d[1]
    ),
    "time": st.times().map(lambda t: t.replace(microsecond=0).isoformat()),
    "nullword": st.sampled_from(NULL_WORDS),
    "text": TEXT,
    "mixed": st.one_of(TEXT, st.sampled_from(NULL_WORDS), st.integers(-5, 5).map(str)),
}


def st_sep(d: Any) -> str:
    return "T" if d.second % 2 else " "


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[str, int]:
    """A CSV text (DuckDB-parsable without dialect ambiguity) and a block size to read it."""
    ncols = draw(st.integers(2, 5))
    kinds = [draw(st.sampled_from(sorted(VALUES))) for _ in range(ncols)]
    names = [
        draw(st.sampled_from(["id", "name", "a", "x y", "é", "a_1", "column1"]) | st.just(f"c{i}"))
        for i in range(ncols)
    ]
    rows = []
    for _ in range(draw(st.integers(1, 40))):
        row = []
        for kind in kinds:
            cell = draw(
                st.one_of(st.just(None), st.just(""), VALUES[kind])
                if draw(st.integers(0, 9)) == 0
                else VALUES[kind]
            )
            row.append(cell)
        rows.append(row)
    # A leading inf makes DuckDB's sniffer guess a date (see README): keep the first finite.
    for j, kind in enumerate(kinds):
        firsts = [r[j] for r in rows if r[j] not in (None, "")]
        if kind == "float" and firsts and "inf" in firsts[0].lower():
            rows[0][j] = "1.5"
    lines = [",".join(_render(n, draw(st.booleans())) for n in names)]
    for row in rows:
        # A line starting with an unquoted '#' makes DuckDB's sniffer pick '#' as a comment
        # character (see README): such a first field is quoted.
        lines.append(
            ",".join(
                _render(v, draw(st.booleans()) or (j == 0 and (v or "").startswith("#")))
                for j, v in enumerate(row)
            )
        )
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + draw(st.sampled_from([eol, ""]))
    return text, draw(st.sampled_from([256, 512, 1024, 1 << 20]))


def _render(value: str | None, quote: bool) -> str:
    """None is an empty field; "" is a quoted empty field; specials force quotes."""
    if value is None:
        return ""
    if quote or value == "" or any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _norm(values: list[Any]) -> list[Any]:
    return ["NaN" if isinstance(v, float) and math.isnan(v) else v for v in values]


def _values(column: pa.ChunkedArray) -> list[Any]:
    """A column's values to compare; timestamps as their stored microseconds since the epoch
    (UTC for a zone; the types are compared first): an offset can move a timestamp of year 1
    or 9999 outside Python's datetime range (``0001-01-01 00:00:00+02`` is 0001-12-31 BC
    22:00 UTC, in DuckDB too), where ``to_pylist`` raises ``OverflowError``."""
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.int64()).to_pylist()
    return _norm(column.to_pylist())


def duck_table(path: Path) -> pa.Table:
    rel = duckdb.sql(f"SELECT * FROM read_csv('{path}')")
    cast = ", ".join(
        f'"{c}"::VARCHAR AS "{c}"' if str(t) == "TIME" else f'"{c}"'
        for c, t in zip(rel.columns, rel.types, strict=True)
    )
    types = [DUCK_TO_ARROW[str(t)] for t in rel.types]
    table = duckdb.sql(f"SELECT {cast} FROM read_csv('{path}')").arrow()
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    return table.cast(pa.schema([pa.field(n, t) for n, t in zip(rel.columns, types, strict=True)]))


def ours(path: Path, block_bytes: int) -> pa.Table:
    schema = sniff_csv_schema(path)
    return pa.Table.from_batches(
        list(read_csv_batches(path, schema, block_bytes=block_bytes)), schema
    )


def assert_same(path: Path, block_bytes: int = 1 << 20) -> None:
    want = duck_table(path)
    got = ours(path, block_bytes)
    assert got.column_names == want.column_names
    assert got.schema.types == want.schema.types, (got.schema, want.schema)
    for name in want.column_names:
        assert _values(got.column(name)) == _values(want.column(name)), name


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=csv_files())
# Found by this test (seed 6, 500 examples): a timestamp with an offset leaves year 1 in UTC.
@example(case=("id,id,id\n,0001-01-01 00:00:00+02,\n", 256))
def test_generated_csv_reads_as_duckdb_reads_it(tmp_path: Path, case: tuple[str, int]) -> None:
    text, block = case
    path = tmp_path / "gen.csv"
    path.write_bytes(text.encode())
    assert_same(path, block)


@st.composite
def one_column_files(draw: st.DrawFn) -> str:
    """A one-column CSV whose NULLs are often blank lines (DuckDB: a NULL row, not skipped)."""
    kind = draw(st.sampled_from(sorted(VALUES)))
    cells = draw(
        st.lists(st.one_of(st.just(None), st.just(""), VALUES[kind]), min_size=1, max_size=30)
    )
    # A leading inf makes DuckDB's sniffer guess a date (see README), as in csv_files
    firsts = [i for i, c in enumerate(cells) if c not in (None, "")]
    if kind == "float" and firsts and "inf" in (cells[firsts[0]] or "").lower():
        cells[firsts[0]] = "1.5"
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [draw(st.sampled_from(["v", "name", "x y"]))]
    lines += [_render(v, draw(st.booleans()) and v is not None) for v in cells]
    return eol.join(lines) + draw(st.sampled_from([eol, ""]))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=one_column_files(), block=st.sampled_from([256, 1 << 20]))
def test_blank_lines_of_a_one_column_file_are_null_rows_as_in_duckdb(
    tmp_path: Path, text: str, block: int
) -> None:
    path = tmp_path / "one.csv"
    path.write_bytes(text.encode())
    assert_same(path, block)


def test_null_words_leading_zeros_and_quoted_empty(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_text(
        'cc,code,x,q,b\nNA,007,1.5,"",t\nnull,010,nan,x,F\n#N/A,,NaN,,yes\nNone,1,2,"y",\n'
    )
    assert_same(path)
    types = {f.name: f.type for f in infer_schema(path)}
    assert types == {"cc": UTF8, "code": UTF8, "x": F64, "q": UTF8, "b": BOOL8}


def test_timestamps_whose_offset_leaves_years_1_to_9999_read_as_in_duckdb(tmp_path: Path) -> None:
    """DuckDB reads these (its TIMESTAMPTZ spans far more than Python's datetime): so do we,
    to the same instant, though ``as_py`` cannot give them as a Python datetime."""
    path = tmp_path / "edge.csv"
    path.write_text("t,n\n0001-01-01 00:00:00+02,1\n9999-12-31 23:00:00-05:30,2\n")
    assert_same(path)
    got = ours(path, 1 << 20).column("t")
    assert got.type == pa.timestamp("us", "UTC")
    # 0001-12-31 BC 22:00 UTC and 10000-01-01 04:30 UTC, in microseconds since the epoch
    assert got.cast(pa.int64()).to_pylist() == [-62135604000000000, 253402317000000000]


def test_quoted_newlines_cross_many_blocks(tmp_path: Path) -> None:
    path = tmp_path / "nl.csv"
    rows = "".join(f'{i},"line one\nline, ""two"" {i}",{i % 7 == 0}\n' for i in range(3000))
    path.write_text("id,note,flag\n" + rows)
    assert path.stat().st_size > 64 * 1024
    assert_same(path, block_bytes=4096)


def test_infer_schema_uses_duckdb_types(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("i,f,d,ts,tm,s\n1,1.5,2024-01-02,2024-01-02 03:04:05,10:11:12,007\n")
    types = {f.name: f.type for f in infer_schema(path)}
    assert types == {
        "i": I64,
        "f": F64,
        "d": DATE,
        "ts": timestamp(),
        "tm": UTF8,
        "s": UTF8,
    }


def test_a_row_longer_than_a_block_and_a_bad_value_say_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("a,b\n1," + "x" * 5000 + "\n")
    with pytest.raises(CsvError, match="longer than the 1024-byte read block"):
        ours(path, 1024)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n" + "".join(f'{i},"x\ny"\n' for i in range(50)) + "oops,z\n")
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    with pytest.raises(CsvError, match=r"line 102: column \"a\": 'oops' is not int64") as err:
        list(read_csv_batches(bad, schema, block_bytes=256))
    assert isinstance(err.value, BadInputError)
    malformed = tmp_path / "fields.csv"
    malformed.write_text('a,b\n1,"x\ny"\n2\n')
    with pytest.raises(CsvError, match=r"line 4 is malformed: expected 2 columns, found 1"):
        ours(malformed, 1 << 20)


def test_write_csv_bytes_round_trips_and_refuses_nested_columns() -> None:
    """Results as CSV (emsqrt --csv, elytra's ?format=csv): NULL empty, "" quoted."""
    from platform_core import BadInputError, write_csv_bytes

    table = pa.table({"s": ["a", "", None], "n": [1, None, 3]})
    text = write_csv_bytes(table, instead="use json")
    assert text == b'"s","n"\n"a",1\n"",\n,3\n'
    import pyarrow.csv as pa_csv

    back = pa_csv.read_csv(
        pa.py_buffer(text),
        convert_options=pa_csv.ConvertOptions(
            strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )
    assert back.equals(table)
    with pytest.raises(BadInputError, match=r"cannot be written as CSV .*; use json"):
        write_csv_bytes(pa.table({"l": [[1, 2]]}), instead="use json")
