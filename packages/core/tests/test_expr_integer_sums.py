"""Expressions over an integer SUM (decimal(38, 0), DuckDB's HUGEINT) as DuckDB computes them.

Before integer sums became 128-bit they were i64, and ``coalesce(sum(x), 0)``,
``sum(x) * 1.5``, ``sum(x) % 7``, ``CASE WHEN ... THEN sum(x) ELSE 0 END`` and
``pow(sum(x), 2)`` all worked; as decimal(38, 0) the checker refused every one of them
("CAST the decimal to f64" / "cannot mix decimal(38, 0) with i32"). DuckDB is the oracle:
the column ``s`` is a real ``sum()`` (HUGEINT), the same values are given to ours as Arrow's
decimal128(38, 0), and each expression is compared in type and value.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_core.expr import DivisionByZeroError, evaluate, parse, to_sql

EXPRESSIONS = [
    "s + f",
    "s * 1.5",
    "s - f",
    "s * f + 1",
    "s + CAST(f AS f32)",
    "s % 7",
    "s % i",
    "s % -3",
    "(s * 3) % 1000000007",
    "coalesce(s, 0)",
    "coalesce(s, i)",
    "greatest(s, i)",
    "least(s, 1)",
    "nullif(s, 0)",
    "CASE WHEN s > 0 THEN s ELSE 0 END",
    "CASE WHEN s > 0 THEN i ELSE s END",
    "pow(s, 2)",
    "s IN (1, 2, 3)",
]

HUGE = 10**37  # past int64, inside 38 digits even after a few additions


def _oracle(
    rows: list[tuple[int, list[int | None], float, int]],
) -> tuple[pa.Table, duckdb.DuckDBPyConnection]:
    """A table whose ``s`` is DuckDB's own ``sum()`` of each group's values (HUGEINT)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE raw (k INTEGER, v HUGEINT, f DOUBLE, i INTEGER)")
    flat = [(k, v, f, i) for k, vs, f, i in rows for v in vs]
    con.executemany("INSERT INTO raw VALUES (?, ?, ?, ?)", flat)
    con.execute(
        "CREATE TABLE g AS SELECT k, sum(v) AS s, any_value(f) AS f, any_value(i) AS i "
        "FROM raw GROUP BY k ORDER BY k"
    )
    table = con.sql("SELECT * FROM g ORDER BY k").to_arrow_table()
    assert table.schema.field("s").type == pa.decimal128(38, 0)
    return table, con


def _compare(expr: str, table: pa.Table, con: duckdb.DuckDBPyConnection) -> None:
    node = parse(expr)
    theirs = con.sql(f"SELECT {to_sql(node)} AS x FROM g ORDER BY k").to_arrow_table()
    ours = evaluate(node, table)
    expected = theirs.column("x").combine_chunks()
    got = ours.combine_chunks() if isinstance(ours, pa.ChunkedArray) else ours
    assert got.type == expected.type, expr
    assert got.to_pylist() == expected.to_pylist(), expr


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_expressions_over_sums_past_int64_equal_duckdb(expr: str) -> None:
    rows = [
        (1, [HUGE, HUGE, 5], 0.25, 3),
        (2, [-HUGE, 17], -2.5, -4),
        (3, [None, None], 1.0, 7),  # a NULL-only group: its sum is NULL
        (4, [9223372036854775807, 9223372036854775807], 3.0, 2),
        (5, [-7], 0.5, 5),
    ]
    table, con = _oracle(rows)
    _compare(expr, table, con)


groups = st.lists(
    st.tuples(
        st.lists(
            st.one_of(
                st.none(),
                st.integers(-(2**63), 2**63 - 1),
                st.integers(-HUGE, HUGE),
            ),
            min_size=1,
            max_size=4,
        ),
        st.floats(-1e6, 1e6, allow_nan=False),
        st.integers(-50, 50).filter(bool),  # a nonzero divisor
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(groups)
def test_generated_sums_equal_duckdb(data: list[tuple[list[int | None], float, int]]) -> None:
    rows = [(k, vs, f, i) for k, (vs, f, i) in enumerate(data)]
    table, con = _oracle(rows)
    for expr in ["s % i", "s % 1000000007", "coalesce(s, 0)", "s * f", "greatest(s, i)"]:
        _compare(expr, table, con)


def test_sum_modulo_zero_is_duckdbs_division_by_zero() -> None:
    table, con = _oracle([(1, [HUGE], 1.0, 0)])
    with pytest.raises(duckdb.Error, match="Division by zero"):
        con.sql("SELECT s % i FROM g").fetchall()
    with pytest.raises(DivisionByZeroError, match="Division by zero"):
        evaluate(parse("s % i"), table)
