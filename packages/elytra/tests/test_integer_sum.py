"""Integer and boolean sums across tasks give DuckDB's type and value: its 128-bit HUGEINT,
exported to Arrow as decimal128(38, 0), exact past int64 and never an overflow error.

Generated Parquet parts (one task each, so partial states of several tasks merge) hold
integer columns of every width and booleans, at and near their limits and small, with NULLs,
groups whose values are all NULL, and filters that leave no rows. The same pipelines run on
the inline backend (merged in the driver) and on the local pool (through the aggregate
exchange and without it); each result's schema and rows must equal DuckDB's over the files.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elytra

TYPES = {
    "i8": pa.int8(),
    "i16": pa.int16(),
    "i32": pa.int32(),
    "i64": pa.int64(),
    "u8": pa.uint8(),
    "u16": pa.uint16(),
    "u32": pa.uint32(),
    "bool": pa.bool_(),
}


@pytest.fixture(params=["inline", "local", "local-exchange"])
def backend_session(
    request: pytest.FixtureRequest, tmp_path: Path, pool: elytra.LocalPool
) -> Iterator[elytra.Session]:
    backend: Any = "inline" if request.param == "inline" else pool
    extra = {"exchange_min_bytes": 0} if request.param == "local-exchange" else {}
    with elytra.connect(home=tmp_path / "home", backend=backend, **extra) as s:
        yield s


def _limits(t: pa.DataType) -> tuple[int, int]:
    if pa.types.is_boolean(t):
        return 0, 1
    info = np.iinfo(t.to_pandas_dtype())
    return int(info.min), int(info.max)


@st.composite
def parts(draw: Any) -> tuple[pa.DataType, list[pa.Table]]:
    """2-4 parts of ``k`` (int64 key; group 9 all NULL in ``x``) and ``x`` of a drawn type."""
    t = TYPES[draw(st.sampled_from(sorted(TYPES)))]
    lo, hi = _limits(t)
    value = st.one_of(
        st.none(),
        st.integers(max(lo, hi - 2), hi),
        st.integers(lo, min(hi, lo + 2)),
        st.integers(max(lo, -3), min(hi, 3)),
    )
    tables = []
    for _ in range(draw(st.integers(2, 4))):
        rows = draw(st.integers(1, 60))
        values = draw(st.lists(value, min_size=rows, max_size=rows))
        keys = draw(st.lists(st.integers(0, 4), min_size=rows, max_size=rows))
        if draw(st.booleans()):
            values, keys = [*values, None], [*keys, 9]
        x = pa.array([v if v is None or not pa.types.is_boolean(t) else bool(v) for v in values], t)
        tables.append(pa.table({"k": pa.array(keys, pa.int64()), "x": x}))
    return t, tables


def _aggs(t: pa.DataType) -> list[str]:
    aggs = ["sum(x) AS s", "count(x) AS n"]
    if not pa.types.is_boolean(t):  # DuckDB has no avg(BOOLEAN)
        aggs.append("avg(x) AS a")
    return aggs


def _same_as_duckdb(got: pa.Table, want: pa.Table) -> None:
    """Same schema and rows; avg to 1e-15 relative (DuckDB divides the 128-bit sum in long
    double, we in double), everything else exactly."""
    assert got.schema == want.schema, (got.schema, want.schema)
    if "k" in got.column_names:
        got, want = got.sort_by("k"), want.sort_by("k")
    assert got.num_rows == want.num_rows
    for name in got.column_names:
        a, b = got.column(name).to_pylist(), want.column(name).to_pylist()
        if name == "a":
            for u, v in zip(a, b, strict=True):
                assert (u is None) == (v is None)
                assert u is None or math.isclose(u, v, rel_tol=1e-15)
        else:
            assert a == b, name


@pytest.mark.timeout(900)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=parts())
def test_sums_across_tasks_are_duckdbs(
    backend_session: elytra.Session, data: tuple[pa.DataType, list[pa.Table]]
) -> None:
    t, tables = data
    with tempfile.TemporaryDirectory() as d:
        for i, table in enumerate(tables):
            pq.write_table(table, f"{d}/part{i}.parquet")
        con = duckdb.connect(config={"threads": 1})
        con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{d}/*.parquet')")
        aggs = _aggs(t)
        sel = ", ".join(aggs)
        p = backend_session.read_parquet(f"{d}/*.parquet")
        cases = [
            (p.group_by("k").agg(*aggs), f"SELECT k, {sel} FROM t GROUP BY k"),
            (p.agg(*aggs), f"SELECT {sel} FROM t"),
            (p.filter("k > 100").agg(*aggs), f"SELECT {sel} FROM t WHERE k > 100"),
            (
                p.filter("k = 9").group_by("k").agg(*aggs),
                f"SELECT k, {sel} FROM t WHERE k = 9 GROUP BY k",
            ),
        ]
        for pipeline, sql in cases:
            want = con.sql(sql).to_arrow_table()
            assert want.schema.field("s").type == pa.decimal128(38, 0)
            _same_as_duckdb(pipeline.collect(), want)


def test_int64_limits_summed_past_int64_across_tasks(
    backend_session: elytra.Session, tmp_path: Path
) -> None:
    # Every task's partial sum is already past int64; the merged totals are exact.
    top, bottom = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for i in range(3):
        pq.write_table(
            pa.table(
                {
                    "k": pa.array(np.arange(1000) % 3, pa.int64()),
                    "x": pa.array(np.where(np.arange(1000) % 3 == 2, bottom, top), pa.int64()),
                }
            ),
            tmp_path / f"p{i}.parquet",
        )
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{tmp_path}/*.parquet')")
    want = con.sql("SELECT k, sum(x) AS s, count(x) AS n, avg(x) AS a FROM t GROUP BY k")
    want_t = want.to_arrow_table()
    assert sorted(want_t.column("s").to_pylist()) == [bottom * 999, top * 999, top * 1002]
    p = backend_session.read_parquet(f"{tmp_path}/*.parquet")
    _same_as_duckdb(
        p.group_by("k").agg("sum(x) AS s", "count(x) AS n", "avg(x) AS a").collect(), want_t
    )
    # in an expression over aggregates too: DuckDB's HUGEINT arithmetic, exact
    got = p.group_by("k").agg("sum(x) - sum(x) + 1 AS d", "sum(x) * 2 AS m").collect()
    want2 = con.sql("SELECT k, sum(x) - sum(x) + 1 AS d, sum(x) * 2 AS m FROM t GROUP BY k")
    _same_as_duckdb(got, want2.to_arrow_table())
