"""The typed AST of the expression language: frozen dataclasses, plus a small builder API.

Nodes compare and hash by value (so ``parse(a) == parse(b)`` means the same expression);
therefore ``==`` is not overloaded for building: use ``.eq()`` / ``.ne()``. The other
comparison and arithmetic operators, ``&``, ``|`` and ``~`` build nodes::

    (col("amount") > 1000) & col("region").isin(["eu", "us"]) & ~col("deleted")
"""

from __future__ import annotations

import datetime as dt
import math
import typing as t
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, TypeAlias

from platform_core.types import FieldType, parse_type

from .errors import ExpressionError

__all__ = [
    "AGGREGATES",
    "AGGREGATE_ALIASES",
    "ARITHMETIC",
    "BINARY_OPS",
    "COMPARISONS",
    "FUNCTIONS",
    "TWO_ARGUMENT_AGGREGATES",
    "Aggregate",
    "Between",
    "Binary",
    "Call",
    "Case",
    "Cast",
    "Column",
    "Expr",
    "InList",
    "IsNull",
    "Like",
    "Literal",
    "LiteralValue",
    "Unary",
    "col",
    "lit",
    "walk",
]

LiteralValue: TypeAlias = bool | int | float | str | dt.date | dt.datetime | None

ARITHMETIC: Final = ("+", "-", "*", "/", "%")
COMPARISONS: Final = ("=", "<>", "<", "<=", ">", ">=")
BINARY_OPS: Final = (*ARITHMETIC, *COMPARISONS, "and", "or", "||")
UNARY_OPS: Final = ("neg", "not")
FUNCTIONS: Final = (
    "lower",
    "upper",
    "length",
    "substr",
    "trim",
    "abs",
    "round",
    "floor",
    "pow",
    "power",
    "ceil",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "year",
    "month",
    "day",
    "hour",
)
AGGREGATES: Final = (
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev_samp",
    "stddev_pop",
    "var_samp",
    "var_pop",
    "corr",
    "median",
    "quantile_cont",
    "quantile_disc",
    "arg_min",
    "arg_max",
)
#: Aggregates of two arguments (the second one in ``Aggregate.extra_args``); the others take one.
TWO_ARGUMENT_AGGREGATES: Final = ("corr", "quantile_cont", "quantile_disc", "arg_min", "arg_max")
#: Other spellings the parser accepts, as DuckDB names them (``quantile`` is DuckDB's
#: ``quantile_disc``); nodes, JSON and rendered SQL always carry the canonical name.
AGGREGATE_ALIASES: Final = {
    "stddev": "stddev_samp",
    "variance": "var_samp",
    "quantile": "quantile_disc",
}

BinaryOp: TypeAlias = t.Literal[
    "+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "and", "or", "||"
]


class Expr:
    """Base of every node; its operators build larger expressions."""

    __slots__ = ()

    # Arithmetic -----------------------------------------------------------------------
    def __add__(self, other: object) -> Binary:
        return Binary("+", self, _wrap(other))

    def __radd__(self, other: object) -> Binary:
        return Binary("+", _wrap(other), self)

    def __sub__(self, other: object) -> Binary:
        return Binary("-", self, _wrap(other))

    def __rsub__(self, other: object) -> Binary:
        return Binary("-", _wrap(other), self)

    def __mul__(self, other: object) -> Binary:
        return Binary("*", self, _wrap(other))

    def __rmul__(self, other: object) -> Binary:
        return Binary("*", _wrap(other), self)

    def __truediv__(self, other: object) -> Binary:
        return Binary("/", self, _wrap(other))

    def __rtruediv__(self, other: object) -> Binary:
        return Binary("/", _wrap(other), self)

    def __mod__(self, other: object) -> Binary:
        return Binary("%", self, _wrap(other))

    def __rmod__(self, other: object) -> Binary:
        return Binary("%", _wrap(other), self)

    def __neg__(self) -> Unary:
        return Unary("neg", self)

    # Comparison (== and != stay value equality of nodes) ------------------------------
    def __lt__(self, other: object) -> Binary:
        return Binary("<", self, _wrap(other))

    def __le__(self, other: object) -> Binary:
        return Binary("<=", self, _wrap(other))

    def __gt__(self, other: object) -> Binary:
        return Binary(">", self, _wrap(other))

    def __ge__(self, other: object) -> Binary:
        return Binary(">=", self, _wrap(other))

    def eq(self, other: object) -> Binary:
        """``self = other`` (SQL equality; ``==`` compares nodes)."""
        return Binary("=", self, _wrap(other))

    def ne(self, other: object) -> Binary:
        """``self <> other``."""
        return Binary("<>", self, _wrap(other))

    # Logic ----------------------------------------------------------------------------
    def __and__(self, other: object) -> Binary:
        return Binary("and", self, _wrap(other))

    def __rand__(self, other: object) -> Binary:
        return Binary("and", _wrap(other), self)

    def __or__(self, other: object) -> Binary:
        return Binary("or", self, _wrap(other))

    def __ror__(self, other: object) -> Binary:
        return Binary("or", _wrap(other), self)

    def __invert__(self) -> Unary:
        return Unary("not", self)

    # SQL predicates -------------------------------------------------------------------
    def is_null(self) -> IsNull:
        return IsNull(self)

    def is_not_null(self) -> IsNull:
        return IsNull(self, negated=True)

    def isin(self, values: Iterable[object]) -> InList:
        return InList(self, tuple(_wrap(v) for v in values))

    def between(self, low: object, high: object) -> Between:
        return Between(self, _wrap(low), _wrap(high))

    def like(self, pattern: str, escape: str | None = None) -> Like:
        return Like(self, _wrap(pattern), escape)

    def ilike(self, pattern: str, escape: str | None = None) -> Like:
        return Like(self, _wrap(pattern), escape, case_insensitive=True)

    def concat(self, other: object) -> Binary:
        """``self || other``."""
        return Binary("||", self, _wrap(other))

    def cast(self, to: str | FieldType) -> Cast:
        return Cast(self, parse_type(to))


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A constant. ``type`` is None only for an untyped NULL."""

    value: LiteralValue
    type: FieldType | None


@dataclass(frozen=True, slots=True)
class Column(Expr):
    """A reference to a column by name."""

    name: str


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    """``-x`` (op ``neg``) or ``NOT x`` (op ``not``)."""

    op: t.Literal["neg", "not"]
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    """Arithmetic, comparison, ``AND``/``OR`` and string concatenation ``||``."""

    op: BinaryOp
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class IsNull(Expr):
    """``x IS NULL`` / ``x IS NOT NULL``: never NULL itself."""

    operand: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class InList(Expr):
    """``x [NOT] IN (a, b, ...)`` with SQL's three-valued logic."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between(Expr):
    """``x [NOT] BETWEEN low AND high`` (both ends included)."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like(Expr):
    """``x [NOT] LIKE|ILIKE pattern [ESCAPE 'c']``: ``%`` any run, ``_`` one character."""

    operand: Expr
    pattern: Expr
    escape: str | None = None
    negated: bool = False
    case_insensitive: bool = False


@dataclass(frozen=True, slots=True)
class Case(Expr):
    """``CASE WHEN c1 THEN v1 ... [ELSE e] END``; no ELSE means ELSE NULL."""

    whens: tuple[tuple[Expr, Expr], ...]
    otherwise: Expr | None = None


@dataclass(frozen=True, slots=True)
class Cast(Expr):
    """``CAST(x AS type)``."""

    operand: Expr
    to: FieldType


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A scalar function call, one of ``FUNCTIONS``."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Aggregate(Expr):
    """``count(*)`` (arg None), ``count([DISTINCT] x)``, ``sum``, ``avg``, ``min``, ``max``,
    the statistical aggregates, and the two-argument ones: ``corr(y, x)``,
    ``quantile_cont(x, q)``, ``quantile_disc(x, q)``, ``arg_min(arg, val)``,
    ``arg_max(arg, val)``. ``arg`` is the first argument; ``extra_args`` holds the ones after
    it (empty for one-argument aggregates, so older nodes and JSON plans are unchanged)."""

    name: str
    arg: Expr | None
    distinct: bool = False
    extra_args: tuple[Expr, ...] = ()

    @property
    def args(self) -> tuple[Expr, ...]:
        """Every argument in call order (empty for ``count(*)``)."""
        return () if self.arg is None else (self.arg, *self.extra_args)


def col(name: str) -> Column:
    """A column reference for the builder API."""
    if not isinstance(name, str) or not name:
        raise ExpressionError(f"a column name is a non-empty string, got {name!r}")
    return Column(name)


_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def lit(value: object, type: str | FieldType | None = None) -> Literal:
    """A literal; its type is inferred as DuckDB does (ints: i32 if they fit, else i64)."""
    if isinstance(value, Expr):
        raise ExpressionError(f"lit() takes a Python value, got an expression {value!r}")
    if type is not None:
        return Literal(_check_value(value), parse_type(type))
    if value is None:
        return Literal(None, None)
    if isinstance(value, bool):
        return Literal(value, FieldType("bool8"))
    if isinstance(value, int):
        if _I32_MIN <= value <= _I32_MAX:
            return Literal(value, FieldType("i32"))
        if _I64_MIN <= value <= _I64_MAX:
            return Literal(value, FieldType("i64"))
        raise ExpressionError(f"integer literal {value} does not fit in 64 bits")
    if isinstance(value, float):
        return Literal(value, FieldType("f64"))
    if isinstance(value, str):
        return Literal(value, FieldType("utf8"))
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise ExpressionError("timestamp literals are naive (UTC); drop the tzinfo")
        return Literal(value, parse_type("timestamp[us]"))
    if isinstance(value, dt.date):
        return Literal(value, FieldType("date"))
    raise ExpressionError(
        f"no literal for a {type_name(value)}: use None, bool, int, float, str, date or datetime"
    )


def _check_value(value: object) -> LiteralValue:
    if value is None or isinstance(value, bool | int | float | str | dt.date | dt.datetime):
        return value
    raise ExpressionError(f"no literal for a {type_name(value)}")


def type_name(value: object) -> str:
    return type(value).__name__


def _wrap(value: object) -> Expr:
    return value if isinstance(value, Expr) else lit(value)


def walk(expr: Expr) -> Iterable[Expr]:
    """Every node of ``expr``, parents before children."""
    yield expr
    for child in children(expr):
        yield from walk(child)


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of a node, in source order."""
    match expr:
        case Literal() | Column():
            return ()
        case Unary(operand=x) | IsNull(operand=x) | Cast(operand=x):
            return (x,)
        case Binary(left=a, right=b):
            return (a, b)
        case InList(operand=x, items=items):
            return (x, *items)
        case Between(operand=x, low=lo, high=hi):
            return (x, lo, hi)
        case Like(operand=x, pattern=p):
            return (x, p)
        case Case(whens=whens, otherwise=other):
            flat = tuple(e for pair in whens for e in pair)
            return flat if other is None else (*flat, other)
        case Call(args=args):
            return args
        case Aggregate(arg=arg, extra_args=extra):
            return () if arg is None else (arg, *extra)
    raise ExpressionError(f"not an expression node: {expr!r}")


def is_nan_literal(expr: Expr) -> bool:
    """Whether ``expr`` is a float literal holding NaN (NaN != NaN breaks naive equality)."""
    return isinstance(expr, Literal) and isinstance(expr.value, float) and math.isnan(expr.value)
