"""Type checking: every rule is compared with DuckDB's ``typeof()`` over Arrow tables.

Each test renders the expression with ``to_sql`` and asks DuckDB for ``typeof(...)`` over a
table holding one value of every vocabulary type, so the promotion tables below are DuckDB's,
not our memory of them. Error messages are checked for what they must name.
"""

from __future__ import annotations

import datetime as dt
import decimal as pydecimal
import itertools
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest

from platform_core.expr import (
    Aggregate,
    Binary,
    Call,
    Cast,
    Column,
    ExpressionError,
    Literal,
    col,
    lit,
    walk,
)
from platform_core.expr.checker import Checker, check, describe, node_types
from platform_core.expr.functions import (
    AGGREGATE_FUNCTIONS,
    OPERATORS,
    SCALAR_FUNCTIONS,
)
from platform_core.expr.parser import parse
from platform_core.expr.render import duckdb_type, to_sql
from platform_core.schema import Schema
from platform_core.types import FieldType, parse_type

NUMERIC = ("u8", "u16", "u32", "i32", "i64", "f32", "f64")

#: One value of each vocabulary type (the columns are named after their types).
TABLE = pa.table(
    {
        "u8": pa.array([7], pa.uint8()),
        "u16": pa.array([7], pa.uint16()),
        "u32": pa.array([7], pa.uint32()),
        "i32": pa.array([7], pa.int32()),
        "i64": pa.array([7], pa.int64()),
        "f32": pa.array([7.5], pa.float32()),
        "f64": pa.array([7.5], pa.float64()),
        "dec": pa.array([pydecimal.Decimal("7.50")], pa.decimal128(10, 2)),
        "b": pa.array([True]),
        "s": pa.array(["seven"]),
        "ref": pa.array(["seven"]).dictionary_encode(),
        "d": pa.array([dt.date(2024, 1, 5)]),
        "ts": pa.array([dt.datetime(2024, 1, 5, 12)], pa.timestamp("us")),
        "tz": pa.array([dt.datetime(2024, 1, 5, 12)], pa.timestamp("us", "Asia/Tokyo")),
    }
)
SCHEMA = Schema.from_arrow(TABLE.schema)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("t", TABLE)
    yield connection
    connection.close()


def _normal(name: str) -> str:
    return name.replace(" ", "").replace("TIMESTAMPWITHTIMEZONE", "TIMESTAMPTZ")


def duck_typeof(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    row = con.execute(f"SELECT typeof({sql}) FROM t").fetchone()
    assert row is not None
    return _normal(str(row[0]))


def ours(text: str) -> str:
    return _normal(duckdb_type(check(parse(text), SCHEMA)))


# --- promotion -------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["+", "-", "*", "%", "/"])
def test_numeric_promotion_matches_duckdb(con: duckdb.DuckDBPyConnection, op: str) -> None:
    for a, b in itertools.product(NUMERIC, repeat=2):
        text = f"{a} {op} {b}"
        assert ours(text) == duck_typeof(con, to_sql(parse(text))), text


@pytest.mark.parametrize("op", ["+", "*", "%"])
def test_bare_integer_literals_take_the_unsigned_type_they_fit(
    con: duckdb.DuckDBPyConnection, op: str
) -> None:
    """DuckDB types a bare integer literal by its context: u8 + 1 is u8, u8 + 300 is i32."""
    for column, value in itertools.product(("u8", "u16", "u32", "i32", "i64"), (1, 300, 70000)):
        for text in (f"{column} {op} {value}", f"{value} {op} {column}"):
            assert ours(text) == duck_typeof(con, to_sql(parse(text))), text
    assert check(parse("u8 + 1"), SCHEMA) == parse_type("u8")
    assert check(parse("u8 + CAST(1 AS INTEGER)"), SCHEMA) == parse_type("i32")


@pytest.mark.parametrize(
    "text",
    [
        "coalesce(u8, 1)",
        "coalesce(u8, 300)",
        "coalesce(u8, i32)",
        "coalesce(u32, i32)",
        "coalesce(f32, i64)",
        "greatest(u8, 1, 2)",
        "greatest(u8, 1, 300)",
        "least(i32, f64)",
        "CASE WHEN b THEN u8 ELSE 1 END",
        "CASE WHEN b THEN u16 ELSE i32 END",
        "nullif(u8, i32)",
        "nullif(1, u8)",
        "coalesce(d, ts)",
        "coalesce(s, ref)",
    ],
)
def test_common_types_match_duckdb(con: duckdb.DuckDBPyConnection, text: str) -> None:
    assert ours(text) == duck_typeof(con, to_sql(parse(text)))


@pytest.mark.parametrize(
    "text",
    [
        "abs(u8)",
        "abs(i32)",
        "abs(f32)",
        "round(u8)",
        "round(u32, -1)",
        "round(i32, 1)",
        "round(i64, -2)",
        "round(f32, 1)",
        "round(f64)",
        "floor(u8)",
        "floor(i64)",
        "ceil(f32)",
        "ceil(f64)",
        "length(s)",
        "lower(ref)",
        "substr(s, 2)",
        "trim(s)",
        "year(d)",
        "month(ts)",
        "day(tz)",
        "hour(d)",
        "-u8",
        "-i32",
        "-f32",
        "s || i32",
        "s || d",
        "i32 || b",
        "u8 / u8",
        "f32 / i64",
        "dec / i32",
        "dec > i64",
        "d < ts",
        "ts = tz",
        "s LIKE 'a%'",
        "i32 IN (1, 2.5e0)",
        "i32 BETWEEN u8 AND f32",
        "CAST(s AS DATE)",
        "CAST(f64 AS VARCHAR)",
        "CAST(dec AS DOUBLE)",
        "CAST(i64 AS DECIMAL(20, 2))",
    ],
)
def test_function_and_operator_types_match_duckdb(
    con: duckdb.DuckDBPyConnection, text: str
) -> None:
    assert ours(text) == duck_typeof(con, to_sql(parse(text)))


def test_division_always_gives_a_float() -> None:
    assert check(col("i32") / col("i32"), SCHEMA) == parse_type("f64")
    assert check(col("f32") / col("u8"), SCHEMA) == parse_type("f32")
    assert check(Binary("/", lit(None), lit(None)), SCHEMA) == parse_type("f64")


# --- aggregates ------------------------------------------------------------------------------

#: DuckDB's sum of integers is HUGEINT, which it exports to Arrow as decimal128(38, 0): we
#: report that Arrow type (the vocabulary has no 128-bit integer).
_SUM_DIFFERENCE = {"HUGEINT": "DECIMAL(38,0)"}


@pytest.mark.parametrize("name", ["count", "sum", "avg", "min", "max"])
@pytest.mark.parametrize("column", ["u8", "i32", "i64", "f32", "f64", "dec", "b", "s", "d", "ts"])
def test_aggregate_types_match_duckdb(
    con: duckdb.DuckDBPyConnection, name: str, column: str
) -> None:
    expr = Aggregate(name, col(column))
    try:
        theirs = duck_typeof(con, to_sql(expr))
    except duckdb.Error:
        with pytest.raises(ExpressionError, match=name):
            check(expr, SCHEMA, aggregates=True)
        return
    mine = _normal(duckdb_type(check(expr, SCHEMA, aggregates=True)))
    assert mine == _SUM_DIFFERENCE.get(theirs, theirs)


#: median and quantile_cont of decimals, dates and timestamps keep DuckDB's type only by
#: interpolating in it; the checker refuses them (with CAST advice) rather than guess.
_NOT_INTERPOLATED = {"dec", "d", "ts"}


@pytest.mark.parametrize(
    "template",
    [
        "stddev_samp({c})",
        "stddev({c})",
        "stddev_pop({c})",
        "var_samp({c})",
        "variance({c})",
        "var_pop({c})",
        "corr({c}, f64)",
        "corr(i32, {c})",
        "median({c})",
        "quantile_cont({c}, 0.25)",
        "quantile_disc({c}, 0.25)",
        "quantile({c}, 1)",
        "arg_min({c}, i32)",
        "arg_max(s, {c})",
        "arg_min({c}, NULL)",
    ],
)
@pytest.mark.parametrize(
    "column", ["u8", "i32", "i64", "f32", "f64", "dec", "b", "s", "d", "ts", "NULL"]
)
def test_statistical_aggregate_types_match_duckdb(
    con: duckdb.DuckDBPyConnection, template: str, column: str
) -> None:
    expr = parse(template.format(c=column))
    assert isinstance(expr, Aggregate)
    try:
        theirs = duck_typeof(con, to_sql(expr))
    except duckdb.Error:
        with pytest.raises(ExpressionError):
            check(expr, SCHEMA, aggregates=True)
        return
    if expr.name in ("median", "quantile_cont") and column in _NOT_INTERPOLATED:
        with pytest.raises(ExpressionError, match="CAST the argument to DOUBLE"):
            check(expr, SCHEMA, aggregates=True)
        return
    if expr.name == "median" and column in ("b", "s"):
        with pytest.raises(ExpressionError, match=r"use quantile_disc\(x, 0.5\)"):
            check(expr, SCHEMA, aggregates=True)
        return
    if theirs == '"NULL"':  # an untyped NULL result: the checker reports those as utf8
        assert Checker(SCHEMA, aggregates=True).raw_type(expr) is None
        return
    assert _normal(duckdb_type(check(expr, SCHEMA, aggregates=True))) == theirs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quantile_cont(i32, 1.5)", r"must lie in \[0, 1\], got 1.5"),
        ("quantile_disc(i32, -0.5)", "negative quantiles"),
        ("quantile_cont(i32, NULL)", "a number literal"),
        ("quantile_cont(i32, i32)", "a number literal"),
        ("quantile_disc(i32, '0.5')", "a number literal"),
        ("stddev(s)", "stddev_samp takes numbers"),
        ("corr(i32, b)", "corr takes numbers"),
    ],
)
def test_statistical_aggregates_refuse_bad_arguments(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        check(parse(text), SCHEMA, aggregates=True)


def test_statistical_aggregates_check_their_arity_and_distinct() -> None:
    with pytest.raises(ExpressionError, match="corr takes 2 arguments, got 1"):
        check(Aggregate("corr", col("i32")), SCHEMA, aggregates=True)
    with pytest.raises(ExpressionError, match="DISTINCT is not supported in median"):
        check(Aggregate("median", col("i32"), distinct=True), SCHEMA, aggregates=True)
    for text, error in [
        ("corr(i32)", r"corr takes 2 arguments \(corr\(y, x\)\), got 1"),
        ("median(i32, 0.5)", "median takes one argument, got 2"),
        ("stddev(DISTINCT i32)", "DISTINCT is only supported in count"),
        ("quantile(*)", r"quantile_disc\(\*\) is not allowed"),
    ]:
        with pytest.raises(ExpressionError, match=error):
            parse(text)


def test_count_star_and_distinct() -> None:
    assert check(Aggregate("count", None), SCHEMA, aggregates=True) == parse_type("i64")
    assert check(Aggregate("count", col("s"), distinct=True), SCHEMA, aggregates=True) == (
        parse_type("i64")
    )
    assert check(Aggregate("sum", col("i64"), distinct=True), SCHEMA, aggregates=True) == (
        parse_type("decimal(38, 0)")
    )
    with pytest.raises(ExpressionError, match="count"):
        check(Aggregate("sum", None), SCHEMA, aggregates=True)


def test_aggregates_outside_an_aggregation_are_refused() -> None:
    with pytest.raises(ExpressionError, match=r"aggregate sum\(i32\) is not allowed here"):
        check(Aggregate("sum", col("i32")) + 1, SCHEMA)


def test_nested_aggregates_are_refused() -> None:
    nested = Aggregate("sum", Aggregate("max", col("i32")))
    with pytest.raises(ExpressionError, match=r"cannot be nested: \"max\(i32\)\""):
        check(nested, SCHEMA, aggregates=True)


def test_aggregates_inside_expressions_are_fine_in_an_aggregation() -> None:
    expr = Aggregate("sum", col("f64")) / Aggregate("count", None)
    assert check(expr, SCHEMA, aggregates=True) == parse_type("f64")


# --- NULL ----------------------------------------------------------------------------------


def test_untyped_null_takes_its_context() -> None:
    assert check(lit(None), SCHEMA) == parse_type("utf8")  # NULL alone: reported as utf8
    assert check(col("u8") + lit(None), SCHEMA) == parse_type("u8")
    assert check(lit(None) + lit(None), SCHEMA) == parse_type("i64")  # DuckDB: BIGINT
    assert check(Call("coalesce", (lit(None), col("d"))), SCHEMA) == parse_type("date")
    assert check(col("s").concat(lit(None)), SCHEMA) == parse_type("utf8")
    assert check(lit(None).eq(lit(None)), SCHEMA) == parse_type("bool8")


def test_year_of_an_untyped_null_is_refused_as_in_duckdb() -> None:
    with pytest.raises(ExpressionError, match=r"year\(NULL\) has no argument type"):
        check(Call("year", (lit(None),)), SCHEMA)


# --- node types ----------------------------------------------------------------------------


def test_every_node_has_a_type() -> None:
    expr = parse("CASE WHEN i32 > 2 THEN f32 * 2 ELSE NULL END IS NULL OR s LIKE 'a%'")
    types = node_types(expr, SCHEMA)
    assert set(types) == {id(node) for node in walk(expr)}
    checker = Checker(SCHEMA)
    checker.check(expr)
    for node in walk(expr):
        assert checker.type_of(node) == types[id(node)]
    assert types[id(expr)] == parse_type("bool8")


def test_type_of_checks_an_unseen_node() -> None:
    checker = Checker(SCHEMA)
    assert checker.type_of(col("d")) == parse_type("date")
    assert checker.type_of(parse("i32 * 2.5e0")) == parse_type("f64")


def test_utf8_ref_columns_are_text() -> None:
    assert check(col("ref"), SCHEMA) == parse_type("utf8")
    assert check(parse("ref = s"), SCHEMA) == parse_type("bool8")


# --- errors --------------------------------------------------------------------------------


def test_unknown_column_is_named_with_a_suggestion() -> None:
    schema = Schema.from_arrow(pa.schema([("region", pa.string()), ("amount", pa.int64())]))
    with pytest.raises(ExpressionError) as info:
        check(parse("regoin = 'eu'"), schema)
    message = str(info.value)
    assert 'column "regoin" not found' in message
    assert 'did you mean "region"?' in message
    assert "amount" in message


def test_type_mismatch_names_both_types_and_the_operator() -> None:
    schema = Schema.from_arrow(pa.schema([("region", pa.string()), ("amount", pa.int64())]))
    with pytest.raises(ExpressionError) as info:
        check(parse("region > 5"), schema)
    assert str(info.value) == 'cannot compare utf8 with i32 in "region > 5"'
    with pytest.raises(ExpressionError, match=r"cannot apply \+ to utf8 and i64"):
        check(parse("region + amount"), schema)
    with pytest.raises(ExpressionError, match=r"AND takes booleans, got i64 and bool8"):
        check(parse("amount AND TRUE"), schema)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s > d", "cannot compare utf8 with date"),
        ("b = i32", "cannot compare bool8 with i32"),
        ("i32 IN ('a', 'b')", "cannot compare i32 with utf8"),
        ("i32 BETWEEN 'a' AND 3", "cannot compare i32 with utf8 and i32"),
        ("i32 LIKE 'a%'", "LIKE takes utf8, got i32"),
        ("s LIKE s", "pattern must be a string literal"),
        ("'a' LIKE 'a\\' ESCAPE '\\'", "must not end with the escape character"),
        ("NOT i32", "NOT takes booleans"),
        ("-s", "cannot negate utf8"),
        ("CASE WHEN i32 THEN 1 END", "CASE condition must be bool8, got i32"),
        ("CASE WHEN b THEN 1 ELSE 'x' END", "CASE branches must share a type"),
        ("coalesce(i32, s)", "coalesce arguments must share a type"),
        ("greatest(b, i32)", "greatest arguments must share a type"),
        ("lower(i32)", "lower: it takes utf8, got i32"),
        ("substr(s, i32)", "the start of substr must be an integer literal"),
        ("substr(s, 1, 2.5e0)", "the length of substr must be an integer literal"),
        ("substr(s, -4294967297)", "outside of the supported range"),
        ("round(f64, i32)", "the digits of round must be an integer literal"),
        (
            "CAST(dec AS DECIMAL(38, 20)) * CAST(dec AS DECIMAL(38, 20))",
            "needs scale 40, past the 38 digits of a decimal",
        ),
        ("year(s)", "takes a date or timestamp, got utf8"),
        ("CAST(f32 AS VARCHAR)", "CAST from f32 to utf8 is not supported"),
        ("f32 || 'x'", "CAST to f64 first"),
        ("CAST(s AS DECIMAL(10, 2))", "CAST from utf8 to decimal(10, 2) is not supported"),
        ("CAST(d AS INTEGER)", "CAST from date to i32 is not supported"),
        ("abs(s)", "abs: it takes a number, got utf8"),
    ],
)
def test_refusals_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(parse(text), SCHEMA)


def test_arity_is_checked() -> None:
    with pytest.raises(ExpressionError, match="length takes 1 argument, got 2"):
        check(Call("length", (col("s"), col("s"))), SCHEMA)
    with pytest.raises(ExpressionError, match="substr takes 2 to 3 arguments, got 1"):
        check(Call("substr", (col("s"),)), SCHEMA)
    with pytest.raises(ExpressionError, match="coalesce takes at least 1 argument"):
        check(Call("coalesce", ()), SCHEMA)


def test_unknown_function_lists_the_supported_ones() -> None:
    with pytest.raises(ExpressionError) as info:
        check(Call("sqrt", (col("f64"),)), SCHEMA)
    message = str(info.value)
    assert 'unknown function "sqrt"' in message
    for name in SCALAR_FUNCTIONS:
        assert name in message


def test_an_aggregate_name_used_as_a_function_is_refused() -> None:
    with pytest.raises(ExpressionError, match="sum is an aggregate"):
        check(Call("sum", (col("i32"),)), SCHEMA)


def test_literals_must_fit_their_type() -> None:
    with pytest.raises(ExpressionError, match="does not fit u8"):
        check(Literal(300, parse_type("u8")), SCHEMA)
    with pytest.raises(ExpressionError, match="is not a date value"):
        check(Literal("2024-01-01", parse_type("date")), SCHEMA)
    assert check(Literal(1, parse_type("decimal(5, 2)")), SCHEMA) == parse_type("decimal(5, 2)")


def test_deep_expressions_are_refused_cleanly() -> None:
    expr = col("i32")
    for _ in range(500):
        expr = expr + 1
    with pytest.raises(ExpressionError, match="nested more than"):
        check(expr, SCHEMA)


def test_describe_quotes_what_needs_quoting() -> None:
    assert describe(parse('"my col" + 1')) == '"my col" + 1'
    assert describe(parse("s = 'it''s'")) == "s = 'it''s'"
    assert describe(Cast(Column("x"), FieldType("i64"))) == "CAST(x AS i64)"


def test_registry_covers_the_language() -> None:
    from platform_core.expr.nodes import AGGREGATES, BINARY_OPS, FUNCTIONS, UNARY_OPS

    assert set(SCALAR_FUNCTIONS) == set(FUNCTIONS)
    assert set(AGGREGATE_FUNCTIONS) == set(AGGREGATES)
    assert set(OPERATORS) == set(BINARY_OPS) | set(UNARY_OPS)
