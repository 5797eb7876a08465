"""Parsing expression text: every construct to its AST, DuckDB's precedence, errors with carets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_core.errors import BadInputError, PlatformError
from platform_core.expr import (
    AGGREGATES,
    FUNCTIONS,
    Aggregate,
    Between,
    Call,
    Case,
    Cast,
    Expr,
    ExpressionError,
    InList,
    Like,
    Literal,
    Unary,
    col,
    lit,
    walk,
)
from platform_core.expr.parser import (
    FUNCTION_ARITY,
    MAX_TEXT_LENGTH,
    parse,
    parse_cast_type,
)
from platform_core.expr.serde import MAX_DEPTH
from platform_core.types import (
    BOOL8,
    BYTES,
    DATE,
    F32,
    F32_ARRAY,
    F64,
    I32,
    I32_ARRAY,
    I64,
    JSON,
    U8,
    U16,
    U32,
    UTF8,
    FieldType,
    decimal,
    parse_type,
    timestamp,
)

a, b, c, x = col("a"), col("b"), col("c"), col("x")


def call(name: str, *args: object) -> Call:
    return Call(name, tuple(arg if isinstance(arg, Expr) else lit(arg) for arg in args))


# --- every construct ---------------------------------------------------------------------

CONSTRUCTS: list[tuple[str, Expr]] = [
    # literals
    ("1", lit(1)),
    ("2147483647", Literal(2147483647, I32)),
    ("2147483648", Literal(2147483648, I64)),
    ("-2147483648", Literal(-2147483648, I32)),
    ("-2147483649", Literal(-2147483649, I64)),
    ("9223372036854775807", Literal(2**63 - 1, I64)),
    ("-9223372036854775808", Literal(-(2**63), I64)),
    ("007", lit(7)),
    ("1_000", lit(1000)),
    ("1.5", Literal(1.5, F64)),
    ("1e3", Literal(1000.0, F64)),
    ("1E-3", Literal(0.001, F64)),
    ("1.", Literal(1.0, F64)),
    (".5", Literal(0.5, F64)),
    ("-.5", Literal(-0.5, F64)),
    ("-1.5e2", Literal(-150.0, F64)),
    ("'it''s'", lit("it's")),
    ("''", lit("")),
    ("'back\\slash'", lit("back\\slash")),
    ("'two\nlines'", lit("two\nlines")),
    ("'nul\x00byte'", lit("nul\x00byte")),
    ("TRUE", lit(True)),
    ("false", lit(False)),
    ("NULL", Literal(None, None)),
    ("DATE '2024-02-29'", lit(dt.date(2024, 2, 29))),
    ("date '0001-01-01'", lit(dt.date(1, 1, 1))),
    ("TIMESTAMP '2024-01-02 03:04:05'", lit(dt.datetime(2024, 1, 2, 3, 4, 5))),
    ("TIMESTAMP '2024-01-02T03:04:05.5'", lit(dt.datetime(2024, 1, 2, 3, 4, 5, 500000))),
    ("TIMESTAMP '2024-01-02 03:04:05.123456'", lit(dt.datetime(2024, 1, 2, 3, 4, 5, 123456))),
    ("TIMESTAMP '2024-01-02'", lit(dt.datetime(2024, 1, 2))),
    ("TIMESTAMP '2024-01-02 03:04'", lit(dt.datetime(2024, 1, 2, 3, 4))),
    # column references: unquoted names keep their case; quoted ones hold anything
    ("amount", col("amount")),
    ("Amount", col("Amount")),
    ("_x1", col("_x1")),
    ("café", col("café")),
    ('"Weird ""name"""', col('Weird "name"')),
    ('"select"', col("select")),
    ('"a.b"', col("a.b")),
    ('"x\'); drop table t; --"', col("x'); drop table t; --")),
    ('"new\nline"', col("new\nline")),
    ("date", col("date")),
    ("year", col("year")),
    ("count", col("count")),
    ("escape", col("escape")),
    # arithmetic, comparison, logic
    ("a + 1", a + 1),
    ("a - b", a - b),
    ("a * b", a * b),
    ("a / b", a / b),
    ("a % b", a % b),
    ("-a", -a),
    ("- -1", Unary("neg", lit(-1))),
    ("-(1)", Unary("neg", lit(1))),
    ("-2::INTEGER", Unary("neg", Cast(lit(2), I32))),
    ("a = 1", a.eq(1)),
    ("a == 1", a.eq(1)),
    ("a <> 1", a.ne(1)),
    ("a != 1", a.ne(1)),
    ("a < 1", a < 1),
    ("a <= 1", a <= 1),
    ("a > 1", a > 1),
    ("a >= 1", a >= 1),
    ("a AND b", a & b),
    ("a or b", a | b),
    ("NOT a", ~a),
    ("not not a", ~~a),
    ("a || 'x'", a.concat("x")),
    # predicates
    ("a IS NULL", a.is_null()),
    ("a IS NOT NULL", a.is_not_null()),
    ("a IN (1, 2)", a.isin([1, 2])),
    ("a NOT IN ('x')", InList(a, (lit("x"),), negated=True)),
    ("a BETWEEN 1 AND 2", a.between(1, 2)),
    ("a NOT BETWEEN b AND c", Between(a, b, c, negated=True)),
    ("a LIKE 'x%'", a.like("x%")),
    ("a NOT LIKE 'x%'", Like(a, lit("x%"), negated=True)),
    ("a ILIKE 'x%'", a.ilike("x%")),
    ("a NOT ILIKE 'x%'", Like(a, lit("x%"), negated=True, case_insensitive=True)),
    ("a LIKE 'x!%' ESCAPE '!'", a.like("x!%", escape="!")),
    ("a NOT ILIKE b ESCAPE ''''", Like(a, b, "'", negated=True, case_insensitive=True)),
    # CASE
    ("CASE WHEN a THEN 1 END", Case(((a, lit(1)),))),
    (
        "CASE WHEN a > 1 THEN 'x' WHEN b THEN 'y' ELSE 'z' END",
        Case(((a > 1, lit("x")), (b, lit("y"))), lit("z")),
    ),
    (
        "CASE a WHEN 1 THEN 'x' WHEN 2 THEN 'y' ELSE 'z' END",
        Case(((a.eq(1), lit("x")), (a.eq(2), lit("y"))), lit("z")),
    ),
    # CAST
    ("CAST(a AS INTEGER)", Cast(a, I32)),
    ("a::BIGINT", Cast(a, I64)),
    ("a::i64", Cast(a, I64)),
    ("CAST(a AS utf8)", Cast(a, UTF8)),
    ("CAST(a AS DECIMAL(10, 2))", Cast(a, decimal(10, 2))),
    ("a::numeric(5)", Cast(a, decimal(5, 0))),
    ("a::DECIMAL", Cast(a, decimal(18, 3))),
    ("a::decimal(38, 10)", Cast(a, decimal(38, 10))),
    ("a::TIMESTAMPTZ", Cast(a, timestamp("UTC"))),
    ("a::timestamp[us, Europe/Paris]", Cast(a, timestamp("Europe/Paris"))),
    ("a::INTEGER[] ", Cast(a, I32_ARRAY)),
    ("CAST(a AS DOUBLE PRECISION)", Cast(a, F64)),
    ("CAST(a AS TIMESTAMP WITH TIME ZONE)", Cast(a, timestamp("UTC"))),
    ("a::int::varchar", Cast(Cast(a, I32), UTF8)),
    ("'1'::INT + 1", Cast(lit("1"), I32) + 1),
    # functions (names are case-insensitive; aliases become the canonical name)
    ("lower(a)", call("lower", a)),
    ("UPPER(a)", call("upper", a)),
    ("length(a)", call("length", a)),
    ("substr(a, 2)", call("substr", a, 2)),
    ("substring(a, 2, 3)", call("substr", a, 2, 3)),
    ("trim(a)", call("trim", a)),
    ("abs(a)", call("abs", a)),
    ("round(a)", call("round", a)),
    ("round(a, 2)", call("round", a, 2)),
    ("floor(a)", call("floor", a)),
    ("pow(a, 2)", call("pow", a, lit(2))),
    ("POWER(a, b)", call("power", a, b)),
    ("ceil(a)", call("ceil", a)),
    ("ceiling(a)", call("ceil", a)),
    ("coalesce(a)", call("coalesce", a)),
    ("coalesce(a, b, 0)", call("coalesce", a, b, 0)),
    ("nullif(a, 0)", call("nullif", a, 0)),
    ("greatest(a, b, c)", call("greatest", a, b, c)),
    ("least(a, 1)", call("least", a, 1)),
    ("year(a)", call("year", a)),
    ("month(a)", call("month", a)),
    ("day(a)", call("day", a)),
    ("hour(a)", call("hour", a)),
    ("lower(upper(trim(a)))", call("lower", call("upper", call("trim", a)))),
    # aggregates
    ("count(*)", Aggregate("count", None)),
    ("COUNT(x)", Aggregate("count", x)),
    ("count(DISTINCT x)", Aggregate("count", x, distinct=True)),
    ("sum(x)", Aggregate("sum", x)),
    ("avg(x * 2)", Aggregate("avg", x * 2)),
    ("min(x)", Aggregate("min", x)),
    ("max(x)", Aggregate("max", x)),
    ("sum(x) / count(*)", Aggregate("sum", x) / Aggregate("count", None)),
    # statistical aggregates; aliases become the canonical (DuckDB) name
    ("stddev_samp(x)", Aggregate("stddev_samp", x)),
    ("STDDEV(x)", Aggregate("stddev_samp", x)),
    ("stddev_pop(x + 1)", Aggregate("stddev_pop", x + 1)),
    ("var_samp(x)", Aggregate("var_samp", x)),
    ("variance(x)", Aggregate("var_samp", x)),
    ("var_pop(x)", Aggregate("var_pop", x)),
    ("corr(a, x)", Aggregate("corr", a, extra_args=(x,))),
    ("median(x)", Aggregate("median", x)),
    ("quantile_cont(x, 0.25)", Aggregate("quantile_cont", x, extra_args=(lit(0.25),))),
    ("quantile_disc(x, 1)", Aggregate("quantile_disc", x, extra_args=(lit(1),))),
    ("quantile(x, 0.5)", Aggregate("quantile_disc", x, extra_args=(lit(0.5),))),
    ("arg_min(a, x)", Aggregate("arg_min", a, extra_args=(x,))),
    ("ARG_MAX(a, x * 2)", Aggregate("arg_max", a, extra_args=(x * 2,))),
    # whitespace and comments are ignored
    ("  a\n+\t1  ", a + 1),
    ("a + 1 -- trailing comment", a + 1),
    ("a /* inline */ + 1", a + 1),
]


@pytest.mark.parametrize(("text", "expected"), CONSTRUCTS, ids=[t for t, _ in CONSTRUCTS])
def test_parse_builds_the_expected_ast(text: str, expected: Expr) -> None:
    assert parse(text) == expected


def test_every_function_and_aggregate_is_covered_above() -> None:
    seen = {node.name for _, e in CONSTRUCTS for node in walk(e) if isinstance(node, Call)}
    assert seen == set(FUNCTIONS)
    seen = {node.name for _, e in CONSTRUCTS for node in walk(e) if isinstance(node, Aggregate)}
    assert seen == set(AGGREGATES)


def test_literal_types_are_exact() -> None:
    """Equal values of different types are different literals: check the types themselves."""
    assert literal("-2147483648").type == I32
    assert literal("2147483648").type == I64
    assert literal("1").type == I32
    assert literal("1.0").type == F64
    value = literal("-0.0").value
    assert isinstance(value, float)
    assert math.copysign(1.0, value) == -1.0
    assert parse("1e400") == Literal(math.inf, F64)  # DuckDB reads it as infinity too


def literal(text: str) -> Literal:
    expr = parse(text)
    assert isinstance(expr, Literal)
    return expr


# --- precedence (DuckDB's, i.e. PostgreSQL's) ---------------------------------------------

PRECEDENCE: list[tuple[str, Expr]] = [
    ("a + b * c", a + b * c),
    ("a * b + c", a * b + c),
    ("a - b - c", (a - b) - c),
    ("a / b % c", (a / b) % c),
    ("-a * b", (-a) * b),
    ("-a::INTEGER", -Cast(a, I32)),
    ("a || b + c", a.concat(b + c)),
    ("a || b = c", a.concat(b).eq(c)),
    ("a = b AND c", a.eq(b) & c),
    ("a OR b AND c", a | (b & c)),
    ("NOT a AND b", (~a) & b),
    ("NOT a = b", ~a.eq(b)),
    ("a = NOT b", a.eq(~b)),
    ("NOT a IS NULL", ~a.is_null()),
    ("a = b IS NULL", a.eq(b).is_null()),
    ("a IS NULL = b", a.is_null().eq(b)),
    ("a IS NOT NULL IS NULL", a.is_not_null().is_null()),
    ("a = b BETWEEN 1 AND 2", a.eq(b.between(1, 2))),
    ("a BETWEEN 1 AND 2 = b", a.between(1, 2).eq(b)),
    ("a BETWEEN b + 1 AND c * 2 AND TRUE", a.between(b + 1, c * 2) & True),
    ("a LIKE b || 'x'", Like(a, b.concat("x"))),
    ("a || 'x' LIKE b", Like(a.concat("x"), b)),
    ("a = b LIKE 'x'", a.eq(Like(b, lit("x")))),
    ("a IN (1) = b", a.isin([1]).eq(b)),
    ("a IN (1) IN (TRUE)", a.isin([1]).isin([True])),
    ("(a = b) = c", a.eq(b).eq(c)),
    ("a = (b = c)", a.eq(b.eq(c))),
    ("((a))", a),
]


@pytest.mark.parametrize(("text", "expected"), PRECEDENCE, ids=[t for t, _ in PRECEDENCE])
def test_precedence_follows_duckdb(text: str, expected: Expr) -> None:
    assert parse(text) == expected


# --- errors ------------------------------------------------------------------------------

ERRORS: list[tuple[str, str, int | None]] = [
    # (text, part of the message, caret position)
    ("a +", "expected an expression, found the end of the text", 3),
    ("a = = b", 'unexpected "="', 4),
    ("foo(x)", 'unknown function "foo"', 0),
    ("a + char_length(b)", 'unknown function "char_length"', 4),
    ("ifnull(a, 1)", 'unknown function "ifnull"', 0),
    ("substr(a)", "substr takes 2 or 3 arguments (substr(string, start[, length])), got 1", 0),
    ("1 + lower(a, b)", "lower takes 1 argument (lower(x)), got 2", 4),
    ("round(a, 1, 2)", "round takes 1 or 2 arguments", 0),
    ("nullif(a)", "nullif takes 2 arguments", 0),
    ("coalesce()", "coalesce takes at least 1 argument", 0),
    ("(a + 1", "expected ) to close the ( at column 1, found the end of the text", 6),
    ("a + 1)", "unbalanced parentheses", 5),
    ("lower(a", "expected , or ) in the arguments of lower(", 7),
    ("sum(x) + (select 1)", "subqueries are not supported", 10),
    ("a IN (SELECT 1)", "subqueries are not supported", 6),
    ("a; drop table t", "only one expression is allowed", 1),
    ("a;", "only one expression is allowed", 1),
    ("", "empty expression", None),
    ("   ", "empty expression", None),
    ("-- only a comment", "empty expression", None),
    ("*", "* is only allowed as count(*)", 0),
    ("lower(*)", "* is only allowed as count(*)", 6),
    ("sum(*)", "sum(*) is not allowed", 4),
    ("sum(DISTINCT x)", "DISTINCT is only supported in count(DISTINCT x)", 4),
    ("lower(DISTINCT x)", "DISTINCT is only allowed in count(DISTINCT x)", 6),
    ("count()", "count takes one argument or *, got none", 0),
    ("max(a, b)", "max takes one argument, got 2", 0),
    ("sum(x) OVER ()", "window functions and OVER clauses are not supported", 7),
    ("count(*) FILTER (WHERE a)", "FILTER clauses are not supported", 9),
    ("a = $1", "parameters are not supported", 4),
    ("a = ?", "parameters are not supported", 4),
    ("t.a", "qualified names (table.column) are not supported", 1),
    ("E'x\\n'", "escape strings are not supported", 0),
    ("$$x$$", "strings are not supported", 0),
    ("'abc", "unterminated string", 0),
    ('a + "abc', "unterminated quoted name", 4),
    ("a /* never closed", "unterminated comment", 2),
    ('""', "a column name cannot be empty", 0),
    ("1 < a < 3", "chained comparisons are not supported", 6),
    ("a = b = c", "chained comparisons are not supported", 6),
    ("a LIKE b LIKE c", "cannot follow LIKE or BETWEEN", 9),
    ("a IS TRUE", "only IS NULL and IS NOT NULL are supported", 5),
    ("a IS DISTINCT FROM b", "only IS NULL and IS NOT NULL are supported", 5),
    ("a NOT NULL", "expected IN, BETWEEN, LIKE or ILIKE after NOT", 2),
    ("a IN ()", "IN needs at least one value", 6),
    ("a IN 1", "expected ( after IN", 5),
    ("a BETWEEN 1", "expected AND between the bounds of BETWEEN", 11),
    ("a LIKE 'x' ESCAPE 'ab'", "ESCAPE takes exactly one character, got 2", 18),
    ("a LIKE 'x' ESCAPE ''", "ESCAPE takes exactly one character, got 0", 18),
    ("a LIKE 'x' ESCAPE b", "ESCAPE takes a one-character string", 18),
    ("CASE END", "CASE needs at least one WHEN", 5),
    ("CASE WHEN a THEN 1", "expected END to close CASE", 18),
    ("CASE WHEN a 1 END", "expected THEN after the WHEN condition", 12),
    ("CAST(a INTEGER)", "expected AS in CAST(x AS type)", 7),
    ("CAST(a AS INTEGER", "expected ) to close the CAST( at column 5", 17),
    ("a::SMALLINT", "type SMALLINT is not supported", 3),
    ("a::TINYINT", "cast to INTEGER (i32)", 3),
    ("a::HUGEINT", "DECIMAL(38, 0)", 3),
    ("a::INTERVAL", "type INTERVAL is not supported", 3),
    ("a::TIMESTAMP_NS", "timestamps are microseconds", 3),
    ("a::VARCHAR[]", "VARCHAR[] is not supported", 3),
    ("a::VARCHAR(10)", "VARCHAR takes no parameters", 3),
    ("a::DECIMAL(50, 2)", "decimal precision must be between 1 and 38", 3),
    ("a::DECIMAL(x)", "needs one or two integers", 3),
    ("a::intgr", 'unknown type "intgr"; did you mean', 3),
    ("a::int16", "type INT16 is not supported", 3),
    ("a::float32", 'unknown type "float32"', 3),
    ("a::timestamp[ms]", 'unknown type "timestamp[ms]"', 3),
    ("a:: 1", "expected a type name", 4),
    ("DATE '2024-02-30'", "malformed date '2024-02-30' (day is out of range for month)", 5),
    ("DATE '2024-1-5'", "malformed date '2024-1-5'", 5),
    ("a > DATE 'yesterday'", "write DATE 'YYYY-MM-DD'", 9),
    ("TIMESTAMP '2024-01-01 25:00:00'", "malformed timestamp", 10),
    ("TIMESTAMP '2024-01-01 10:00:00+02'", "no time zone", 10),
    ("TIMESTAMP '2024-01-01 10:00:00.1234567'", "up to microseconds", 10),
    ("INTERVAL '1 day'", "typed literals other than DATE '...' and TIMESTAMP '...'", 0),
    ("TIMESTAMPTZ '2024-01-01'", "typed literals other than", 0),
    ("9223372036854775808", "does not fit in 64 bits", 0),
    ("-9223372036854775809", "does not fit in 64 bits", 1),
    ("1" * 5000, "does not fit in 64 bits", 0),
    ("1e", "malformed number '1e'", 0),
    ("+1", "unary + is not supported", 0),
    ("a AS b", "aliases (AS name) are not supported", 2),
    ("select", "subqueries and statements are not supported", 0),
    (
        "left",
        'left is a reserved word here; to use it as a column name, double-quote it: "left"',
        0,
    ),
    ("a + from", "from is a reserved word", 4),
    ('"lower"(a)', 'unexpected "(" after a complete expression', 7),
    ("a b", 'unexpected "b" after a complete expression', 2),
    ("a ^ 2", 'unexpected "^" after a complete expression', 2),
    ("a[1]", 'unexpected "[" after a complete expression', 1),
    ("a ~~ 'x'", 'unexpected "~~" after a complete expression', 2),
    ("x'AB'", "typed literals other than", 0),
    ("a +\n  foo(b)", 'unknown function "foo"', 6),
]


@pytest.mark.parametrize(
    ("text", "message", "position"), ERRORS, ids=[t[:40] for t, _, _ in ERRORS]
)
def test_malformed_text_raises_with_a_caret(text: str, message: str, position: int | None) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, BadInputError)
    assert isinstance(err, PlatformError)
    assert message in err.reason
    assert err.position == position
    if position is not None:
        line_start = text.rfind("\n", 0, position) + 1
        line_end = text.find("\n", position)
        line = text[line_start : None if line_end < 0 else line_end]
        assert str(err).endswith(f"\n  {line}\n  {' ' * (position - line_start)}^")


def test_unknown_function_lists_every_function_and_aggregate() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("sqrt(x) + 1")
    message = info.value.reason
    for name in (*FUNCTIONS, *AGGREGATES):
        assert name in message
    assert str(info.value).endswith("\n  sqrt(x) + 1\n  ^")


def test_every_function_has_an_arity() -> None:
    assert tuple(FUNCTION_ARITY) == FUNCTIONS


@pytest.mark.parametrize("name", sorted(FUNCTION_ARITY))
def test_every_function_checks_its_arity(name: str) -> None:
    low, high = FUNCTION_ARITY[name]
    for count in (low - 1, (high or low + 5) + 1):
        if count < 0 or (high is None and count > low):
            continue
        args = ", ".join(["a"] * count)
        with pytest.raises(ExpressionError, match=f"{name} takes"):
            parse(f"{name}({args})")


def test_limits_on_size_and_nesting() -> None:
    with pytest.raises(ExpressionError, match="at most 65536"):
        parse("a" * (MAX_TEXT_LENGTH + 1))
    parse("(" * 150 + "a" + ")" * 150)
    with pytest.raises(ExpressionError, match="nests too deeply"):
        parse("(" * 1000 + "a" + ")" * 1000)
    with pytest.raises(ExpressionError, match="nests too deeply"):
        parse("NOT " * 1000 + "a")
    with pytest.raises(ExpressionError, match="nests too deeply"):
        parse("- " * 1000 + "a")
    assert parse(" OR ".join(["a"] * (MAX_DEPTH - 1)))  # a chain nests one level per term
    with pytest.raises(ExpressionError, match=r"nests \d+ levels deep; at most 200"):
        parse(" OR ".join(["a"] * (MAX_DEPTH + 1)))
    long_list = parse("a IN (" + ", ".join(map(str, range(5000))) + ")")
    assert isinstance(long_list, InList)
    assert len(long_list.items) == 5000


def test_non_text_is_refused() -> None:
    with pytest.raises(ExpressionError, match="an expression is text"):
        parse(b"a + 1")  # type: ignore[arg-type]


# --- CAST target types ---------------------------------------------------------------------

CAST_TYPES = [
    ("INTEGER", I32),
    ("int", I32),
    ("INT4", I32),
    ("int32", I32),
    ("SIGNED", I32),
    ("BIGINT", I64),
    ("INT8", I64),  # DuckDB's INT8 is 8 bytes, not Arrow's int8
    ("long", I64),
    ("DOUBLE", F64),
    ("FLOAT8", F64),
    ("double  precision", F64),
    ("FLOAT", F32),
    ("REAL", F32),
    ("VARCHAR", UTF8),
    ("text", UTF8),
    ("STRING", UTF8),
    ("CHARACTER VARYING", UTF8),
    ("BOOLEAN", BOOL8),
    ("bool", BOOL8),
    ("DATE", DATE),
    ("TIMESTAMP", timestamp()),
    ("DATETIME", timestamp()),
    ("TIMESTAMP WITHOUT TIME ZONE", timestamp()),
    ("TIMESTAMPTZ", timestamp("UTC")),
    ("BLOB", BYTES),
    ("BYTEA", BYTES),
    ("UTINYINT", U8),
    ("USMALLINT", U16),
    ("UINTEGER", U32),
    ("JSON", JSON),
    ("INTEGER[]", I32_ARRAY),
    ("INT [ ]", I32_ARRAY),
    ("FLOAT[]", F32_ARRAY),
    ("REAL[]", F32_ARRAY),
    ("DECIMAL(12, 4)", decimal(12, 4)),
    ("NUMERIC(3)", decimal(3, 0)),
    # the platform's canonical names
    *((str(t), t) for t in map(parse_type, ["u8", "i64", "f64", "utf8", "utf8_ref", "bytes"])),
    ("bool8", BOOL8),
    ("i32_array", I32_ARRAY),
    ("f32_array", F32_ARRAY),
    ("timestamp[us]", timestamp()),
    ("timestamp[us, UTC]", timestamp("UTC")),
    ("timestamp[us, +05:30]", timestamp("+05:30")),
    ("decimal(10, 2)", decimal(10, 2)),
]


@pytest.mark.parametrize(("name", "expected"), CAST_TYPES, ids=[n for n, _ in CAST_TYPES])
def test_cast_type_names(name: str, expected: FieldType) -> None:
    assert parse_cast_type(name) == expected
    assert parse(f"CAST(a AS {name})") == Cast(a, expected)
    assert parse(f"a::{name}") == Cast(a, expected)


# --- robustness ------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "a", '"b c"', "1", "2.5", "'s'", "NULL", "TRUE", "+", "-", "*", "/", "%", "=", "<>", "<",
        "||", "(", ")", ",", "::", "INT", "AND", "OR", "NOT", "IS", "IN", "BETWEEN", "LIKE",
        "ESCAPE", "CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "AS", "lower", "substr",
        "count", "sum", "DISTINCT", "DATE", "'2024-01-01'", ";", "SELECT", ".", "$1", "'",
        '"', "--", "/*",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=12).map(" ".join)))
def test_any_text_parses_or_raises_expression_error(text: str) -> None:
    """Nothing but an AST of our own nodes, or ExpressionError: no sqlglot type ever leaks."""
    try:
        expr = parse(text)
    except ExpressionError as e:
        error: ExpressionError | None = e
    else:
        error = None
    if error is not None:
        assert error.text in (None, text)
        return
    for node in walk(expr):
        assert type(node).__module__ == "platform_core.expr.nodes"
        for field in dataclasses.fields(node):  # type: ignore[arg-type]
            value = getattr(node, field.name)
            assert value is None or type(value).__module__ in (
                "builtins",
                "datetime",
                "platform_core.expr.nodes",
                "platform_core.types",
            )


def test_parse_never_evaluates_python() -> None:
    """Python-looking text is just an unknown function or a syntax error."""
    for text in ["__import__('os').system('true')", "eval('1')", "exec('x = 1')", "(lambda: 1)()"]:
        with pytest.raises(ExpressionError):
            parse(text)
