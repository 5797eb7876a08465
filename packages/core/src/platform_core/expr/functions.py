"""The one registry of operators and functions: name, arity, type rule, Arrow implementation.

``OPERATORS`` (``+ - * / %``, comparisons, ``and``/``or``/``not``, ``||``, unary ``neg``),
``SCALAR_FUNCTIONS`` and ``AGGREGATE_FUNCTIONS`` map names to ``Function`` entries. The
checker calls ``type_rule`` (argument types and nodes -> ``Signature``); the evaluator
calls ``implement`` with the evaluated arguments, their types and that signature. Every
implementation is written once over ``pyarrow.compute`` calls, so it runs on Arrow data
and also builds a ``pc.Expression`` for pushed-down filters (see ``_kernels``).

Each rule reproduces DuckDB 2.0, checked with ``typeof()`` and value by value in the
tests. The details live next to the code: arithmetic and rounding in ``_arith``, text in
``_strings``, CAST in ``_casts`` (and ``_dates``, ``_floatfmt``), type promotion in
``_types``, NaN-aware comparison in ``_kernels``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from platform_core.types import BOOL8, F64, I64, UTF8, FieldType, decimal, timestamp

from . import _arith as arith
from . import _strings as strings
from ._casts import cast_problem, explicit_cast
from ._kernels import (
    Value,
    and_,
    cast,
    coerce,
    compare,
    fill,
    is_lazy,
    lift,
    not_,
    null,
    or_,
    xc,
)
from ._signature import (
    Function,
    Implementation,
    Signature,
    TypeRule,
    adapted_common_type,
    bare_integer,
    cast_args,
    int_constant,
    literal_scalar,
    may_be_nan,
    require,
    show,
    unary_impl,
)
from ._types import (
    MaybeType,
    TypeProblem,
    arrow_type,
    compare_type,
    is_comparable,
    is_decimal,
    is_float,
    is_int,
    is_numeric,
    is_string,
    is_temporal,
)
from .nodes import Expr, Literal, Unary

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "OPERATORS",
    "SCALAR_FUNCTIONS",
    "Function",
    "Signature",
    "adapted_common_type",
    "bare_integer",
    "literal_scalar",
    "may_be_nan",
    "quantile_constant",
]


def _compare_rule(op: str) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        a, b = types
        try:
            target = compare_type(a, b)
        except TypeProblem:
            raise TypeProblem(f"cannot compare {show(a)} with {show(b)}") from None
        if op not in ("=", "<>"):
            require(is_comparable(target), f"values of type {target} have no order")
        nan = tuple(may_be_nan(n, t) for n, t in zip(nodes, types, strict=True))
        return Signature((target, target), BOOL8, nan=nan)

    return rule


def _compare_impl(op: str) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        a, b = cast_args(values, types, sig)
        return compare(op, a, b, a_nan=sig.nan[0], b_nan=sig.nan[1])

    return implement


def _logic_rule(op: str) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        for t in types:
            require(
                t is None or t == BOOL8,
                f"{op.upper()} takes booleans, got {' and '.join(show(t) for t in types)}",
            )
        return Signature(tuple(BOOL8 for _ in types), BOOL8)

    return rule


def _logic_impl(op: str) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        args = cast_args(values, types, sig)
        if op == "not":
            return not_(args[0])
        return and_(*args) if op == "and" else or_(*args)

    return implement


def _text_problem(t: MaybeType) -> str | None:
    """Why values of ``t`` cannot be turned into text for ``||``, or None."""
    if t is None or is_string(t):
        return None
    return cast_problem(t, UTF8)


def _concat_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    for t in types:
        problem = _text_problem(t)
        require(problem is None, f"cannot apply || to {show(t)}: {problem}")
    return Signature((UTF8, UTF8), UTF8)


def _as_text(value: Value, source: MaybeType) -> Value:
    if source is None or is_string(source):
        return coerce(value, source, UTF8)
    return explicit_cast(value, source, UTF8)


def _concat_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    a, b = lift(*(_as_text(v, t) for v, t in zip(values, types, strict=True)))
    return xc.binary_join_element_wise(a, b, "")


OPERATORS: Final[Mapping[str, Function]] = {
    **{
        op: Function(op, 2, 2, arith.arith_rule(op), arith.arith_impl(op), f"a {op} b")
        for op in ("+", "-", "*", "%")
    },
    "/": Function("/", 2, 2, arith.divide_rule, arith.divide_impl, "a / b, always as floats"),
    **{
        op: Function(op, 2, 2, _compare_rule(op), _compare_impl(op), f"a {op} b", "left")
        for op in ("=", "<>", "<", "<=", ">", ">=")
    },
    "and": Function("and", 2, 2, _logic_rule("and"), _logic_impl("and"), "a AND b", "none"),
    "or": Function("or", 2, 2, _logic_rule("or"), _logic_impl("or"), "a OR b", "none"),
    "||": Function("||", 2, 2, _concat_rule, _concat_impl, "text concatenation"),
    "neg": Function("neg", 1, 1, arith.negate_rule, arith.negate_impl, "-x"),
    "not": Function("not", 1, 1, _logic_rule("not"), _logic_impl("not"), "NOT x", "none"),
}


# --- scalar functions -------------------------------------------------------------------------


def _text_rule(result: FieldType) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        (t,) = types
        require(t is None or is_string(t), f"it takes utf8, got {show(t)}")
        return Signature((UTF8,), result)

    return rule


def _length(x: Value) -> Value:
    return cast(pc.utf8_length(x), pa.int64())


def _substr_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    require(types[0] is None or is_string(types[0]), f"it takes utf8, got {show(types[0])}")
    start = int_constant(nodes[1], "the start of substr")
    length = int_constant(nodes[2], "the length of substr") if len(nodes) > 2 else None
    for name, v in (("offset", start), ("length", length)):
        require(
            v is None or -strings.SUBSTR_LIMIT <= v < strings.SUBSTR_LIMIT,
            f"substr {name} {v} outside of the supported range "
            f"[{-strings.SUBSTR_LIMIT}, {strings.SUBSTR_LIMIT - 1}] (as DuckDB)",
        )
    all_null = start is None or (len(nodes) > 2 and length is None)
    args: tuple[MaybeType, ...] = (UTF8, *(None for _ in nodes[1:]))
    return Signature(args, UTF8, params=(start, length, all_null))


def _substr_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    x = coerce(values[0], types[0], UTF8)
    start, length, all_null = sig.params
    if all_null:  # substr(s, NULL): NULL on every row, as in DuckDB
        return null(pa.string(), lazy=is_lazy(x))
    assert isinstance(start, int)
    assert length is None or isinstance(length, int)
    return strings.substr(x, start, length)


def _variadic_rule(name: str, *, ordered: bool) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        try:
            result = adapted_common_type(types, nodes)
        except TypeProblem as exc:
            raise TypeProblem(f"{name} arguments must share a type: {exc}") from None
        if ordered:
            require(is_comparable(result), f"values of type {result} have no order")
        nan = tuple(may_be_nan(n, t) for n, t in zip(nodes, types, strict=True))
        return Signature(tuple(result for _ in types), result, nan=nan)

    return rule


def _extreme_impl(greatest: bool) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        if sig.result is None:
            return values[0]
        args = cast_args(values, types, sig)
        if sig.result == BOOL8:  # no element-wise kernel for bool: compare as 0/1
            args = [cast(a, pa.uint8()) for a in args]
        zone = sig.result.tz if sig.result.kind == "timestamp" else None
        if zone is not None:  # nor for zoned timestamps: compare the UTC instants
            args = [cast(a, pa.timestamp("us")) for a in args]
        args = lift(*args)
        kernel = pc.max_element_wise if greatest else pc.min_element_wise
        result = kernel(*args, skip_nulls=True)
        if greatest and any(sig.nan):  # DuckDB: NaN is the greatest value
            any_nan = None
            for arg, nan in zip(args, sig.nan, strict=True):
                if nan:
                    term = fill(xc.is_nan(arg), False)
                    any_nan = term if any_nan is None else xc.or_(any_nan, term)
            result = xc.if_else(any_nan, math.nan, result)
        if zone is not None:
            return cast(result, arrow_type(sig.result))
        return cast(result, pa.bool_()) if sig.result == BOOL8 else result

    return implement


def _nullif_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    a, b = types
    try:
        target = compare_type(a, b)
    except TypeProblem:
        raise TypeProblem(f"cannot compare {show(a)} with {show(b)}") from None
    nan = tuple(may_be_nan(n, t) for n, t in zip(nodes, types, strict=True))
    result = UTF8 if a is not None and is_string(a) else a
    return Signature((target, target), result, nan=nan)


def _nullif_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    """DuckDB's ``nullif(a, b)``: ``CASE WHEN a = b THEN NULL ELSE a END``, including
    the CASE shortcuts (all rows equal: a constant NULL; none: ``a`` as it is)."""
    if sig.result is None:
        return values[0]
    a, b = cast_args(values, types, sig)
    equal = fill(compare("=", a, b, a_nan=sig.nan[0], b_nan=sig.nan[1]), False)
    kept = coerce(values[0], types[0], sig.result)
    nothing = null(arrow_type(sig.result), lazy=False)
    if isinstance(equal, pa.Scalar):
        return nothing if equal.as_py() else kept
    if isinstance(equal, pa.Array) and len(equal):
        if xc.all(equal).as_py():
            return nothing
        if not xc.any(equal).as_py():
            return kept
    return xc.if_else(*lift(equal, nothing, kept))


def _part_rule(name: str) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        (t,) = types
        require(
            t is not None,
            f"{name}(NULL) has no argument type (DuckDB refuses it too); CAST the NULL to date",
        )
        require(is_temporal(t), f"it takes a date or timestamp, got {show(t)}")
        return Signature((t,), I64)

    return rule


def _part_impl(name: str) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        (x,) = values
        source = types[0]
        assert source is not None
        if source.kind == "timestamp" and source.tz is not None:
            x = cast(x, pa.timestamp("us"))  # DuckDB (TimeZone=UTC) reads parts in UTC
        if name == "hour" and source.kind == "date":
            return cast(xc.multiply(cast(xc.year(x), pa.int64()), 0), pa.int64())
        return cast(getattr(pc, name)(x), pa.int64())

    return implement


SCALAR_FUNCTIONS: Final[Mapping[str, Function]] = {
    "lower": Function(
        "lower", 1, 1, _text_rule(UTF8), unary_impl(strings.duckdb_lower), "lower case"
    ),
    "upper": Function(
        "upper", 1, 1, _text_rule(UTF8), unary_impl(strings.duckdb_upper), "upper case"
    ),
    "length": Function("length", 1, 1, _text_rule(I64), unary_impl(_length), "code points"),
    "trim": Function(
        "trim", 1, 1, _text_rule(UTF8), unary_impl(strings.trim), "strip space separators"
    ),
    "substr": Function(
        "substr", 2, 3, _substr_rule, _substr_impl, "substr(s, start[, length]), 1-based"
    ),
    "abs": Function("abs", 1, 1, arith.abs_rule, arith.abs_impl, "absolute value; overflow raises"),
    "round": Function(
        "round", 1, 2, arith.round_rule, arith.round_impl, "round(x[, digits]), half away from zero"
    ),
    "floor": Function(
        "floor", 1, 1, arith.floor_rule, arith.ceil_floor_impl(up=False), "round down"
    ),
    "pow": Function("pow", 2, 2, arith.pow_rule, arith.pow_impl, "pow(x, y): x to the power y"),
    "power": Function("power", 2, 2, arith.pow_rule, arith.pow_impl, "power(x, y), as pow"),
    "ceil": Function("ceil", 1, 1, arith.floor_rule, arith.ceil_floor_impl(up=True), "round up"),
    "coalesce": Function(
        "coalesce",
        1,
        None,
        _variadic_rule("coalesce", ordered=False),
        None,
        "first non-NULL argument",
        "none",
    ),
    "nullif": Function("nullif", 2, 2, _nullif_rule, _nullif_impl, "NULL if a = b, else a", "left"),
    "greatest": Function(
        "greatest",
        1,
        None,
        _variadic_rule("greatest", ordered=True),
        _extreme_impl(True),
        "largest non-NULL argument",
        "none",
    ),
    "least": Function(
        "least",
        1,
        None,
        _variadic_rule("least", ordered=True),
        _extreme_impl(False),
        "smallest non-NULL argument",
        "none",
    ),
    **{
        part: Function(part, 1, 1, _part_rule(part), _part_impl(part), f"the {part} (UTC)")
        for part in ("year", "month", "day", "hour")
    },
}


# --- aggregates (typed here, executed by emsqrt and lake) ------------------------------------


def _count_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    return Signature(tuple(None for _ in types), I64)


def _sum_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    if t is None or is_int(t) or t == BOOL8:
        return Signature((t,), decimal(38, 0))  # DuckDB: HUGEINT, exported as decimal(38, 0)
    if is_float(t):
        return Signature((t,), F64)
    if is_decimal(t):
        assert t.scale is not None
        return Signature((t,), decimal(38, t.scale))
    raise TypeProblem(f"sum takes numbers, got {t}")


def _avg_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    if t is None or is_numeric(t):
        return Signature((t,), F64)
    if t.kind == "date":
        return Signature((t,), timestamp())
    if t.kind == "timestamp":
        return Signature((t,), t)
    raise TypeProblem(f"avg takes numbers, dates or timestamps, got {t}")


def _extreme_aggregate_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    require(is_comparable(t), f"values of type {t} have no order")
    return Signature((t,), UTF8 if t is not None and is_string(t) else t)


def _statistic_rule(name: str) -> TypeRule:
    """stddev_*, var_*, corr: numbers (or NULL), computed as DOUBLE (DuckDB casts them)."""

    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        for t in types:
            require(
                t is None or is_numeric(t),
                f"{name} takes numbers, got {' and '.join(show(t) for t in types)} "
                "(DuckDB refuses it too)",
            )
        return Signature(tuple(types), F64)

    return rule


def quantile_constant(node: Expr, name: str) -> float:
    """The ``q`` of ``quantile_cont(x, q)``: a number literal in [0, 1] (DuckDB: a constant)."""
    value = node.value if isinstance(node, Literal) else None
    if isinstance(node, Unary) and node.op == "neg" and isinstance(node.operand, Literal):
        inner = node.operand.value
        value = -inner if isinstance(inner, int | float) and not isinstance(inner, bool) else None
        if value is not None and value < 0:
            raise TypeProblem(
                f"the quantile of {name} must lie in [0, 1], got {value} (DuckDB's negative "
                "quantiles, counted from the top, are not supported)"
            )
    require(
        isinstance(value, int | float) and not isinstance(value, bool),
        f"the quantile of {name} must be a number literal in [0, 1] (DuckDB needs a constant)",
    )
    assert isinstance(value, int | float)
    q = float(value)
    require(
        0.0 <= q <= 1.0,
        f"the quantile of {name} must lie in [0, 1], got {value}"
        + (
            " (DuckDB's negative quantiles, counted from the top, are not supported)"
            if q < 0
            else ""
        ),
    )
    return q


def _continuous_rule(name: str) -> TypeRule:
    """median and quantile_cont: integers interpolate as DOUBLE, floats in their own type."""

    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        t = types[0]
        params: tuple[object, ...] = (
            (0.5,) if len(nodes) == 1 else (quantile_constant(nodes[1], name),)
        )
        if t is None or is_int(t):
            return Signature(tuple(types), F64, params=params)
        if is_float(t):
            return Signature(tuple(types), t, params=params)
        require(
            not (is_decimal(t) or is_temporal(t)),
            f"{name} of {show(t)} is not supported (DuckDB keeps the type and interpolates "
            "in it); CAST the argument to DOUBLE",
        )
        require(
            name != "median" or not is_comparable(t),
            f"median of {show(t)} is not supported (DuckDB takes a discrete median of "
            "values that cannot be interpolated); use quantile_disc(x, 0.5)",
        )
        raise TypeProblem(f"{name} takes numbers, got {show(t)}")

    return rule


def _discrete_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    t = types[0]
    q = quantile_constant(nodes[1], "quantile_disc")
    require(is_comparable(t), f"values of type {t} have no order")
    return Signature(tuple(types), UTF8 if t is not None and is_string(t) else t, params=(q,))


def _arg_extreme_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    arg, val = types
    require(is_comparable(val), f"values of type {val} have no order")
    return Signature(tuple(types), UTF8 if arg is not None and is_string(arg) else arg)


AGGREGATE_FUNCTIONS: Final[Mapping[str, Function]] = {
    "count": Function("count", 0, 1, _count_rule, None, "count(*) rows, count(x) non-NULL x"),
    "sum": Function("sum", 1, 1, _sum_rule, None, "sum; integers sum to decimal(38, 0)"),
    "avg": Function("avg", 1, 1, _avg_rule, None, "mean as f64"),
    "min": Function("min", 1, 1, _extreme_aggregate_rule, None, "smallest value"),
    "max": Function("max", 1, 1, _extreme_aggregate_rule, None, "largest value"),
    "stddev_samp": Function(
        "stddev_samp", 1, 1, _statistic_rule("stddev_samp"), None, "sample standard deviation"
    ),
    "stddev_pop": Function(
        "stddev_pop", 1, 1, _statistic_rule("stddev_pop"), None, "population standard deviation"
    ),
    "var_samp": Function("var_samp", 1, 1, _statistic_rule("var_samp"), None, "sample variance"),
    "var_pop": Function("var_pop", 1, 1, _statistic_rule("var_pop"), None, "population variance"),
    "corr": Function("corr", 2, 2, _statistic_rule("corr"), None, "corr(y, x), Pearson"),
    "median": Function("median", 1, 1, _continuous_rule("median"), None, "quantile_cont(x, 0.5)"),
    "quantile_cont": Function(
        "quantile_cont",
        2,
        2,
        _continuous_rule("quantile_cont"),
        None,
        "quantile_cont(x, q), interpolated",
    ),
    "quantile_disc": Function(
        "quantile_disc", 2, 2, _discrete_rule, None, "quantile_disc(x, q), a value of x"
    ),
    "arg_min": Function(
        "arg_min", 2, 2, _arg_extreme_rule, None, "arg_min(arg, val): arg at the smallest val"
    ),
    "arg_max": Function(
        "arg_max", 2, 2, _arg_extreme_rule, None, "arg_max(arg, val): arg at the largest val"
    ),
}
