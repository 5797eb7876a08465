"""Decimal arithmetic equals DuckDB's: result types (``typeof`` over columns) and values.

TPC-H's money columns are DECIMAL(15, 2). DuckDB types decimal arithmetic by its own rules
(``_decimal``'s docstring); the checker must give the same type, because the DuckDB kernel
renders the same expression to SQL and a plan's schema must match what either path returns.
Types are read from DuckDB on *columns* of a table (constants are typed by their value).
Values: random expressions over decimal columns of several (p, s) with NULLs, integers of
each width and floats are evaluated by ``evaluate`` on Arrow and by DuckDB on ``to_sql``;
types and values must be equal (decimals exactly), and an error on one side must be an
error on the other.
"""

from __future__ import annotations

import decimal as pydecimal
import functools
import math
import os
from collections.abc import Callable

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from platform_core.errors import PlatformError
from platform_core.expr import ExpressionError, evaluate, parse, to_sql
from platform_core.expr.checker import check
from platform_core.expr.nodes import (
    Binary,
    BinaryOp,
    Call,
    Case,
    Cast,
    Column,
    Expr,
    Literal,
    Unary,
)
from platform_core.schema import Schema
from platform_core.types import F64, I32, I64, UTF8, FieldType, decimal, from_arrow, parse_type

D = pydecimal.Decimal

#: Column name -> type: TPC-H's DECIMAL(15, 2) twice, small and wide scales, 38 digits with
#: scale 0 (an integer SUM) and 10, integers of each width, floats.
COLUMNS: dict[str, FieldType] = {
    "a": decimal(15, 2),
    "b": decimal(15, 2),
    "c": decimal(4, 1),
    "z": decimal(9, 4),
    "e": decimal(18, 0),
    "w": decimal(20, 3),
    "d": decimal(38, 10),
    "h": decimal(38, 0),
    "i": I32,
    "l": I64,
    "u": parse_type("u8"),
    "v": parse_type("u32"),
    "f": F64,
    "r": parse_type("f32"),
}
SCHEMA = Schema.from_arrow(pa.schema([(n, t.to_arrow()) for n, t in COLUMNS.items()]))
DECIMALS = tuple(n for n, t in COLUMNS.items() if t.kind == "decimal")
INTEGERS = ("i", "l", "u", "v")
LONG = os.environ.get("PLATFORM_TESTS_LONG") == "1"


@functools.cache
def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    return con


def _duck_type(sql: str, *, table: pa.Table | None = None) -> FieldType | str:
    """DuckDB's result type of ``sql`` over the columns (an error's first line)."""
    con = _con()
    con.register("t", table if table is not None else _EMPTY)
    try:
        result = con.sql(f"SELECT {sql} AS r FROM t").to_arrow_table()
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]
    finally:
        con.unregister("t")
    return from_arrow(result.schema.field("r").type)


_EMPTY = SCHEMA.to_arrow().empty_table()

# --- types ------------------------------------------------------------------------------------

TYPED = [
    # + - : max(p - s) + max(s) + 1, capped at 38
    *("a + b", "a - b", "a + c", "c + c", "a + w", "w + z", "e + e", "d + d", "d - h"),
    *("h + h", "a + i", "a - l", "c + u", "a + v", "i + a", "1 - a", "a + 3000000000"),
    "c - 1",
    # * : p1 + p2, s1 + s2; 18 when both fit 18 digits and the scale is below 18
    *("a * b", "a * c", "c * c", "a * d", "d * d", "a * h", "h * h", "e * e", "a * i"),
    *("a * l", "c * u", "c * 1", "a * 2", "w * z", "w * w * w", "z * z * z * z * z"),
    *("a * (1 - b)", "a * (1 - b) * (1 + c)", "CAST(z AS DECIMAL(18, 17)) * e"),
    "CAST(z AS DECIMAL(18, 17)) * CAST(z AS DECIMAL(9, 9))",
    # % : the combined type
    *("a % b", "a % c", "c % a", "c % i", "a % l", "z % c", "d % h", "h % i", "c % 2"),
    *("d % w", "d % l", "h % d", "d % e"),
    # / and floats: DOUBLE (FLOAT with f32)
    *("a / b", "a / i", "i / a", "a / r", "a + f", "a * r", "a % f", "pow(a, 2)"),
    # unary, round, floor, ceil
    *("-a", "-c", "abs(c)", "abs(d)", "round(a)", "round(a, 1)", "round(a, 3)"),
    *("round(a, -1)", "round(c, 5)", "round(e, -1)", "round(e, -18)", "round(e, -19)"),
    *("round(h, -1)", "round(h, -39)", "round(c, -3)", "round(c, -4)", "round(d, 3)"),
    *("floor(a)", "ceil(c)", "floor(d)", "ceil(h)"),
    # common types
    *("coalesce(a, c)", "coalesce(a, d)", "coalesce(a, i)", "coalesce(c, i)", "coalesce(a, l)"),
    *("coalesce(c, u)", "coalesce(a, f)", "coalesce(a, r)", "greatest(a, c)", "least(a, z)"),
    *("coalesce(d, w)", "coalesce(h, i)", "coalesce(d, h)", "coalesce(d, e)", "coalesce(c, 1)"),
    *("coalesce(c, 3000000000)", "greatest(c, z, i)", "nullif(c, a)"),
    "CASE WHEN a > c THEN a ELSE c END",
    "CASE WHEN a > 0 THEN c ELSE d END",
    "CASE WHEN a > 0 THEN a ELSE 0 END",
    # casts
    *("CAST(a AS DECIMAL(4, 1))", "CAST(i AS DECIMAL(12, 2))", "CAST(a AS f64)"),
    *("CAST(a AS i32)", "CAST(d AS DECIMAL(38, 0))"),
]


@pytest.mark.parametrize("text", TYPED)
def test_types_match_duckdb_on_columns(text: str) -> None:
    expr = parse(text)
    assert check(expr, SCHEMA) == _duck_type(to_sql(expr)), text


AGGREGATES = [
    *("sum(a)", "sum(c)", "sum(d)", "sum(h)", "sum(a * b)", "sum(a * (1 - b))"),
    *("sum(i)", "avg(a)", "avg(a * b)", "min(c)", "max(a * c)", "sum(a) * 2"),
    "sum(a * (1 - b)) / sum(a)",
    "sum(a) - sum(b)",
    "coalesce(sum(a), 0)",
    # TPC-H q11 and q14 as SQL writes them (0.0001 and 100.00 are DECIMAL literals)
    "sum(a * i) * CAST(0.0001 AS DECIMAL(5, 4))",
    "sum(a * i) > sum(a * i) * CAST(0.0001 AS DECIMAL(5, 4))",
    "CAST(100.00 AS DECIMAL(5, 2)) * sum(CASE WHEN i > 0 THEN a * (1 - b) ELSE 0 END) / sum(a)",
]


@pytest.mark.parametrize("text", AGGREGATES)
def test_aggregate_types_match_duckdb(text: str) -> None:
    """sum of decimal(p, s) is decimal(38, s); avg is DOUBLE; min/max keep the type."""
    expr = parse(text)
    assert check(expr, SCHEMA, aggregates=True) == _duck_type(to_sql(expr)), text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("d * d * d * d", "needs scale 40"),
        ("CAST(z AS DECIMAL(38, 20)) * CAST(z AS DECIMAL(38, 19))", "needs scale 39"),
        ("CAST(f AS DECIMAL(38, 20)) * CAST(f AS DECIMAL(38, 20))", "needs scale 40"),
    ],
)
def test_a_product_past_scale_38_is_refused_as_duckdb_refuses_it(text: str, message: str) -> None:
    expr = parse(text)
    with pytest.raises(ExpressionError, match=message):
        check(expr, SCHEMA)
    assert isinstance(_duck_type(to_sql(expr)), str)  # DuckDB: an error too


# --- values -----------------------------------------------------------------------------------


def _decimal_values(t: FieldType) -> st.SearchStrategy[D]:
    """Values of ``t``: edges (the largest, ties at the last digit, 0) and random digits."""
    assert t.precision is not None
    assert t.scale is not None
    p, s = t.precision, t.scale
    top = 10**p - 1
    unscaled = st.one_of(
        st.sampled_from((0, 1, -1, 5, -5, 15, -25, top, -top, top // 2, 10 ** (p - 1))),
        st.integers(-999, 999),
        st.integers(-(10 ** min(p, 9)) + 1, 10 ** min(p, 9) - 1),
        st.integers(-top, top),
    )
    return unscaled.map(lambda u: D(u).scaleb(-s, context=pydecimal.Context(prec=80)))


_INT_RANGES = {"i": (-(2**31), 2**31 - 1), "l": (-(2**63), 2**63 - 1), "u": (0, 255)}
_INT_RANGES["v"] = (0, 2**32 - 1)


def _values(name: str) -> st.SearchStrategy[object]:
    t = COLUMNS[name]
    if t.kind == "decimal":
        return _decimal_values(t)
    if name in _INT_RANGES:
        lo, hi = _INT_RANGES[name]
        return st.one_of(st.integers(max(lo, -9), min(hi, 9)), st.integers(lo, hi))
    return st.one_of(
        st.sampled_from((0.0, -0.0, 0.5, -2.5, 1e300, math.nan, math.inf)),
        st.floats(-1e6, 1e6, allow_nan=False, width=32 if name == "r" else 64),
    )


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    """1-8 rows; each column without NULLs, with NULLs mixed in, or all NULL."""
    rows = draw(st.integers(1, 8))
    columns = {}
    for name, t in COLUMNS.items():
        regime = draw(st.sampled_from(("mixed", "no nulls", "all null")))
        cell = {
            "mixed": st.one_of(st.none(), _values(name), _values(name)),
            "no nulls": _values(name),
            "all null": st.none(),
        }[regime]
        columns[name] = pa.array(draw(st.lists(cell, min_size=rows, max_size=rows)), t.to_arrow())
    return pa.table(columns)


#: Decimal literals as SQL writes them (``0.05`` is DECIMAL(3, 2) in DuckDB): TPC-H's
#: discounts, ``100.00``, ``0.0001``.
DECIMAL_LITERALS = [
    Literal(0.05, decimal(3, 2)),
    Literal(1.5, decimal(2, 1)),
    Literal(0.0001, decimal(5, 4)),
    Literal(100.0, decimal(5, 2)),
    Literal(-2.25, decimal(3, 2)),
    Literal(7, decimal(1, 0)),
]


def _leaf(draw: st.DrawFn) -> Expr:
    choice = draw(st.integers(0, 10))
    if choice == 10:
        return draw(st.sampled_from(DECIMAL_LITERALS))
    if choice < 5:
        return Column(draw(st.sampled_from(DECIMALS)))
    if choice < 7:
        return Column(draw(st.sampled_from(INTEGERS)))
    if choice == 7:
        return Column(draw(st.sampled_from(("f", "r"))))
    if choice == 8:
        value = draw(st.sampled_from((0, 1, 2, -3, 7, 100, 2**31 - 1, 3_000_000_000)))
        return Literal(value, I32 if -(2**31) <= value < 2**31 else I64)
    return Literal(None, draw(st.sampled_from([COLUMNS[n] for n in DECIMALS])))


_TARGETS = [decimal(p, s) for p, s in ((4, 1), (15, 2), (18, 6), (38, 2), (10, 0))]


@st.composite
def numbers(draw: st.DrawFn, depth: int = 3) -> Expr:
    """A numeric expression over the columns, mostly decimal."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return _leaf(draw)
    sub: Callable[[], Expr] = lambda: draw(numbers(depth - 1))  # noqa: E731
    form = draw(st.integers(0, 13))
    if form <= 4:
        return Binary(draw(st.sampled_from(("+", "-", "*", "*", "%", "/"))), sub(), sub())
    if form == 5:
        return Unary("neg", sub())
    if form == 6:
        return Call("abs", (sub(),))
    if form == 7:
        digits = draw(st.sampled_from((0, 1, 2, 3, 5, -1, -2, -5, -20, -40)))
        arg = Literal(-digits, I32)
        return Call("round", (sub(), Unary("neg", arg) if digits < 0 else Literal(digits, I32)))
    if form == 8:
        return Call(draw(st.sampled_from(("floor", "ceil"))), (sub(),))
    if form == 9:
        name = draw(st.sampled_from(("coalesce", "greatest", "least")))
        return Call(name, tuple(sub() for _ in range(draw(st.integers(1, 3)))))
    if form == 10:
        op: BinaryOp = draw(st.sampled_from(("<", "=", ">=", "<>")))
        return Case(((Binary(op, sub(), sub()), sub()),), sub() if draw(st.booleans()) else None)
    if form == 11:
        return Call("nullif", (sub(), sub()))
    if form == 12:
        return Cast(sub(), draw(st.sampled_from(_TARGETS)))
    return Cast(sub(), draw(st.sampled_from((F64, I64))))


def _python(values: pa.ChunkedArray) -> list[object]:
    return list(values.to_pylist())


def _same(x: object, y: object) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, float) or isinstance(y, float):
        a, b = float(x), float(y)  # type: ignore[arg-type]
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return type(x) is type(y) and x == y


def _run_duckdb(sql: str, table: pa.Table, *, optimize: bool = True) -> pa.ChunkedArray | Exception:
    con = _con()
    con.execute("PRAGMA enable_optimizer" if optimize else "PRAGMA disable_optimizer")
    con.register("t", table)
    try:
        column: pa.ChunkedArray = con.sql(f"SELECT {sql} AS r FROM t").to_arrow_table()["r"]
        return column
    except duckdb.Error as exc:
        return exc
    finally:
        con.unregister("t")
        con.execute("PRAGMA enable_optimizer")


_SETTINGS = settings(
    max_examples=1000 if LONG else 250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.timeout(600)
@_SETTINGS
@given(table=tables(), expr=st.one_of(numbers(), numbers().map(lambda e: Cast(e, UTF8))))
def test_decimal_expressions_equal_duckdb(table: pa.Table, expr: Expr) -> None:
    sql = to_sql(expr)
    note(f"SQL: SELECT {sql} AS r FROM t")
    note(f"table: {table.to_pylist()}")
    try:
        checked = check(expr, SCHEMA)
    except ExpressionError as exc:
        note(f"refused: {exc}")
        # ours refuses: DuckDB must refuse a product past scale 38 too; other refusals
        # (comparisons past 38 digits, CASTs we do not reproduce) are documented elsewhere
        if "needs scale" in str(exc):
            assert isinstance(_run_duckdb(sql, table), Exception)
        event(f"outcome: refused ({str(exc).split(' in ')[0][:40]})")
        return
    event(f"type: {checked.kind}")
    theirs = _run_duckdb(sql, table)
    try:
        ours: pa.ChunkedArray | Exception = evaluate(expr, table, schema=SCHEMA)
    except PlatformError as exc:
        ours = exc
    note(f"evaluate: {ours!r}")
    note(f"DuckDB: {theirs!r}")
    if isinstance(theirs, Exception) != isinstance(ours, Exception):
        # DuckDB's optimizer may fold away a part that raises (``x + (a < NULL)``), as
        # test_expr_property documents; DuckDB without it must then agree with evaluate
        unoptimized = _run_duckdb(sql, table, optimize=False)
        note(f"DuckDB without its optimizer: {unoptimized!r}")
        assert isinstance(unoptimized, Exception) == isinstance(ours, Exception), "one raised"
        event("outcome: one-sided, DuckDB's optimizer decides")
        return
    if isinstance(theirs, Exception) or isinstance(ours, Exception):
        event("outcome: both raise")
        return
    assert ours.type == checked.to_arrow(), f"evaluate gave {ours.type}, the checker {checked}"
    if theirs.type != pa.null():
        assert from_arrow(theirs.type) == checked, f"DuckDB gave {theirs.type}, ours {checked}"
    a, b = _python(ours), _python(theirs)
    diffs = [
        f"row {k}: ours {x!r}, DuckDB {y!r}"
        for k, (x, y) in enumerate(zip(a, b, strict=True))
        if not _same(x, y)
    ]
    assert not diffs, "\n".join(diffs)
    event("outcome: equal values")


# --- examples the property stands on ------------------------------------------------------------


def _table(**columns: list[object]) -> pa.Table:
    rows = len(next(iter(columns.values())))
    data = {
        name: pa.array(columns.get(name, [None] * rows), t.to_arrow())
        for name, t in COLUMNS.items()
    }
    return pa.table(data)


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("a * (1 - b)", {"a": [D("9999999999999.99"), D("12.50")], "b": [D("0.07"), None]}),
        ("a * b", {"a": [D("-0.05"), D("1.25")], "b": [D("0.10"), D("-3.33")]}),
        ("a % c", {"a": [D("-7.50"), D("7.55")], "c": [D("2.0"), D("-0.7")]}),
        ("round(a, 1)", {"a": [D("-0.05"), D("0.05"), D("2.45"), D("-2.44")]}),
        ("round(e, -1)", {"e": [D(999999999999999995), D(-15)]}),
        ("round(a, -14)", {"a": [D("1.50"), None]}),  # the constant 0, NULL rows too
        ("round(a, -13)", {"a": [D("1.50"), None]}),
        ("coalesce(d, h)", {"d": [D("1.5"), None], "h": [D(3), D(4)]}),
        ("CAST(a AS DECIMAL(4, 1))", {"a": [D("99.95"), D("-0.05")]}),
        ("floor(c) + ceil(c)", {"c": [D("-2.5"), D("2.5"), D("999.9")]}),
        # DuckDB's text: every digit of the scale, no exponent, no 0 before the point when
        # the type has no integer digits (Arrow writes 1E-10, 0E-18, 0.01)
        ("CAST(d AS utf8)", {"d": [D("1E-10"), D("-1E-10"), D(0), D("-123.4567891234")]}),
        # a float to a decimal: round(x * 10**s) in double, half away from zero (DuckDB's)
        ("CAST(f AS DECIMAL(15, 2))", {"f": [0.125, -0.125, 1.005, 0.285, 2.5, -0.0, None]}),
        ("CAST(f AS DECIMAL(38, 38))", {"f": [0.1, -0.5, 1e-30, 0.49999999999999994]}),
        ("CAST(r AS DECIMAL(9, 4))", {"r": [0.1, -2.5, 3.14159]}),
        # a decimal to an integer rounds with room for the carry (99.5 of decimal(3, 1) is 100)
        (
            "CAST(c AS i32) + CAST(w AS i64)",
            {"c": [D("999.5"), D("-0.5")], "w": [D("-0.5"), D("99999999999999999.999")]},
        ),
        ("CAST(CAST(z AS DECIMAL(9, 9)) AS utf8)", {"z": [D("0.0100"), D("-0.5"), D(0)]}),
        ("CAST(CAST(z AS DECIMAL(38, 38)) AS utf8) || 'x'", {"z": [D("0.0100"), D("-0.5")]}),
        # past 38 digits DuckDB compares in decimal(38, the larger scale) (TPC-H q11: a
        # decimal(38, 2) sum against a decimal(38, 6) one)
        ("d > h", {"d": [D("1.4"), D("-0.5"), None], "h": [D(1), D(0), D(3)]}),
        ("d = h", {"d": [D("1.4"), D("2"), D(0)], "h": [D(1), D(2), D(10**27)]}),
        # decimals' % in DOUBLE: a zero divisor of a NULL dividend is NULL, not an error
        # (CI's property run found ours raising once the zero-divisor error was added)
        ("a % floor(i)", {"a": [None, None, D("1.50")], "i": [0, 0, 2]}),
        ("d % h", {"d": [None, D("7.5")], "h": [D(0), D(2)]}),
    ],
)
def test_values_match_duckdb(text: str, columns: dict[str, list[object]]) -> None:
    expr, table = parse(text), _table(**columns)
    theirs = _run_duckdb(to_sql(expr), table)
    assert not isinstance(theirs, Exception), theirs
    ours = evaluate(expr, table, schema=SCHEMA)
    assert ours.type == theirs.type
    assert ours.to_pylist() == theirs.to_pylist()


def test_a_decimal_mod_a_float_zero_is_nan_as_duckdb_gives() -> None:
    """With a float operand, ``%`` is a DOUBLE's own: NaN for a zero divisor, not the error
    of decimals' ``%`` (found by the decimal property test once that error was added)."""
    expr, table = parse("a % f"), _table(a=[D("0.00"), D("2.50")], f=[0.0, None])
    theirs = _run_duckdb(to_sql(expr), table)
    assert not isinstance(theirs, Exception), theirs
    ours = evaluate(expr, table, schema=SCHEMA)
    assert ours.type == theirs.type
    assert math.isnan(theirs[0].as_py())
    assert math.isnan(ours[0].as_py())
    assert ours[1].as_py() is None
    assert theirs[1].as_py() is None


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        ("a * b", {"a": [D("9999999999999.99")], "b": [D("9999999999999.99")]}, "DECIMAL\\(18\\)"),
        ("e * e", {"e": [D(10**9)]}, "multiplication of DECIMAL\\(18\\)"),
        ("h + h", {"h": [D(10**38 - 1)]}, "addition of DECIMAL\\(38\\)"),
        ("d * a", {"d": [D(10**27)], "a": [D(10**12)]}, "multiplication of DECIMAL\\(38\\)"),
        ("round(h, -1)", {"h": [D(10**38 - 1)]}, "ROUND of DECIMAL\\(38\\)"),
        ("c % 0", {"c": [D("1.5")]}, "Division by zero"),
        ("d = h", {"d": [D(0)], "h": [D(10**37)]}, "Out of Range"),
        ("CAST(f AS DECIMAL(5, 2))", {"f": [1000.0]}, "Out of Range"),
    ],
)
def test_overflow_is_an_error_naming_the_expression(
    text: str, columns: dict[str, list[object]], message: str
) -> None:
    expr, table = parse(text), _table(**columns)
    assert isinstance(_run_duckdb(to_sql(expr), table), Exception)
    with pytest.raises(PlatformError, match=message) as raised:
        evaluate(expr, table, schema=SCHEMA)
    shown = str(raised.value).replace(" ", "").replace('"', "").lower()
    assert text.replace(" ", "").lower() in shown
