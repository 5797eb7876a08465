"""Hypothesis strategies for the expression language: tables and well-typed expressions.

``tables()`` draws Arrow tables of the fixed ``SCHEMA`` (0-20 rows, every column nullable
with NULLs mixed in, values chosen at the edges: ints next to overflow, NaN, -0.0, ties at
.5, empty and non-BMP strings, LIKE metacharacters). ``exprs(kind)`` draws an expression of
the requested result kind over those columns, type-directed: every production only builds
what the checker accepts, and together they reach every operator and function of the
language. ``ops(expr)`` names what an expression uses (the labels of the coverage tests and
of ``hypothesis.event``).

Not a test module: the tests load it by file path (pytest runs with
``--import-mode=importlib``, so the test directory is not on ``sys.path``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from typing import Final

import pyarrow as pa
from hypothesis import strategies as st

from platform_core.expr.nodes import (
    Aggregate,
    Between,
    Binary,
    BinaryOp,
    Call,
    Case,
    Cast,
    Column,
    Expr,
    InList,
    IsNull,
    Like,
    Literal,
    Unary,
    lit,
    walk,
)
from platform_core.schema import Field, Schema
from platform_core.types import BOOL8, DATE, F64, I32, I64, UTF8, FieldType, timestamp

TS: Final = timestamp()

# --- the table ---------------------------------------------------------------------------

#: Column name -> type. Two columns of most kinds so column-vs-column comparisons happen;
#: one name needs quoting (a double quote, a space) to exercise identifier rendering.
COLUMNS: Final[dict[str, FieldType]] = {
    "i1": I32,
    "i2": I32,
    "l1": I64,
    "l2": I64,
    "f1": F64,
    "f2": F64,
    "s1": UTF8,
    's"2 x': UTF8,
    "b1": BOOL8,
    "b2": BOOL8,
    "d1": DATE,
    "t1": TS,
}
SCHEMA: Final = Schema([Field(name, type_) for name, type_ in COLUMNS.items()])

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1

I32_EDGES: Final = (
    0,
    1,
    -1,
    2,
    -2,
    3,
    -3,
    7,
    -7,
    10,
    -10,
    46340,
    46341,
    -46341,
    65536,
    2**30,
    -(2**30),
    I32_MAX,
    I32_MIN,
    I32_MAX - 1,
    I32_MIN + 1,
)
I64_EDGES: Final = (
    0,
    1,
    -1,
    2,
    -2,
    3,
    -7,
    7,
    I32_MAX,
    I32_MIN,
    I32_MAX + 1,
    I32_MIN - 1,
    2**32,
    3037000499,
    3037000500,
    -3037000500,
    2**53 + 1,
    I64_MAX,
    I64_MIN,
    I64_MAX - 1,
    I64_MIN + 1,
)
F64_EDGES: Final = (
    0.0,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    0.5,
    -0.5,
    1.5,
    -1.5,
    2.5,
    -2.5,
    0.125,
    -0.125,
    0.375,
    3.0,
    -7.0,
    7.0,
    0.1,
    1 / 3,
    1e308,
    -1e308,
    5e-324,
    1e-300,
    2.0**53,
    2.0**63,
    -(2.0**63),
    2147483647.5,
    -2147483648.5,
    2147483648.0,
    1e15 + 0.5,
)
#: Characters strings and LIKE patterns are made of: a few letters (so patterns match),
#: LIKE metacharacters and escape candidates, spaces, a combining accent, case-mapping
#: oddities (sharp s, dotted capital I, titlecase dz) and a non-BMP emoji.
ALPHABET: Final = "aAbB0 %_\\!^e\u0301\u00dfI\u0130\u01c5\U0001f600\u00e9-."
STRING_EDGES: Final = (
    "",
    " ",
    " a ",
    "  ",
    "a",
    "A",
    "%",
    "_",
    "\\",
    "!",
    "a%b",
    "a_b",
    "100%",
    "e\u0301",
    "\u00e9",
    "\u00df",
    "Stra\u00dfe",
    "\u0130stanbul",
    "\u01c5",
    "\U0001f600",
    "x\U0001f600y",
    "12",
    " 42 ",
    "-7",
    "+5",
    "2147483648",
    "9223372036854775808",
    "1.5",
    "2.5",
    "-0",
    "1e3",
    "nan",
    "inf",
    "-Infinity",
    "true",
    "False",
    "t",
    "0",
    "2020-01-02",
    "2020-01-02 03:04:05",
    "2020-01-02T03:04:05.123456",
    "1969-12-31 23:59:59.5",
    "0001-01-01",
)
DATE_EDGES: Final = (
    dt.date(1970, 1, 1),
    dt.date(1969, 12, 31),
    dt.date(2000, 2, 29),
    dt.date(2024, 12, 31),
    dt.date(1, 1, 1),
    dt.date(9999, 12, 31),
)
TS_EDGES: Final = (
    dt.datetime(1970, 1, 1),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
    dt.datetime(2000, 2, 29, 12, 30, 15, 500000),
    dt.datetime(2024, 12, 31, 23, 0, 0),
    dt.datetime(1, 1, 1),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
)


def _edges_or(edges: tuple[object, ...], *others: st.SearchStrategy[object]) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(edges), *others)


#: Non-NULL values of each kind (also the values of literals).
VALUES: Final[dict[str, st.SearchStrategy]] = {
    "i32": _edges_or(I32_EDGES, st.integers(-100, 100), st.integers(I32_MIN, I32_MAX)),
    "i64": _edges_or(I64_EDGES, st.integers(-100, 100), st.integers(I64_MIN, I64_MAX)),
    "f64": _edges_or(
        F64_EDGES,
        st.integers(-80, 80).map(lambda i: i / 8),  # exact, with ties at .5 and .125
        st.floats(-1e6, 1e6),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
    "utf8": _edges_or(STRING_EDGES, st.text(ALPHABET, max_size=6)),
    "bool8": st.booleans(),
    "date": _edges_or(DATE_EDGES, st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31))),
    "timestamp": _edges_or(
        TS_EDGES, st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 12, 31))
    ),
}


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 20) -> pa.Table:
    """A table of ``SCHEMA`` with 0..max_rows rows. Each column is drawn in one of three
    regimes, so all are reached: no NULLs, NULLs mixed in (about 1 in 4), or all NULL."""
    rows = draw(st.integers(0, max_rows))
    columns = {}
    for name, type_ in COLUMNS.items():
        values = VALUES[type_.kind]
        regime = draw(st.sampled_from(("mixed", "no nulls", "all null")))
        cell = {
            "mixed": st.one_of(st.none(), values, values, values),
            "no nulls": values,
            "all null": st.none(),
        }[regime]
        column = draw(st.lists(cell, min_size=rows, max_size=rows))
        columns[name] = pa.array(column, type_.to_arrow())
    return pa.table(columns, schema=SCHEMA.to_arrow())


def show_table(table: pa.Table) -> str:
    """The table as text for ``note()``: one line per row, values by repr."""
    lines = [" | ".join(table.column_names)]
    for row in table.to_pylist():
        lines.append(" | ".join(repr(v) for v in row.values()))
    return "\n".join(lines)


# --- expressions -------------------------------------------------------------------------

#: The result kinds ``exprs`` can be asked for, with their field types.
TYPES: Final[dict[str, FieldType]] = {
    "i32": I32,
    "i64": I64,
    "f64": F64,
    "utf8": UTF8,
    "bool8": BOOL8,
    "date": DATE,
    "timestamp": TS,
}
KINDS: Final = tuple(TYPES)
NUMERIC: Final = ("i32", "i64", "f64")
#: Kinds whose values compare with each other (the checker's ``compare_type``).
GROUPS: Final = (NUMERIC, ("utf8",), ("bool8",), ("date", "timestamp"))
GROUP_OF: Final = {kind: group for group in GROUPS for kind in group}
#: Kinds that widen implicitly to the key, so CASE/coalesce/greatest branches of these kinds
#: (with at least one of the key's own kind) give the key's kind (``common_type``).
WIDER_FROM: Final = {
    "i32": ("i32",),
    "i64": ("i32", "i64"),
    "f64": NUMERIC,
    "utf8": ("utf8",),
    "bool8": ("bool8",),
    "date": ("date",),
    "timestamp": ("date", "timestamp"),
}
#: CAST sources the checker accepts for each target (``_casts.cast_problem``).
CAST_SOURCES: Final = {
    **{kind: (*NUMERIC, "bool8", "utf8") for kind in (*NUMERIC, "bool8")},
    "utf8": KINDS,
    "date": ("utf8", "date", "timestamp"),
    "timestamp": ("utf8", "date", "timestamp"),
}
#: Operand kinds of ``+ - * %`` whose promoted type is the key (``promote_numeric``).
ARITH_PAIRS: Final = {
    "i32": (("i32", "i32"),),
    "i64": (("i64", "i64"), ("i64", "i32"), ("i32", "i64")),
    "f64": (("f64", "f64"), ("f64", "i32"), ("i64", "f64"), ("f64", "i64"), ("i32", "f64")),
}
ARITH_OPS: Final[tuple[BinaryOp, ...]] = ("+", "-", "*", "%")
COMPARE_OPS: Final[tuple[BinaryOp, ...]] = ("=", "<>", "<", "<=", ">", ">=")
LOGIC_OPS: Final[tuple[BinaryOp, ...]] = ("and", "or")
NULL: Final = Literal(None, None)
MAX_DEPTH: Final = 5
COLUMNS_OF: Final = {
    kind: tuple(name for name, t in COLUMNS.items() if t == type_) for kind, type_ in TYPES.items()
}

# LIKE patterns: metacharacters, escape candidates, case and Unicode oddities.
PATTERN_ALPHABET: Final = "aAbB%_!\\^ e\u0301\u00df\u0130\U0001f600"
PATTERN_EDGES: Final = (
    "",
    "%",
    "_",
    "%%",
    "a%",
    "%a",
    "%a%",
    "_%",
    "%_",
    "__",
    "a_b",
    "A%",
    "!%",
    "!_",
    "!!",
    "%!%%",
    "\\%",
    "\\\\",
    "^%",
    "%\U0001f600%",
    "_\U0001f600",
    "%e\u0301",
    "e_",
    "\u00df%",
    "%SS%",
    "%\u0130%",
    "%i%",
    "100!%",
    " %",
    "% ",
    "%2%",
    "2%",
)
#: None = no ESCAPE clause. Not "": the checker accepts ESCAPE '' but the parser, the
#: renderer and the JSON reader refuse it (reported), so it has no SQL to compare.
ESCAPES: Final = (None, "!", "\\", "^", "%", "_", "a")
#: No letter for ILIKE: it would be lower-cased along with the pattern.
ILIKE_ESCAPES: Final = tuple(e for e in ESCAPES if e != "a")
SUBSTR_BOUNDS: Final = (0, 1, 2, 3, 5, -1, -2, -3, 100, -100, 2**31, -(2**31), 2**32 - 1, -(2**32))
ROUND_DIGITS: Final = (
    0,
    1,
    2,
    3,
    -1,
    -2,
    -3,
    5,
    9,
    10,
    15,
    18,
    19,
    20,
    -9,
    -10,
    -18,
    -19,
    -20,
    300,
    -400,
)


def literals(kind: str) -> st.SearchStrategy[Expr]:
    """Non-NULL literals of ``kind`` as the builder (and the parser) make them."""
    if kind == "i64":  # lit() types small ints i32; pin i64 (the renderer casts them)
        return VALUES["i64"].map(lambda v: Literal(v, I64))
    return VALUES[kind].map(lit)


@st.composite
def leaves(draw: st.DrawFn, kind: str) -> Expr:
    """A column (1/2), a literal (3/8) or a typed NULL (1/8) of ``kind``."""
    choice = draw(st.integers(0, 7))
    if choice < 4:
        return Column(draw(st.sampled_from(COLUMNS_OF[kind])))
    if choice < 7:
        return draw(literals(kind))
    return Literal(None, TYPES[kind])


def exprs(kind: str, depth: int = MAX_DEPTH) -> st.SearchStrategy[Expr]:
    """A well-typed expression whose checked type is ``TYPES[kind]``, at most ``depth`` deep
    (not a bare leaf: an operator, function, predicate, CASE or CAST at the top)."""
    return _exprs(kind, depth, leaf_odds=0)


#: Top-level kinds: filters (bool8) are the main use, so they come up most.
TOP_KINDS: Final = ("bool8", "bool8", "bool8", "i32", "i64", "f64", "f64", "utf8", "utf8")
TOP_KINDS_ALL: Final = (*TOP_KINDS, "date", "timestamp")


def any_exprs(depth: int = MAX_DEPTH) -> st.SearchStrategy[Expr]:
    """A well-typed expression of any kind (bool8 most often)."""
    return st.sampled_from(TOP_KINDS_ALL).flatmap(lambda kind: exprs(kind, depth))


@st.composite
def _exprs(draw: st.DrawFn, kind: str, depth: int, leaf_odds: int = 3) -> Expr:
    """1 in ``leaf_odds`` a leaf (never when 0), always a leaf at depth 0."""
    if depth <= 0 or (leaf_odds and draw(st.integers(1, leaf_odds)) == 1):
        return draw(leaves(kind))
    build = draw(st.sampled_from(PRODUCTIONS[kind]))
    return build(draw, kind, depth - 1)


def _sub(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    return draw(_exprs(kind, depth))


def _sub_or_null(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    """An expression of ``kind``, or (1 in 10) an untyped NULL where the context types it."""
    if draw(st.integers(0, 9)) == 0:
        return NULL
    return _sub(draw, kind, depth)


def _pair(
    draw: st.DrawFn, kinds: tuple[str, str], depth: int, result: str | None = None
) -> tuple[Expr, Expr]:
    """Operands of two kinds; at most one of them (1 in 10) an untyped NULL. With
    ``result`` (arithmetic), a side may be NULL only if the other alone gives ``result``
    (a NULL takes the other side's type)."""
    slot = draw(st.integers(0, 19))
    null_left = slot == 1 and (result is None or kinds[1] == result)
    null_right = slot == 2 and (result is None or kinds[0] == result)
    left = NULL if null_left else _sub(draw, kinds[0], depth)
    right = NULL if null_right else _sub(draw, kinds[1], depth)
    return left, right


def _branches(draw: st.DrawFn, kind: str, depth: int, low: int, high: int) -> list[Expr]:
    """``low..high`` values sharing the type ``kind``: one of that very kind, the others of
    a kind widening to it or untyped NULLs."""
    count = draw(st.integers(low, high))
    exact = draw(st.integers(0, count - 1))
    return [
        _sub(draw, kind, depth)
        if i == exact
        else _sub_or_null(draw, draw(st.sampled_from(WIDER_FROM[kind])), depth)
        for i in range(count)
    ]


# Productions: (draw, kind, depth) -> an expression of that kind.


def _case(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    values = _branches(draw, kind, depth, 1, 4)
    has_else = len(values) > 1 and draw(st.booleans())
    whens = values[:-1] if has_else else values
    conditions = [_sub_or_null(draw, "bool8", depth) for _ in whens]
    return Case(tuple(zip(conditions, whens, strict=True)), values[-1] if has_else else None)


def _variadic(name: str) -> Callable[[st.DrawFn, str, int], Expr]:
    def build(draw: st.DrawFn, kind: str, depth: int) -> Expr:
        return Call(name, tuple(_branches(draw, kind, depth, 1, 4)))

    return build


def _nullif(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    other = draw(st.sampled_from(GROUP_OF[kind]))
    return Call("nullif", (_sub(draw, kind, depth), _sub_or_null(draw, other, depth)))


def _cast(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    source = draw(st.sampled_from(CAST_SOURCES[kind]))
    return Cast(_sub_or_null(draw, source, depth), TYPES[kind])


def _arith(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    op = draw(st.sampled_from(ARITH_OPS))
    left, right = _pair(draw, draw(st.sampled_from(ARITH_PAIRS[kind])), depth, kind)
    return Binary(op, left, right)


def _divide(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    kinds = (draw(st.sampled_from(NUMERIC)), draw(st.sampled_from(NUMERIC)))
    left, right = _pair(draw, kinds, depth)
    return Binary("/", left, right)


def _negate(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    return Unary("neg", _sub(draw, kind, depth))


def _abs(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    return Call("abs", (_sub(draw, kind, depth),))


def _round(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    x = _sub(draw, kind, depth)
    form = draw(st.integers(0, 4))
    if form == 0:
        return Call("round", (x,))
    if form == 1:
        return Call("round", (x, Literal(None, None)))
    digits = draw(st.sampled_from(ROUND_DIGITS))
    if form == 2 and digits < 0:  # -3 written as -(3), as the parser reads "-3"
        return Call("round", (x, Unary("neg", lit(-digits))))
    return Call("round", (x, lit(digits)))


def _floor_ceil(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    name = draw(st.sampled_from(("floor", "ceil")))
    return Call(name, (_sub(draw, draw(st.sampled_from(NUMERIC)), depth),))


def _pow(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    name = draw(st.sampled_from(("pow", "power")))
    kinds = (draw(st.sampled_from(NUMERIC)), draw(st.sampled_from(NUMERIC)))
    return Call(name, tuple(_sub(draw, k, depth) for k in kinds))


def _length(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    return Call("length", (_sub_or_null(draw, "utf8", depth),))


def _part(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    name = draw(st.sampled_from(("year", "month", "day", "hour")))
    return Call(name, (_sub(draw, draw(st.sampled_from(("date", "timestamp"))), depth),))


def _text_function(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    name = draw(st.sampled_from(("lower", "upper", "trim")))
    return Call(name, (_sub_or_null(draw, "utf8", depth),))


def _bound(draw: st.DrawFn) -> Expr:
    if draw(st.integers(0, 9)) == 0:
        return NULL
    return lit(draw(st.sampled_from(SUBSTR_BOUNDS) | st.integers(-6, 6)))


def _substr(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    args = [_sub_or_null(draw, "utf8", depth), _bound(draw)]
    if draw(st.booleans()):
        args.append(_bound(draw))
    return Call("substr", tuple(args))


def _concat(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    kinds = (draw(st.sampled_from(KINDS)), draw(st.sampled_from(KINDS)))
    left, right = _pair(draw, kinds, depth)
    return Binary("||", left, right)


def _compare(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    group = draw(st.sampled_from(GROUPS))
    op = draw(st.sampled_from(COMPARE_OPS))
    left, right = _pair(draw, (draw(st.sampled_from(group)), draw(st.sampled_from(group))), depth)
    return Binary(op, left, right)


def _logic(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    op = draw(st.sampled_from(LOGIC_OPS))
    return Binary(op, _sub_or_null(draw, "bool8", depth), _sub_or_null(draw, "bool8", depth))


def _not(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    return Unary("not", _sub_or_null(draw, "bool8", depth))


def _is_null(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    operand = _sub_or_null(draw, draw(st.sampled_from(KINDS)), depth)
    return IsNull(operand, negated=draw(st.booleans()))


def _in(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    group = draw(st.sampled_from(GROUPS))
    operand = _sub(draw, draw(st.sampled_from(group)), depth)
    count = draw(st.integers(1, 4))
    items = tuple(_sub_or_null(draw, draw(st.sampled_from(group)), depth) for _ in range(count))
    return InList(operand, items, negated=draw(st.booleans()))


def _between(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    group = draw(st.sampled_from(GROUPS))
    operand = _sub(draw, draw(st.sampled_from(group)), depth)
    low = _sub_or_null(draw, draw(st.sampled_from(group)), depth)
    high = _sub_or_null(draw, draw(st.sampled_from(group)), depth)
    return Between(operand, low, high, negated=draw(st.booleans()))


def like_ok(pattern: str, escape: str | None) -> bool:
    """Whether the checker accepts the pattern: it must not end in an unpaired escape."""
    if not escape:
        return True
    chars = iter(pattern)
    return all(ch != escape or next(chars, None) is not None for ch in chars)


def _like(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    operand = _sub_or_null(draw, "utf8", depth)
    case_insensitive = draw(st.booleans())
    escape = draw(st.sampled_from(ILIKE_ESCAPES if case_insensitive else ESCAPES))
    if draw(st.integers(0, 9)) == 0:
        pattern: Expr = NULL
    else:
        text = draw(st.sampled_from(PATTERN_EDGES) | st.text(PATTERN_ALPHABET, max_size=6))
        if not like_ok(text, escape):
            text += "a"
        pattern = lit(text)
    return Like(
        operand, pattern, escape, negated=draw(st.booleans()), case_insensitive=case_insensitive
    )


def _generic(draw: st.DrawFn, kind: str, depth: int) -> Expr:
    """A production every kind has: CASE, coalesce, greatest, least, nullif or CAST."""
    build = draw(st.sampled_from(_GENERIC))
    return build(draw, kind, depth)


_GENERIC: Final = (
    _case,
    _variadic("coalesce"),
    _variadic("greatest"),
    _variadic("least"),
    _nullif,
    _cast,
)
#: The productions of each kind; repeats weigh the kind's own operators against the
#: generic forms (listed twice: every kind has them, so they would crowd out the rest).
PRODUCTIONS: Final[dict[str, tuple[Callable[[st.DrawFn, str, int], Expr], ...]]] = {
    "i32": (_arith, _arith, _arith, _negate, _abs, _round, _generic, _generic),
    "i64": (_arith, _arith, _negate, _abs, _round, _length, _part, _part, _generic, _generic),
    "f64": (
        *(_arith, _arith, _divide, _divide, _negate, _abs, _round, _floor_ceil, _pow),
        *(_generic, _generic),
    ),
    "utf8": (_text_function, _text_function, _substr, _concat, _concat, _generic, _generic),
    "bool8": (
        *(_compare, _compare, _compare, _logic, _logic, _not, _is_null, _in, _in),
        *(_between, _between, _like, _like, _like, _like, _cast, _generic, _generic),
    ),
    "date": (_generic, _cast),
    "timestamp": (_generic, _cast),
}


#: Argument kinds each aggregate accepts (``functions.AGGREGATE_FUNCTIONS``).
AGGREGATE_ARGS: Final = {
    "count": KINDS,
    "sum": (*NUMERIC, "bool8"),
    "avg": (*NUMERIC, "date", "timestamp"),
    "min": KINDS,
    "max": KINDS,
    "stddev_samp": NUMERIC,
    "stddev_pop": NUMERIC,
    "var_samp": NUMERIC,
    "var_pop": NUMERIC,
    "corr": NUMERIC,
    "median": NUMERIC,
    "quantile_cont": NUMERIC,
    "quantile_disc": KINDS,
    "arg_min": KINDS,
    "arg_max": KINDS,
}


@st.composite
def aggregates(draw: st.DrawFn) -> Aggregate:
    """``count(*)``, ``count([DISTINCT] x)``, ``sum``/``avg``/``min``/``max`` of an
    expression (type-checked with ``aggregates=True``; not evaluated row by row)."""
    name = draw(st.sampled_from(sorted(AGGREGATE_ARGS)))
    if name == "count" and draw(st.integers(0, 3)) == 0:
        return Aggregate("count", None)
    arg = draw(exprs(draw(st.sampled_from(AGGREGATE_ARGS[name])), 3))
    extra: tuple[Expr, ...] = ()
    if name in ("corr", "arg_min", "arg_max"):  # corr(y, x); arg_min(arg, val)
        extra = (draw(exprs(draw(st.sampled_from(NUMERIC if name == "corr" else KINDS)), 3)),)
    elif name.startswith("quantile_"):  # q: a number literal in [0, 1]
        q = draw(st.sampled_from([0, 1]) | st.floats(0.0, 1.0))
        extra = (Literal(q, I32) if isinstance(q, int) else Literal(q, F64),)
    return Aggregate(name, arg, distinct=name == "count" and draw(st.booleans()), extra_args=extra)


# --- what an expression uses --------------------------------------------------------------

_PLAIN: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def ops(expr: Expr) -> set[str]:
    """Labels of every operator, function, predicate and literal kind ``expr`` uses."""
    return {label for node in walk(expr) for label in _labels(node)}


def _labels(node: Expr) -> Iterator[str]:
    match node:
        case Literal(value=None, type=None):
            yield "NULL"
        case Literal(value=None):
            yield "typed NULL"
        case Literal(value=bool()):
            yield "bool literal"
        case Literal(value=int()):
            yield "int literal"
        case Literal(value=float()):
            yield "float literal"
        case Literal(value=str()):
            yield "string literal"
        case Literal(value=dt.datetime()):
            yield "TIMESTAMP literal"
        case Literal(value=dt.date()):
            yield "DATE literal"
        case Column(name=name):
            yield "column" if set(name) <= _PLAIN else "quoted column"
        case Unary(op=op):
            yield "unary -" if op == "neg" else "NOT"
        case Binary(op=op):
            yield op.upper()
        case IsNull(negated=negated):
            yield "IS NOT NULL" if negated else "IS NULL"
        case InList(negated=negated):
            yield "NOT IN" if negated else "IN"
        case Between(negated=negated):
            yield "NOT BETWEEN" if negated else "BETWEEN"
        case Like(pattern=pattern, escape=escape, negated=negated, case_insensitive=ci):
            yield ("NOT " if negated else "") + ("ILIKE" if ci else "LIKE")
            if escape is not None:
                yield "LIKE ESCAPE"
            if isinstance(pattern, Literal) and isinstance(pattern.value, str):
                yield from (f"LIKE pattern {c}" for c in "%_" if c in pattern.value)
        case Case(otherwise=otherwise):
            yield "CASE" if otherwise is None else "CASE ELSE"
        case Cast(to=to):
            yield f"CAST AS {to.kind}"
        case Call(name=name, args=args):
            yield name if name not in ("round", "substr") else f"{name}/{len(args)}"


#: Every label the strategy must reach: the whole language of the issue's item 1 (scalar
#: part; aggregates are not evaluated row by row).
REQUIRED_OPS: Final = frozenset(
    {
        *("NULL", "typed NULL", "bool literal", "int literal", "float literal"),
        *("string literal", "TIMESTAMP literal", "DATE literal", "column", "quoted column"),
        *("+", "-", "*", "/", "%", "unary -", "=", "<>", "<", "<=", ">", ">="),
        *("AND", "OR", "NOT", "IS NULL", "IS NOT NULL", "IN", "NOT IN", "BETWEEN"),
        *("NOT BETWEEN", "LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "LIKE ESCAPE"),
        *("LIKE pattern %", "LIKE pattern _", "CASE", "CASE ELSE", "||"),
        *(f"CAST AS {kind}" for kind in KINDS),
        *("lower", "upper", "length", "substr/2", "substr/3", "trim", "abs"),
        *("round/1", "round/2", "floor", "ceil", "coalesce", "nullif", "greatest", "least"),
        *("pow", "power"),
        *("year", "month", "day", "hour"),
    }
)
