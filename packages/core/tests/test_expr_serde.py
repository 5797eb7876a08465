"""The canonical JSON form of expressions: the documented shape, exact round trips, strict reading."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from platform_core.expr import (
    AGGREGATES,
    FUNCTIONS,
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
    serde,
)
from platform_core.expr.nodes import BINARY_OPS, TWO_ARGUMENT_AGGREGATES
from platform_core.expr.serde import (
    KINDS,
    MAX_DEPTH,
    depth,
    from_dict,
    from_json,
    to_dict,
    to_json,
)
from platform_core.types import VOCABULARY, FieldType, decimal, parse_type, timestamp

A = {"kind": "column", "name": "a"}
ONE = {"kind": "literal", "type": "i32", "value": 1}

# --- the documented shape ------------------------------------------------------------------

SHAPES: list[tuple[Expr, dict[str, Any]]] = [
    (lit(1), ONE),
    (col("a"), A),
    (-col("a"), {"kind": "unary", "op": "neg", "operand": A}),
    (~col("a"), {"kind": "unary", "op": "not", "operand": A}),
    (col("a") + 1, {"kind": "binary", "op": "+", "left": A, "right": ONE}),
    (col("a") & 1, {"kind": "binary", "op": "and", "left": A, "right": ONE}),
    (col("a").is_not_null(), {"kind": "is_null", "operand": A, "negated": True}),
    (
        col("a").isin([1]),
        {"kind": "in", "operand": A, "items": [ONE], "negated": False},
    ),
    (
        Between(col("a"), lit(1), lit(1), negated=True),
        {"kind": "between", "operand": A, "low": ONE, "high": ONE, "negated": True},
    ),
    (
        col("a").ilike("x!%", escape="!"),
        {
            "kind": "like",
            "operand": A,
            "pattern": {"kind": "literal", "type": "utf8", "value": "x!%"},
            "escape": "!",
            "negated": False,
            "case_insensitive": True,
        },
    ),
    (
        Case(((col("a"), lit(1)),)),
        {"kind": "case", "whens": [[A, ONE]], "otherwise": None},
    ),
    (
        Case(((col("a"), lit(1)),), col("a")),
        {"kind": "case", "whens": [[A, ONE]], "otherwise": A},
    ),
    (
        col("a").cast("decimal(10, 2)"),
        {"kind": "cast", "operand": A, "to": "decimal(10, 2)"},
    ),
    (Call("lower", (col("a"),)), {"kind": "call", "name": "lower", "args": [A]}),
    (
        Aggregate("count", None),
        {"kind": "aggregate", "name": "count", "arg": None, "distinct": False},
    ),
    (
        Aggregate("count", col("a"), distinct=True),
        {"kind": "aggregate", "name": "count", "arg": A, "distinct": True},
    ),
    # one-argument aggregates keep the older form (no "extra_args"); two-argument ones carry
    # their second argument as the one item of "extra_args"
    (
        Aggregate("stddev_samp", col("a")),
        {"kind": "aggregate", "name": "stddev_samp", "arg": A, "distinct": False},
    ),
    (
        Aggregate("corr", col("a"), extra_args=(col("a"),)),
        {"kind": "aggregate", "name": "corr", "arg": A, "distinct": False, "extra_args": [A]},
    ),
    (
        Aggregate("quantile_cont", col("a"), extra_args=(lit(0.5),)),
        {
            "kind": "aggregate",
            "name": "quantile_cont",
            "arg": A,
            "distinct": False,
            "extra_args": [{"kind": "literal", "type": "f64", "value": 0.5}],
        },
    ),
    # literal values, by type
    (Literal(None, None), {"kind": "literal", "type": None, "value": None}),
    (Literal(None, parse_type("i64")), {"kind": "literal", "type": "i64", "value": None}),
    (lit(True), {"kind": "literal", "type": "bool8", "value": True}),
    (lit(2**40), {"kind": "literal", "type": "i64", "value": "1099511627776"}),
    (lit(-(2**63)), {"kind": "literal", "type": "i64", "value": "-9223372036854775808"}),
    (lit(200, "u8"), {"kind": "literal", "type": "u8", "value": 200}),
    (lit(1.5), {"kind": "literal", "type": "f64", "value": 1.5}),
    (lit(2, "f64"), {"kind": "literal", "type": "f64", "value": 2.0}),
    (lit(math.nan), {"kind": "literal", "type": "f64", "value": "NaN"}),
    (lit(math.inf), {"kind": "literal", "type": "f64", "value": "Infinity"}),
    (lit(-math.inf, "f32"), {"kind": "literal", "type": "f32", "value": "-Infinity"}),
    (lit("it's"), {"kind": "literal", "type": "utf8", "value": "it's"}),
    (lit('{"a": 1}', "json"), {"kind": "literal", "type": "json", "value": '{"a": 1}'}),
    (lit(dt.date(2024, 2, 29)), {"kind": "literal", "type": "date", "value": "2024-02-29"}),
    (
        lit(dt.datetime(2024, 1, 2, 3, 4, 5)),
        {"kind": "literal", "type": "timestamp[us]", "value": "2024-01-02T03:04:05.000000"},
    ),
    (
        lit(dt.datetime(1, 1, 1, 0, 0, 0, 7), "timestamp[us, UTC]"),
        {"kind": "literal", "type": "timestamp[us, UTC]", "value": "0001-01-01T00:00:00.000007"},
    ),
    (lit("12.50", "decimal(4, 2)"), {"kind": "literal", "type": "decimal(4, 2)", "value": "12.50"}),
    (lit(12, "decimal(4, 2)"), {"kind": "literal", "type": "decimal(4, 2)", "value": 12}),
]


@pytest.mark.parametrize(("expr", "shape"), SHAPES, ids=[repr(e)[:60] for e, _ in SHAPES])
def test_documented_shape(expr: Expr, shape: dict[str, Any]) -> None:
    assert to_dict(expr) == shape
    text = to_json(expr)
    assert text == json.dumps(shape, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert to_json(from_json(text)) == text
    if not _has_nan(expr):
        assert from_json(text) == expr
        assert from_dict(shape) == expr


def test_every_node_kind_has_a_documented_shape() -> None:
    assert {type(e) for e, _ in SHAPES} == set(KINDS)
    assert set(serde._FIELDS) == set(KINDS.values())


def test_canonical_text_is_compact_sorted_utf8() -> None:
    assert to_json(col("é") + 1) == (
        '{"kind":"binary","left":{"kind":"column","name":"é"},"op":"+",'
        '"right":{"kind":"literal","type":"i32","value":1}}'
    )


def test_negative_zero_keeps_its_sign() -> None:
    back = from_json(to_json(lit(-0.0)))
    assert isinstance(back, Literal)
    assert isinstance(back.value, float)
    assert math.copysign(1.0, back.value) == -1.0


def test_what_javascript_writes_is_read() -> None:
    """JSON.stringify writes 2.0 as 2 and dates with a Z; optional fields may be left out."""
    assert from_json('{"kind":"literal","type":"f64","value":2}') == Literal(2.0, parse_type("f64"))
    assert from_json(
        '{"kind":"literal","type":"timestamp[us]","value":"2024-01-02T03:04:05.123Z"}'
    ) == lit(dt.datetime(2024, 1, 2, 3, 4, 5, 123000))
    assert from_dict({"kind": "is_null", "operand": A}) == IsNull(col("a"))
    assert from_dict({"kind": "like", "operand": A, "pattern": A}) == Like(col("a"), col("a"))
    assert from_dict({"kind": "aggregate", "name": "count"}) == Aggregate("count", None)
    assert from_dict({"kind": "case", "whens": [[A, ONE]]}) == Case(((col("a"), lit(1)),))


# --- random ASTs ------------------------------------------------------------------------------


def _type_and_value() -> st.SearchStrategy[tuple[FieldType | None, Any]]:
    ints = {
        "u8": (0, 2**8 - 1),
        "u16": (0, 2**16 - 1),
        "u32": (0, 2**32 - 1),
        "i32": (-(2**31), 2**31 - 1),
        "i64": (-(2**63), 2**63 - 1),
    }
    text = st.text(max_size=8)
    return st.one_of(
        st.just((None, None)),
        st.sampled_from(VOCABULARY[:-2]).map(lambda k: (FieldType(k), None)),
        st.booleans().map(lambda v: (FieldType("bool8"), v)),
        *(
            st.tuples(st.just(FieldType(kind)), st.integers(lo, hi))
            for kind, (lo, hi) in ints.items()
        ),
        st.tuples(st.sampled_from(["f32", "f64"]).map(FieldType), st.floats()),
        st.tuples(st.sampled_from(["utf8", "utf8_ref", "json", "bytes"]).map(FieldType), text),
        st.dates().map(lambda v: (FieldType("date"), v)),
        st.tuples(st.sampled_from([timestamp(), timestamp("UTC")]), st.datetimes()),
        st.tuples(
            st.just(decimal(20, 4)),
            st.one_of(
                st.integers(-(10**12), 10**12),
                st.floats(allow_nan=False, allow_infinity=False),
                st.decimals(places=4, allow_nan=False, allow_infinity=False).map(str),
            ),
        ),
    )


literals = _type_and_value().map(lambda tv: Literal(tv[1], tv[0]))
columns = st.text(min_size=1, max_size=8).map(Column)
field_types = st.one_of(
    st.sampled_from(VOCABULARY[:-2]).map(FieldType),
    st.sampled_from([timestamp(), timestamp("Europe/Paris"), decimal(38, 10), decimal(1, 0)]),
)


def _branches(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    few = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(Unary, st.sampled_from(["neg", "not"]), children),
        st.builds(Binary, st.sampled_from(BINARY_OPS), children, children),
        st.builds(IsNull, children, st.booleans()),
        st.builds(InList, children, few, st.booleans()),
        st.builds(Between, children, children, children, st.booleans()),
        st.builds(
            Like,
            children,
            children,
            st.none() | st.characters(),
            st.booleans(),
            st.booleans(),
        ),
        st.builds(
            Case,
            st.lists(st.tuples(children, children), min_size=1, max_size=3).map(tuple),
            st.none() | children,
        ),
        st.builds(Cast, children, field_types),
        st.builds(Call, st.sampled_from(FUNCTIONS), st.lists(children, max_size=3).map(tuple)),
        st.builds(
            lambda name, arg, distinct, second: Aggregate(
                name, arg, distinct, (second,) if name in TWO_ARGUMENT_AGGREGATES else ()
            ),
            st.sampled_from(AGGREGATES),
            children,
            st.booleans(),
            children,
        ),
        st.just(Aggregate("count", None)),
    )


exprs = st.recursive(literals | columns, _branches, max_leaves=12)


def _has_nan(expr: Expr) -> bool:
    return "NaN" in to_json(expr)


@settings(max_examples=300, deadline=None)
@given(exprs)
def test_json_round_trip_is_exact(expr: Expr) -> None:
    text = to_json(expr)
    back = from_json(text)
    assert to_json(back) == text  # canonical: the same text again (this also covers NaN)
    if not _has_nan(expr):
        assert back == expr
        assert from_dict(json.loads(text)) == expr
    assert depth(back) == depth(expr)


# --- strict reading --------------------------------------------------------------------------

MALFORMED: list[tuple[object, str, str]] = [
    # (input, part of the message, path)
    ([], "expected an expression object, got a list", "$"),
    ({}, 'missing "kind"', "$"),
    ({"kind": "nope"}, "unknown kind 'nope'", "$"),
    ({"kind": ["x"]}, "unknown kind ['x']", "$"),
    ({"kind": "binary", "op": "+", "left": A}, "a binary node needs 'right'", "$"),
    (
        {"kind": "binary", "op": "+", "left": A, "right": {"kind": "wat"}},
        "unknown kind 'wat'",
        "$.right",
    ),
    (
        {"kind": "binary", "op": "^", "left": A, "right": A},
        "unknown binary op '^'",
        "$.op",
    ),
    ({"kind": "column", "name": "a", "extra": 1}, "unknown key 'extra' in a column node", "$"),
    ({"kind": "column", "name": ""}, "a column name is a non-empty string", "$.name"),
    ({"kind": "column", "name": 5}, "a column name is a non-empty string", "$.name"),
    ({"kind": "unary", "op": "pos", "operand": A}, "unknown unary op 'pos'", "$.op"),
    ({"kind": "is_null", "operand": A, "negated": "yes"}, "expected true or false", "$.negated"),
    ({"kind": "in", "operand": A, "items": A}, "expected a list, got an object", "$.items"),
    (
        {"kind": "in", "operand": A, "items": [A, {"kind": "column"}]},
        "a column node needs 'name'",
        "$.items[1]",
    ),
    (
        {"kind": "like", "operand": A, "pattern": A, "escape": "ab"},
        "a LIKE escape is null or one character",
        "$.escape",
    ),
    ({"kind": "case", "whens": []}, "at least one [condition, value] pair", "$.whens"),
    ({"kind": "case", "whens": [[A]]}, "expected a [condition, value] pair", "$.whens[0]"),
    (
        {"kind": "case", "whens": [[A, {"kind": "column", "name": None}]]},
        "a column name",
        "$.whens[0][1].name",
    ),
    ({"kind": "cast", "operand": A, "to": "Int64"}, 'not written canonically; write "i64"', "$.to"),
    ({"kind": "cast", "operand": A, "to": "decimal(10,2)"}, 'write "decimal(10, 2)"', "$.to"),
    ({"kind": "cast", "operand": A, "to": "varchar"}, "unknown field type", "$.to"),
    ({"kind": "cast", "operand": A, "to": None}, "expected a type name", "$.to"),
    ({"kind": "call", "name": "sqrt", "args": []}, "unknown function 'sqrt'", "$.name"),
    ({"kind": "call", "name": "lower", "args": [5]}, "got a number", "$.args[0]"),
    ({"kind": "aggregate", "name": "mode", "arg": A}, "unknown aggregate 'mode'", "$.name"),
    (
        {"kind": "aggregate", "name": "stddev", "arg": A},
        "unknown aggregate 'stddev'",  # aliases are for text; JSON holds the canonical name
        "$.name",
    ),
    ({"kind": "aggregate", "name": "corr", "arg": A}, "corr takes 2 arguments", "$.extra_args"),
    (
        {"kind": "aggregate", "name": "arg_min", "arg": A, "extra_args": [A, A]},
        "arg_min takes 2 arguments",
        "$.extra_args",
    ),
    (
        {"kind": "aggregate", "name": "median", "arg": A, "extra_args": [A]},
        "median takes 1 argument",
        "$.extra_args",
    ),
    (
        {"kind": "aggregate", "name": "corr", "arg": A, "extra_args": A},
        "expected a list",
        "$.extra_args",
    ),
    ({"kind": "aggregate", "name": "sum", "arg": None}, "only count has no argument", "$.arg"),
    ({"kind": "literal", "type": "i32"}, "a literal node needs 'value'", "$"),
    ({"kind": "literal", "type": None, "value": 1}, "type null must have value null", "$.value"),
    ({"kind": "literal", "type": "i32", "value": 2**31}, "out of range for i32", "$.value"),
    ({"kind": "literal", "type": "u8", "value": -1}, "out of range for u8", "$.value"),
    ({"kind": "literal", "type": "i32", "value": 1.5}, "must be an integer", "$.value"),
    ({"kind": "literal", "type": "i32", "value": True}, "must be an integer", "$.value"),
    ({"kind": "literal", "type": "i64", "value": 5}, "a string of decimal digits", "$.value"),
    ({"kind": "literal", "type": "i64", "value": "05"}, "a string of decimal digits", "$.value"),
    ({"kind": "literal", "type": "i64", "value": str(2**63)}, "out of range for i64", "$.value"),
    ({"kind": "literal", "type": "f64", "value": "nan"}, '"NaN", "Infinity"', "$.value"),
    ({"kind": "literal", "type": "f64", "value": 10**400}, "must be a number", "$.value"),
    ({"kind": "literal", "type": "bool8", "value": 1}, "must be true or false", "$.value"),
    ({"kind": "literal", "type": "utf8", "value": 1}, "must be a string", "$.value"),
    ({"kind": "literal", "type": "date", "value": "2024-2-1"}, 'a date "YYYY-MM-DD"', "$.value"),
    (
        {"kind": "literal", "type": "date", "value": "2024-02-30"},
        "malformed '2024-02-30'",
        "$.value",
    ),
    (
        {"kind": "literal", "type": "timestamp[us]", "value": "2024-01-01 10:00:00"},
        "a naive timestamp",
        "$.value",
    ),
    (
        {"kind": "literal", "type": "timestamp[us]", "value": "2024-01-01T10:00:00+02:00"},
        "a naive timestamp",
        "$.value",
    ),
    ({"kind": "literal", "type": "decimal(4, 2)", "value": "1e5"}, "a decimal string", "$.value"),
]


@pytest.mark.parametrize(("data", "message", "path"), MALFORMED, ids=[m for _, m, _ in MALFORMED])
def test_malformed_dicts_say_what_and_where(data: object, message: str, path: str) -> None:
    with pytest.raises(ExpressionError) as info:
        from_dict(data)
    assert message in str(info.value)
    assert str(info.value).endswith(f"(at {path})")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "malformed expression JSON at line 1 column 1"),
        ('{"kind": "column", "name": "a"', "malformed expression JSON"),
        (
            '{"kind":"literal","type":"f64","value":NaN}',
            'bare NaN is not JSON; write the string "NaN"',
        ),
        ('{"kind":"literal","type":"f64","value":Infinity}', "bare Infinity is not JSON"),
        ('{"kind":"column","name":"a","name":"b"}', 'duplicate key "name"'),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
        ('{"kind":"literal","type":"i32","value":' + "1" * 5000 + "}", "malformed expression JSON"),
        (b"\xff", "not UTF-8"),
        (" " * (2**20 + 1), "at most 1048576"),
    ],
)
def test_malformed_json_text(text: str | bytes, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        from_json(text)
    assert message in str(info.value)


def test_json_bytes_are_read_as_utf8() -> None:
    assert from_json(to_json(col("é")).encode()) == col("é")


def test_depth_is_limited_both_ways() -> None:
    deep: Expr = col("a")
    for _ in range(MAX_DEPTH - 1):
        deep = ~deep
    assert from_json(to_json(deep)) == deep
    deeper = ~deep
    with pytest.raises(ExpressionError, match="at most 200"):
        to_json(deeper)
    data: dict[str, Any] = A
    for _ in range(MAX_DEPTH):
        data = {"kind": "unary", "op": "not", "operand": data}
    with pytest.raises(ExpressionError, match=r"more than 200 levels deep \(at \$(\.operand)+\)"):
        from_dict(data)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (Literal("x", parse_type("i32")), "a i32 literal cannot hold str"),
        (Literal(True, parse_type("i64")), "cannot hold bool"),
        (Literal(300, parse_type("u8")), "out of range for u8"),
        (Literal(2**60 + 1, parse_type("f64")), "cannot hold int"),
        (Literal(dt.datetime(2024, 1, 1), parse_type("date")), "cannot hold datetime"),
        (Literal("2024-01-01", parse_type("date")), "cannot hold str"),
        (
            Literal(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), timestamp("UTC")),
            "naive (UTC); drop the tzinfo",
        ),
        (Literal(1, None), "without a type must be NULL"),
        (Literal("1e5", decimal(10, 2)), "cannot hold str"),
        (Call("drop table", ()), "unknown function 'drop table'"),
        (Aggregate("sum", None), "only count has no argument"),
        (Binary("**", col("a"), col("a")), "unknown binary op '**'"),  # type: ignore[arg-type]
        (Like(col("a"), col("a"), escape="ab"), "one character"),
        (Column(""), "non-empty string"),
    ],
)
def test_nodes_without_a_json_form_are_refused(expr: Expr, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        to_json(expr)
    assert message in str(info.value)
