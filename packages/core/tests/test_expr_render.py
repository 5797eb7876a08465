"""Rendering to DuckDB SQL: exact text, pinned types, no injection, same meaning as the text.

DuckDB executes the rendered SQL in these tests, so "same value, same type" is checked against
the engine itself rather than against our idea of it.
"""

from __future__ import annotations

import datetime as dt
import decimal as pydecimal
import math
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from platform_core.expr import (
    Aggregate,
    Between,
    Binary,
    Call,
    Case,
    Cast,
    Column,
    Expr,
    ExpressionError,
    InList,
    IsNull,
    Like,
    Literal,
    Unary,
    col,
    lit,
    walk,
)
from platform_core.expr.nodes import BINARY_OPS
from platform_core.expr.parser import FUNCTION_ARITY, parse
from platform_core.expr.render import (
    default_name,
    duckdb_type,
    quote_identifier,
    quote_string,
    to_sql,
)
from platform_core.types import VOCABULARY, parse_type, timestamp


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def column_name(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    result = con.execute(sql)
    name = str(result.description[0][0])
    result.fetchall()
    return name


def one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    rows = con.execute(sql).fetchall()
    assert len(rows) == 1
    return rows[0][0]


# --- exact text ----------------------------------------------------------------------------

a, b = col("a"), col("b")

EXACT: list[tuple[Expr, str]] = [
    (a, '"a"'),
    (col('we"ird'), '"we""ird"'),
    (a + 1, '("a" + 1)'),
    ((a + 1) * b, '(("a" + 1) * "b")'),
    (a + (b * 2), '("a" + ("b" * 2))'),
    (a / b % 3, '(("a" / "b") % 3)'),
    (-a, '(- "a")'),
    (Unary("neg", lit(5)), "(- (5))"),
    (Unary("neg", lit(-5)), "(- (-5))"),
    (Unary("neg", lit(2**31)), "(- CAST(2147483648 AS BIGINT))"),
    (Unary("neg", lit(1.5)), "(- (1.5e0))"),
    (~a, '(NOT "a")'),
    (a.eq(1) & b.ne(2) | ~a, '((("a" = 1) AND ("b" <> 2)) OR (NOT "a"))'),
    (a.concat("x"), "(\"a\" || 'x')"),
    (a.is_null(), '("a" IS NULL)'),
    (a.is_not_null(), '("a" IS NOT NULL)'),
    (a.isin([1, 2]), '("a" IN (1, 2))'),
    (InList(a, (lit("x"),), negated=True), "(\"a\" NOT IN ('x'))"),
    (a.between(1, b), '("a" BETWEEN 1 AND "b")'),
    (Between(a, b & a, b, negated=True), '("a" NOT BETWEEN ("b" AND "a") AND "b")'),
    (a.like("x%"), "(\"a\" LIKE 'x%')"),
    (
        Like(a, lit("x"), "'", negated=True, case_insensitive=True),
        "(\"a\" NOT ILIKE 'x' ESCAPE '''')",
    ),
    (Case(((a, lit(1)),)), '(CASE WHEN "a" THEN 1 END)'),
    (Case(((a, lit(1)), (b, lit(2))), lit(3)), '(CASE WHEN "a" THEN 1 WHEN "b" THEN 2 ELSE 3 END)'),
    (a.cast("i64"), 'CAST("a" AS BIGINT)'),
    (a.cast("decimal(10, 2)"), 'CAST("a" AS DECIMAL(10, 2))'),
    (Call("substr", (a, lit(1), lit(2))), 'substr("a", 1, 2)'),
    (Call("ceil", (a,)), 'ceil("a")'),
    (Call("coalesce", (a, b, lit(0))), 'coalesce("a", "b", 0)'),
    (Aggregate("count", None), "count(*)"),
    (Aggregate("count", a, distinct=True), 'count(DISTINCT "a")'),
    (Aggregate("sum", a + 1), 'sum(("a" + 1))'),
    # literals, typed as the AST types them
    (lit(1), "1"),
    (lit(-1), "(-1)"),
    (lit(2**31), "2147483648"),
    (lit(5, "i64"), "CAST(5 AS BIGINT)"),
    (lit(1.5), "1.5e0"),
    (lit(-0.0), "(-0.0e0)"),
    (lit(1e16), "1e+16"),
    (lit(math.nan), "CAST('nan' AS DOUBLE)"),
    (lit(-math.inf), "CAST('-inf' AS DOUBLE)"),
    (lit(2, "f64"), "CAST(2 AS DOUBLE)"),
    (lit(1.5, "f32"), "CAST(1.5e0 AS FLOAT)"),
    (lit(7, "u8"), "CAST(7 AS UTINYINT)"),
    (lit(True), "TRUE"),
    (lit(False), "FALSE"),
    (lit(None), "NULL"),
    (lit(None, "i32"), "CAST(NULL AS INTEGER)"),
    (lit("it's"), "'it''s'"),
    (lit("x", "utf8_ref"), "'x'"),
    (lit("{}", "json"), "CAST('{}' AS JSON)"),
    (lit("a'\\", "bytes"), "from_hex('61275c')"),
    (lit(dt.date(2024, 2, 29)), "DATE '2024-02-29'"),
    (lit(dt.datetime(2024, 1, 2, 3, 4, 5)), "TIMESTAMP '2024-01-02 03:04:05.000000'"),
    (
        lit(dt.datetime(2024, 1, 2, 3, 4, 5, 6), "timestamp[us, UTC]"),
        "CAST('2024-01-02 03:04:05.000006+00:00' AS TIMESTAMPTZ)",
    ),
    (lit("12.50", "decimal(4, 2)"), "CAST('12.50' AS DECIMAL(4, 2))"),
]


@pytest.mark.parametrize(("expr", "sql"), EXACT, ids=[s for _, s in EXACT])
def test_exact_sql(expr: Expr, sql: str) -> None:
    assert to_sql(expr) == sql


def test_every_node_kind_is_rendered_above() -> None:
    kinds = {type(node) for e, _ in EXACT for node in walk(e)}
    assert kinds == {
        Literal, Column, Unary, Binary, IsNull, InList, Between, Like, Case, Cast, Call, Aggregate
    }  # fmt: skip


# --- types ---------------------------------------------------------------------------------

DUCKDB_TYPEOF = {
    "u8": "UTINYINT",
    "u16": "USMALLINT",
    "u32": "UINTEGER",
    "i32": "INTEGER",
    "i64": "BIGINT",
    "f32": "FLOAT",
    "f64": "DOUBLE",
    "bool8": "BOOLEAN",
    "utf8": "VARCHAR",
    "utf8_ref": "VARCHAR",
    "json": "JSON",
    "bytes": "BLOB",
    "i32_array": "INTEGER[]",
    "f32_array": "FLOAT[]",
    "date": "DATE",
    "timestamp[us]": "TIMESTAMP",
    "timestamp[us, UTC]": "TIMESTAMP WITH TIME ZONE",
    "timestamp[us, Europe/Paris]": "TIMESTAMP WITH TIME ZONE",
    "decimal(10, 2)": "DECIMAL(10,2)",
    "decimal(38, 0)": "DECIMAL(38,0)",
}


def test_every_vocabulary_type_has_a_duckdb_type(con: duckdb.DuckDBPyConnection) -> None:
    assert {parse_type(t).kind for t in DUCKDB_TYPEOF} == set(VOCABULARY)
    for name, typeof in DUCKDB_TYPEOF.items():
        sql = to_sql(Cast(lit(None), parse_type(name)))
        assert one(con, f"SELECT typeof({sql})") == typeof, name
        assert duckdb_type(parse_type(name)) in sql


LITERALS: list[tuple[Expr, str, Any]] = [
    # (literal, DuckDB's typeof of the rendered SQL, the value DuckDB returns)
    (lit(0), "INTEGER", 0),
    (lit(2**31 - 1), "INTEGER", 2**31 - 1),
    (lit(-(2**31)), "INTEGER", -(2**31)),
    (lit(2**31), "BIGINT", 2**31),
    (lit(-(2**31) - 1), "BIGINT", -(2**31) - 1),
    (lit(2**63 - 1), "BIGINT", 2**63 - 1),
    (lit(-(2**63)), "BIGINT", -(2**63)),
    (lit(5, "i64"), "BIGINT", 5),
    (lit(255, "u8"), "UTINYINT", 255),
    (lit(65535, "u16"), "USMALLINT", 65535),
    (lit(2**32 - 1, "u32"), "UINTEGER", 2**32 - 1),
    (lit(1.5), "DOUBLE", 1.5),
    (lit(0.1), "DOUBLE", 0.1),
    (lit(-2.5), "DOUBLE", -2.5),
    (lit(5e-324), "DOUBLE", 5e-324),
    (lit(1.7976931348623157e308), "DOUBLE", 1.7976931348623157e308),
    (lit(1 / 3), "DOUBLE", 1 / 3),
    (lit(math.inf), "DOUBLE", math.inf),
    (lit(-math.inf), "DOUBLE", -math.inf),
    (lit(0.1, "f32"), "FLOAT", 0.10000000149011612),
    (lit(True), "BOOLEAN", True),
    (lit(None), '"NULL"', None),
    (lit(None, "date"), "DATE", None),
    (lit("x"), "VARCHAR", "x"),
    (lit("x", "utf8_ref"), "VARCHAR", "x"),
    (lit('{"a": 1}', "json"), "JSON", '{"a": 1}'),
    (lit("a\x00\\x41", "bytes"), "BLOB", b"a\x00\\x41"),
    (lit(dt.date(1, 1, 1)), "DATE", dt.date(1, 1, 1)),
    (lit(dt.date(9999, 12, 31)), "DATE", dt.date(9999, 12, 31)),
    (
        lit(dt.datetime(2024, 2, 29, 23, 59, 59, 999999)),
        "TIMESTAMP",
        dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
    ),
    (lit(dt.datetime(1, 1, 1)), "TIMESTAMP", dt.datetime(1, 1, 1)),
    (lit("12.50", "decimal(4, 2)"), "DECIMAL(4,2)", pydecimal.Decimal("12.50")),
    (lit(12, "decimal(4, 2)"), "DECIMAL(4,2)", pydecimal.Decimal("12.00")),
]


@pytest.mark.parametrize(
    ("expr", "typeof", "value"), LITERALS, ids=[to_sql(e) for e, _, _ in LITERALS]
)
def test_literals_keep_their_type_and_value_in_duckdb(
    con: duckdb.DuckDBPyConnection, expr: Expr, typeof: str, value: Any
) -> None:
    sql = to_sql(expr)
    assert one(con, f"SELECT typeof({sql})") == typeof
    got = one(con, f"SELECT {sql}")
    assert got == value
    assert type(got) is type(value)


def test_special_floats_in_duckdb(con: duckdb.DuckDBPyConnection) -> None:
    assert math.isnan(one(con, f"SELECT {to_sql(lit(math.nan))}"))
    assert math.copysign(1.0, one(con, f"SELECT {to_sql(lit(-0.0))}")) == -1.0
    utc = to_sql(lit(dt.datetime(2024, 1, 2, 3, 4, 5), "timestamp[us, UTC]"))
    con.execute("SET TimeZone = 'America/New_York'")
    try:  # the instant is UTC whatever the session's zone
        assert one(con, f"SELECT epoch_us({utc})") == 1704164645000000
    finally:
        con.execute("SET TimeZone = 'UTC'")


# --- no injection ----------------------------------------------------------------------------

NASTY = [
    'a"b',
    '"',
    '""',
    "'",
    "x'); DROP TABLE t; --",
    'x"); DROP TABLE t; --',
    "-- comment",
    "/* comment",
    "semi;colon",
    "new\nline",
    "tab\tand\rreturn",
    "back\\slash\\",
    "\\'",
    "$1",
    "?",
    "é 😀 \u202e",
    " ",
    "SELECT",
]


def test_names_and_strings_cannot_inject(con: duckdb.DuckDBPyConnection) -> None:
    table = pa.table({name: [f"value of {name}"] for name in NASTY})
    con.register("t", table)
    try:
        for name in NASTY:
            assert one(con, f"SELECT {to_sql(col(name))} FROM t") == f"value of {name}"
            assert one(con, f"SELECT {to_sql(lit(name))}") == name
            assert one(con, f"SELECT {to_sql(col(name).eq(lit(f'value of {name}')))} FROM t")
            assert one(con, f"SELECT {to_sql(col(name).like(name, escape='!'))} FROM t") is False
        nul = "nul\x00byte"  # fine in a string; refused in a name (see below)
        assert one(con, f"SELECT {to_sql(lit(nul))}") == nul
        assert one(con, "SELECT count(*) FROM t") == 1  # still there
        quote_escape = Like(lit("a%"), lit("a'%"), escape="'")  # the escape character is quoted too
        assert one(con, f"SELECT {to_sql(quote_escape)}") is True
    finally:
        con.unregister("t")


def test_quoting_helpers() -> None:
    assert quote_identifier('a"b') == '"a""b"'
    assert quote_string("it's") == "'it''s'"
    with pytest.raises(ExpressionError, match="non-empty"):
        quote_identifier("")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (Call("lower); DROP TABLE t; --", (col("a"),)), "unknown function"),
        (Aggregate("sum(1)) --", col("a")), "unknown aggregate"),
        (Aggregate("sum", None), "only count has no argument"),
        (Binary("; DROP", col("a"), col("b")), "unknown binary operator"),  # type: ignore[arg-type]
        (Unary("--", col("a")), "unknown unary operator"),  # type: ignore[arg-type]
        (Like(col("a"), lit("x"), escape="ab"), "one character"),
        (InList(col("a"), ()), "IN needs at least one value"),
        (Case(()), "CASE needs at least one WHEN"),
        (Column(""), "non-empty string"),
        (Column("a\x00b"), "NUL character"),
        (Literal(1, None), "without a type must be NULL"),
        (Literal(2**64, parse_type("decimal(38, 0)")), "does not fit in 64 bits"),
        (Literal(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), timestamp("UTC")), "naive"),
    ],
)
def test_malformed_nodes_are_refused(expr: Expr, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        to_sql(expr)


def test_depth_is_limited() -> None:
    deep: Expr = col("a")
    for _ in range(300):
        deep = ~deep
    with pytest.raises(ExpressionError, match="at most 200"):
        to_sql(deep)


# --- same meaning as DuckDB reading the text itself -----------------------------------------

SAME_AS_DUCKDB = [
    "1 + 2 * 3",
    "(1 + 2) * 3",
    "2 - 3 - 4",
    "7 / 2",
    "-7 % 3",
    "2 % 3 * 4",
    "-2 * 3",
    "2 * -3",
    "- -1",
    "-2::INTEGER",
    "-2147483648",
    "-9223372036854775808",
    "2147483648",
    "1e3",
    "1e3::INTEGER",
    "-1.5e0",
    "'a' || 1 + 2",
    "'a' || 'b' LIKE 'ab'",
    "1 = 1 AND 2 = 3 OR TRUE",
    "TRUE OR FALSE AND FALSE",
    "NOT 1 = 2",
    "NOT TRUE AND FALSE",
    "TRUE = NOT FALSE",
    "1 = 1 IS NULL",
    "1 IS NULL = FALSE",
    "NOT NULL IS NULL",
    "'x' IS NOT NULL IS NULL",
    "2 BETWEEN 1 AND 3 = TRUE",
    "TRUE = 2 BETWEEN 1 AND 3",
    "1 + 1 BETWEEN 1 AND 2 + 3",
    "5 NOT BETWEEN 1 AND 3",
    "NOT 2 BETWEEN 1 AND 3",
    "'ab' NOT LIKE 'a%' ESCAPE '!'",
    "'a%' LIKE 'a!%' ESCAPE '!'",
    "'AB' ILIKE 'a_'",
    "'AB' NOT ILIKE 'a%'",
    "1 IN (1, 2) = TRUE",
    "1 NOT IN (2, 3)",
    "NULL IN (1)",
    "1 IN (1) IN (TRUE)",
    "1 == 1",
    "1 != 2",
    "1 <> 1",
    "2 >= 2 AND 2 <= 2 AND 1 < 2 AND 2 > 1",
    "CASE WHEN 1 > 2 THEN 'x' ELSE 'y' END",
    "CASE WHEN 1 > 2 THEN 'x' END",
    "CASE 2 WHEN 1 THEN 'a' WHEN 2 THEN 'b' END",
    "CAST('12' AS INTEGER) + 1",
    "'12'::BIGINT * 2",
    "CAST(1 AS DOUBLE) / 3",
    "CAST('2024-01-01' AS DATE)",
    "CAST(3 AS DECIMAL(10, 2))",
    "CAST(7 AS UTINYINT)",
    "lower('ABC') || upper('x')",
    "length('héllo')",
    "substr('hello', 2, 3)",
    "substring('hello', 2)",
    "trim('  x ')",
    "abs(-5)",
    "round(2.5e0)",
    "round(-2.5e0)",
    "round(1.2345e0, 2)",
    "floor(-1.5e0)",
    "ceil(1.2e0)",
    "ceiling(-1.2e0)",
    "coalesce(NULL, 2, 3)",
    "nullif(1, 1)",
    "greatest(1, 5, 3)",
    "least('b', 'a')",
    "year(DATE '2024-02-29')",
    "month(TIMESTAMP '2024-02-29 10:11:12')",
    "day(DATE '2024-02-29')",
    "hour(TIMESTAMP '2024-02-29 10:11:12.5')",
    "TIMESTAMP '2024-01-01 10:00:00' > TIMESTAMP '2024-01-01'",
    "'x' || NULL",
    "'it''s' || '\"'",
]


@pytest.mark.parametrize("text", SAME_AS_DUCKDB)
def test_rendered_sql_means_what_duckdb_reads_in_the_text(
    con: duckdb.DuckDBPyConnection, text: str
) -> None:
    """Our parse (precedence, literal types) agrees with DuckDB's reading of the same text."""
    sql = to_sql(parse(text))
    assert one(con, f"SELECT {sql}") == one(con, f"SELECT {text}")
    assert one(con, f"SELECT typeof({sql})") == one(con, f"SELECT typeof({text})")


AGGREGATE_TEXTS = [
    "count(*)",
    "count(x)",
    "count(DISTINCT x)",
    "sum(x)",
    "avg(x)",
    "min(x) + max(x)",
    "sum(x) / count(*)",
    "max(lower(s))",
    "count(DISTINCT s || 'x')",
]


@pytest.mark.parametrize("text", AGGREGATE_TEXTS)
def test_aggregates_render_to_the_same_result(con: duckdb.DuckDBPyConnection, text: str) -> None:
    con.register("agg", pa.table({"x": [1, 2, 2, None], "s": ["B", "a", None, "b"]}))
    try:
        sql = to_sql(parse(text))
        assert one(con, f"SELECT {sql} FROM agg") == one(con, f"SELECT {text} FROM agg")
    finally:
        con.unregister("agg")


# --- parse(to_sql(e)) == e ----------------------------------------------------------------------


def _literals() -> st.SearchStrategy[Expr]:
    """Literals whose rendering reads back as the same literal (see NOT_ROUND_TRIPS)."""
    i32 = st.integers(-(2**31), 2**31 - 1)
    i64 = st.integers(-(2**63), 2**63 - 1).filter(lambda v: not -(2**31) <= v < 2**31)
    return st.one_of(
        i32.map(lit),
        i64.map(lit),
        st.floats(allow_nan=False, allow_infinity=False).map(lit),
        st.text(max_size=6).map(lit),
        st.booleans().map(lit),
        st.just(lit(None)),
        st.dates().map(lit),
        st.datetimes().map(lit),
    )


_CAST_TYPES = [
    parse_type(t) for t in DUCKDB_TYPEOF if t not in ("utf8_ref", "timestamp[us, Europe/Paris]")
]


def _branches(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    def calls(name: str) -> st.SearchStrategy[Expr]:
        low, high = FUNCTION_ARITY[name]
        args = st.lists(children, min_size=low, max_size=high or low + 2).map(tuple)
        return args.map(lambda xs: Call(name, xs))

    return st.one_of(
        st.builds(Unary, st.sampled_from(["neg", "not"]), children),
        st.builds(Binary, st.sampled_from(BINARY_OPS), children, children),
        st.builds(IsNull, children, st.booleans()),
        st.builds(
            InList, children, st.lists(children, min_size=1, max_size=3).map(tuple), st.booleans()
        ),
        st.builds(Between, children, children, children, st.booleans()),
        st.builds(
            Like, children, children, st.none() | st.characters(), st.booleans(), st.booleans()
        ),
        st.builds(
            Case,
            st.lists(st.tuples(children, children), min_size=1, max_size=2).map(tuple),
            st.none() | children,
        ),
        st.builds(Cast, children, st.sampled_from(_CAST_TYPES)),
        st.sampled_from(sorted(FUNCTION_ARITY)).flatmap(calls),
        st.builds(Aggregate, st.sampled_from(["count", "sum", "avg", "min", "max"]), children),
        st.builds(Aggregate, st.just("count"), children, st.just(True)),
        st.just(Aggregate("count", None)),
    )


round_trippable = st.recursive(
    _literals()
    | st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=6).map(Column),
    _branches,
    max_leaves=10,
)


def _pinned_negation(expr: Expr) -> bool:
    """-(literal) whose negated value DuckDB would type differently: rendered with a CAST."""
    for node in walk(expr):
        if isinstance(node, Unary) and node.op == "neg" and isinstance(node.operand, Literal):
            value = node.operand.value
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            try:
                negated = lit(-value).type
            except ExpressionError:  # -(-2**63) fits no BIGINT: rendered with a CAST too
                return True
            if negated != node.operand.type:
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(round_trippable)
def test_parse_reads_back_what_to_sql_writes(expr: Expr) -> None:
    assume(not _pinned_negation(expr))
    assert parse(to_sql(expr)) == expr


NOT_ROUND_TRIPS: list[tuple[Expr, Expr]] = [
    # (expression, what parse(to_sql(expression)) gives): same value and type, other nodes
    (lit(5, "i64"), Cast(lit(5), parse_type("i64"))),
    (lit(None, "i32"), Cast(lit(None), parse_type("i32"))),
    (lit(math.inf), Cast(lit("inf"), parse_type("f64"))),
    (lit(1.5, "f32"), Cast(lit(1.5), parse_type("f32"))),
    (lit("x", "utf8_ref"), lit("x")),
    (col("a").cast("utf8_ref"), col("a").cast("utf8")),
    (col("a").cast("timestamp[us, Europe/Paris]"), col("a").cast("timestamp[us, UTC]")),
    (Unary("neg", lit(2**31)), Unary("neg", Cast(lit(2**31), parse_type("i64")))),
    (Case(((col("a").eq(1), lit(2)),)), Case(((col("a").eq(1), lit(2)),))),  # (this one does)
]


@pytest.mark.parametrize(
    ("expr", "back"), NOT_ROUND_TRIPS, ids=[to_sql(e) for e, _ in NOT_ROUND_TRIPS]
)
def test_documented_cases_that_read_back_differently(expr: Expr, back: Expr) -> None:
    assert parse(to_sql(expr)) == back


# --- default names ---------------------------------------------------------------------------

NAMES = [
    "x",
    "Sel",
    "_x1",
    "date",
    "count",
    "year",
    "name",
    "select",
    "1x",
    "é",
    "a b",
    'a"b',
    "left",
    "value",
]


def test_default_names_match_duckdb(con: duckdb.DuckDBPyConnection) -> None:
    con.register("names", pa.table({name: pa.array([1], pa.int32()) for name in NAMES}))
    try:
        for name in NAMES:
            exprs: list[Expr] = [
                col(name),
                Aggregate("sum", col(name)),
                Aggregate("count", col(name), distinct=True),
                Aggregate("max", col(name)),
            ]
            for expr in exprs:
                assert default_name(expr) == column_name(con, f"SELECT {to_sql(expr)} FROM names")
        assert column_name(con, "SELECT count(*) FROM names") == "count_star()"
        assert default_name(Aggregate("count", None)) == "count_star()"
    finally:
        con.unregister("names")


def test_other_default_names_are_the_rendered_sql() -> None:
    assert default_name(col("a") + 1) == '("a" + 1)'
    assert default_name(Aggregate("sum", col("a") + 1)) == 'sum(("a" + 1))'
    assert default_name(lit("x")) == "'x'"


def test_keyword_list_matches_duckdb(con: duckdb.DuckDBPyConnection) -> None:
    """The renderer's and parser's copies of DuckDB's keywords match the installed DuckDB."""
    from platform_core.expr import parser, render

    rows = con.execute("SELECT keyword_name, keyword_category FROM duckdb_keywords()").fetchall()
    assert {k for k, _ in rows} == render._DUCKDB_KEYWORDS
    assert {k for k, c in rows if c in ("reserved", "type_function")} | {
        "between"
    } == parser._RESERVED


def test_negating_the_smallest_bigint_is_pinned_not_a_crash_of_the_check() -> None:
    """-(-2**63) fits no BIGINT: to_sql pins it with a CAST (it does not read back as itself),
    and the round-trip test's filter says so instead of raising (CI's hypothesis run drew it)."""
    expr = Unary("neg", lit(-(2**63)))
    assert _pinned_negation(expr)
    assert parse(to_sql(expr)) == Unary("neg", Cast(lit(-(2**63)), parse_type("i64")))
