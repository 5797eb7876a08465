"""The one registry of operators and functions: name, arity, type rule, Arrow implementation.

The checker calls ``type_rule`` (argument types and nodes -> ``Signature``); the evaluator
calls ``implement`` with the evaluated arguments, their types and that signature. Every
implementation is written once over ``pyarrow.compute`` calls, so it runs on Arrow data
and also builds a ``pc.Expression`` for pushed-down filters (see ``_kernels``).

Each rule reproduces DuckDB 2.0 (checked with ``typeof()`` and by value in the tests):

* ``+ - * %`` on integers keep the promoted integer type and raise on overflow; unsigned
  stay unsigned (``u8 + u8`` is u8, as in DuckDB); ``%`` keeps the dividend's sign and
  integer ``% 0`` raises; float ``%`` is C's ``fmod``.
* ``/`` always divides as floats (f32 only when an operand is f32 and none is f64):
  ``7 / 2 = 3.5``, ``1 / 0 = inf``, ``0 / 0 = nan``.
* Arithmetic on decimals is refused (CAST to f64): DuckDB's decimal result types differ
  from Arrow's. Decimals compare with numbers, exactly.
"""

from __future__ import annotations

import datetime as dt
import decimal as _decimal
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from platform_core.types import BOOL8, F32, F64, I32, I64, UTF8, FieldType, decimal, timestamp

from . import _strings as strings
from ._casts import cast_problem, explicit_cast
from ._kernels import (
    OutOfRangeError,
    Value,
    and_,
    cast,
    coerce,
    compare,
    eager_only,
    fill,
    is_lazy,
    lift,
    not_,
    null,
    or_,
    xc,
)
from ._types import (
    MaybeType,
    TypeProblem,
    arrow_type,
    common_type,
    compare_type,
    is_comparable,
    is_decimal,
    is_float,
    is_int,
    is_numeric,
    is_string,
    is_temporal,
    is_unsigned,
    promote_numeric,
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
]


@dataclass(frozen=True, slots=True)
class Signature:
    """What a type rule decided for one call.

    ``args``: the type each argument is brought to (None: left as it is); ``result``: the
    result type (None only for a NULL-only call); ``params``: constants read from literal
    arguments (round digits, substr bounds); ``nan``: per argument, whether it can hold
    NaN (so comparisons apply DuckDB's NaN order only where needed).
    """

    args: tuple[MaybeType, ...]
    result: MaybeType
    params: tuple[object, ...] = ()
    nan: tuple[bool, ...] = ()


TypeRule: TypeAlias = Callable[[Sequence[MaybeType], Sequence[Expr]], Signature]
Implementation: TypeAlias = Callable[[Sequence[Value], Sequence[MaybeType], Signature], Value]


@dataclass(frozen=True, slots=True)
class Function:
    """One entry of the registry. ``implement`` is None for calls the evaluator handles
    itself (``coalesce`` evaluates its arguments lazily; aggregates are not evaluated)."""

    name: str
    min_args: int
    max_args: int | None
    type_rule: TypeRule
    implement: Implementation | None
    summary: str
    constant_null: str = "any"
    """DuckDB's binder turns a call with a constant NULL argument into NULL without
    evaluating the other arguments ("any"); comparisons do so for a NULL on the left only
    ("left"); functions that look at NULLs themselves never do ("none")."""

    def arity_text(self) -> str:
        """``1``, ``2 or 3``, ``at least 1`` for messages."""
        if self.max_args is None:
            return f"at least {self.min_args}"
        if self.max_args == self.min_args:
            return str(self.min_args)
        return f"{self.min_args} to {self.max_args}"


# --- helpers --------------------------------------------------------------------------------


def may_be_nan(node: Expr, source: MaybeType) -> bool:
    """Whether ``node`` (of type ``source``) can evaluate to NaN."""
    if not is_float(source):
        return False
    if isinstance(node, Literal):
        return isinstance(node.value, float) and math.isnan(node.value)
    return True


_RANGES: Final = {
    "u8": range(2**8),
    "u16": range(2**16),
    "u32": range(2**32),
    "i32": range(-(2**31), 2**31),
    "i64": range(-(2**63), 2**63),
}


def bare_integer(node: Expr) -> int | None:
    """The value of an integer literal of its natural type (i32, else i64), else None.

    DuckDB types such a literal (written bare in SQL) by its context: ``u8_col + 1`` is
    u8 arithmetic, ``u8_col + 300`` i32. Literals of any other type are not adaptable.
    """
    if not isinstance(node, Literal) or isinstance(node.value, bool):
        return None
    value = node.value
    if not isinstance(value, int) or node.type is None:
        return None
    natural = "i32" if value in _RANGES["i32"] else "i64"
    return value if node.type.kind == natural else None


def adapt(target: MaybeType, value: int) -> bool:
    """Whether a bare integer literal ``value`` takes the integer type ``target``."""
    return target is not None and target.kind in _RANGES and value in _RANGES[target.kind]


def adapted_common_type(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> MaybeType:
    """``common_type`` where bare integer literals take the type of the other values when
    they fit it (DuckDB: ``coalesce(u8_col, 1)`` is u8, ``greatest(u8_col, 300)`` i32)."""
    literals = [bare_integer(n) for n in nodes]
    others = [t for t, v in zip(types, literals, strict=True) if v is None]
    base = common_type(others)
    if base is None or not is_int(base):
        return common_type(types)
    rest = [t for t, v in zip(types, literals, strict=True) if v is not None and not adapt(base, v)]
    return common_type([base, *rest])


def literal_scalar(value: object, type: MaybeType) -> pa.Scalar:
    """The Arrow scalar of a literal; TypeProblem when the value does not fit its type."""
    if type is None:
        if value is not None:
            raise TypeProblem(f"literal {value!r} has no type")
        return pa.scalar(None, pa.null())
    to = arrow_type(type)
    if value is None:
        return pa.scalar(None, to)
    if not _value_fits_kind(value, type):
        raise TypeProblem(f"literal {value!r} is not a {type} value")
    try:
        if type.kind == "decimal":
            return pa.scalar(_decimal.Decimal(str(value)), to)
        return pa.scalar(value, to)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError) as exc:
        raise TypeProblem(f"literal {value!r} does not fit {type}: {exc}") from None


def _value_fits_kind(value: object, type: FieldType) -> bool:
    if isinstance(value, bool):
        return type.kind == "bool8"
    if isinstance(value, int):
        return is_int(type) or is_float(type) or is_decimal(type)
    if isinstance(value, float):
        return is_float(type) or is_decimal(type)
    if isinstance(value, str):
        if not is_string(type):
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dt.datetime):
        return type.kind == "timestamp"
    if isinstance(value, dt.date):
        return type.kind == "date"
    return False


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise TypeProblem(message)


def _show(t: MaybeType) -> str:
    return "NULL" if t is None else str(t)


def _numeric_pair(op: str, types: Sequence[MaybeType]) -> tuple[FieldType, FieldType] | None:
    a, b = types
    for t in (a, b):
        _require(
            t is None or is_numeric(t),
            f"cannot apply {op} to {_show(a)} and {_show(b)} (it takes numbers)",
        )
    if a is None and b is None:
        return None
    a2 = a if a is not None else b
    b2 = b if b is not None else a
    assert a2 is not None
    assert b2 is not None
    return a2, b2


def _arith_rule(op: str) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        pair = _numeric_pair(op, types)
        if pair is None:
            return Signature((I64, I64), I64)
        _require(
            not (is_decimal(pair[0]) or is_decimal(pair[1])),
            f"arithmetic {op} on decimals ({_show(types[0])}, {_show(types[1])}) is not "
            "supported: DuckDB's decimal result types differ from Arrow's; "
            "CAST the decimal to f64 first",
        )
        result = promote_numeric(*pair)
        a_value, b_value = (bare_integer(n) for n in nodes)
        if a_value is not None and b_value is None and adapt(types[1], a_value):
            result = pair[1]  # DuckDB: u8_col + 1 stays u8 (and overflows as u8)
        elif b_value is not None and a_value is None and adapt(types[0], b_value):
            result = pair[0]
        return Signature((result, result), result)

    return rule


def _divide_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    pair = _numeric_pair("/", types)
    if pair is None:
        return Signature((F64, F64), F64)
    result = F32 if F32 in pair and F64 not in pair else F64
    return Signature((result, result), result)


def _cast_args(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> list[Value]:
    out = []
    for value, source, target in zip(values, types, sig.args, strict=True):
        out.append(value if target is None else coerce(value, source, target))
    return out


_CHECKED: Final = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked}
_FLOAT: Final = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}


def _arith_impl(op: str) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        a, b = lift(*_cast_args(values, types, sig))
        if op == "%":
            return xc.remainder_checked(a, b) if is_int(sig.result) else xc.remainder(a, b)
        return (_CHECKED if is_int(sig.result) else _FLOAT)[op](a, b)

    return implement


def _divide_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    a, b = lift(*_cast_args(values, types, sig))
    return xc.divide(a, b)


def _compare_rule(op: str) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        a, b = types
        try:
            target = compare_type(a, b)
        except TypeProblem:
            raise TypeProblem(f"cannot compare {_show(a)} with {_show(b)}") from None
        if op not in ("=", "<>"):
            _require(is_comparable(target), f"values of type {target} have no order")
        nan = tuple(may_be_nan(n, t) for n, t in zip(nodes, types, strict=True))
        return Signature((target, target), BOOL8, nan=nan)

    return rule


def _compare_impl(op: str) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        a, b = _cast_args(values, types, sig)
        return compare(op, a, b, a_nan=sig.nan[0], b_nan=sig.nan[1])

    return implement


def _logic_rule(op: str) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        for t in types:
            _require(
                t is None or t == BOOL8,
                f"{op.upper()} takes booleans, got {' and '.join(_show(t) for t in types)}",
            )
        return Signature(tuple(BOOL8 for _ in types), BOOL8)

    return rule


def _logic_impl(op: str) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        args = _cast_args(values, types, sig)
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
        _require(problem is None, f"cannot apply || to {_show(t)}: {problem}")
    return Signature((UTF8, UTF8), UTF8)


def _as_text(value: Value, source: MaybeType) -> Value:
    if source is None or is_string(source):
        return coerce(value, source, UTF8)
    return explicit_cast(value, source, UTF8)


def _concat_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    a, b = lift(*(_as_text(v, t) for v, t in zip(values, types, strict=True)))
    return xc.binary_join_element_wise(a, b, "")


def _negate_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    _require(t is None or is_numeric(t), f"cannot negate {_show(t)} (it takes a number)")
    result = I64 if t is None else t
    return Signature((result,), result)


def _negate_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    (x,) = _cast_args(values, types, sig)
    t = sig.result
    if is_unsigned(t):  # DuckDB: -x of an unsigned type is an error unless x is 0
        assert t is not None
        return cast(xc.negate_checked(cast(x, pa.int64())), arrow_type(t))
    return xc.negate_checked(x) if is_int(t) else xc.negate(x)


OPERATORS: Final[Mapping[str, Function]] = {
    **{
        op: Function(op, 2, 2, _arith_rule(op), _arith_impl(op), f"a {op} b")
        for op in ("+", "-", "*", "%")
    },
    "/": Function("/", 2, 2, _divide_rule, _divide_impl, "a / b, always as floats"),
    **{
        op: Function(op, 2, 2, _compare_rule(op), _compare_impl(op), f"a {op} b", "left")
        for op in ("=", "<>", "<", "<=", ">", ">=")
    },
    "and": Function("and", 2, 2, _logic_rule("and"), _logic_impl("and"), "a AND b", "none"),
    "or": Function("or", 2, 2, _logic_rule("or"), _logic_impl("or"), "a OR b", "none"),
    "||": Function("||", 2, 2, _concat_rule, _concat_impl, "text concatenation"),
    "neg": Function("neg", 1, 1, _negate_rule, _negate_impl, "-x"),
    "not": Function("not", 1, 1, _logic_rule("not"), _logic_impl("not"), "NOT x", "none"),
}


# --- scalar functions -------------------------------------------------------------------------


def _text_rule(result: FieldType) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        (t,) = types
        _require(t is None or is_string(t), f"it takes utf8, got {_show(t)}")
        return Signature((UTF8,), result)

    return rule


def _unary_impl(kernel: Callable[[Value], Value]) -> Implementation:
    """Cast the one argument as the signature says, then apply ``kernel``."""

    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        (x,) = _cast_args(values, types, sig)
        return kernel(x)

    return implement


def _length(x: Value) -> Value:
    return cast(pc.utf8_length(x), pa.int64())


def _int_constant(node: Expr, what: str) -> int | None:
    """The integer of a literal argument (``-3`` too); None for NULL; TypeProblem else."""
    if isinstance(node, Unary) and node.op == "neg" and isinstance(node.operand, Literal):
        inner = _int_constant(node.operand, what)
        return None if inner is None else -inner
    if isinstance(node, Literal) and node.value is None:
        return None
    if (
        isinstance(node, Literal)
        and isinstance(node.value, int)
        and not isinstance(node.value, bool)
    ):
        return node.value
    raise TypeProblem(f"{what} must be an integer literal (pyarrow needs it before the data)")


def _substr_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    _require(types[0] is None or is_string(types[0]), f"it takes utf8, got {_show(types[0])}")
    start = _int_constant(nodes[1], "the start of substr")
    length = _int_constant(nodes[2], "the length of substr") if len(nodes) > 2 else None
    for name, v in (("offset", start), ("length", length)):
        _require(
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


def _abs_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    _require(t is None or is_numeric(t), f"it takes a number, got {_show(t)}")
    result = I64 if t is None else t
    return Signature((result,), result)


def _abs_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    (x,) = _cast_args(values, types, sig)
    return xc.abs_checked(x) if is_int(sig.result) or is_decimal(sig.result) else xc.abs(x)


def _round_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    t = types[0]
    _require(t is None or is_numeric(t), f"it takes a number, got {_show(t)}")
    _require(
        not is_decimal(t),
        f"round of a decimal ({t}) is not supported; CAST it to f64 first",
    )
    digits = _int_constant(nodes[1], "the digits of round") if len(nodes) > 1 else 0
    if t is None:
        result = I64
    elif is_int(t):
        result = t if t in (I32, I64) else I64
    else:
        result = t
    args: tuple[MaybeType, ...] = (result, *(None for _ in nodes[1:]))
    return Signature(args, result, params=(digits,))


_HALF_AWAY: Final = "half_towards_infinity"  # Arrow's name for half away from zero
_MAX_POW10: Final = {"i32": 9, "i64": 18}


def _round_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    x = coerce(values[0], types[0], sig.result) if sig.result is not None else values[0]
    (digits,) = sig.params
    if digits is None:
        return null(arrow_type(sig.result or I64), lazy=is_lazy(x))
    assert isinstance(digits, int)
    assert sig.result is not None
    if is_int(sig.result):
        return _round_int(x, digits, sig.result)
    return _round_float(x, digits, sig.result)


def _round_int(x: Value, digits: int, t: FieldType) -> Value:
    """DuckDB: ``round(int, n)``: n >= 0 changes nothing; otherwise half away from zero to
    a multiple of 10**-n, raising when that overflows (0 once 10**-n passes the type)."""
    if digits >= 0:
        return x
    k = -digits
    if k <= _MAX_POW10[t.kind]:
        return xc.round(x, digits, _HALF_AWAY)
    zero = xc.multiply(x, 0)
    if t.kind == "i64" and k == _MAX_POW10["i64"] + 1:
        eager_only(x, "round(i64, -19)")
        if xc.any(xc.greater_equal(xc.abs(cast(x, pa.float64())), 5e18)).as_py():
            raise OutOfRangeError("Out of Range Error: Overflow in ROUND of integer")
    return zero


def _round_float(x: Value, digits: int, t: FieldType) -> Value:
    """DuckDB's float rounding, in f64: ``round(x * 10**n) / 10**n`` (half away from
    zero) for n > 0, giving back ``x`` when that is not finite; ``round(x / 10**-n) *
    10**-n`` for n < 0, giving back ``x`` when that overflows and 0 when it is NaN (10**-n
    itself overflowed); non-finite inputs come back unchanged."""
    if digits == 0:
        return xc.round(x, 0, _HALF_AWAY)
    wide = cast(x, pa.float64())
    scale = math.inf if abs(digits) > 308 else 10.0 ** abs(digits)
    if digits > 0:
        rounded = xc.divide(xc.round(xc.multiply(wide, scale), 0, _HALF_AWAY), scale)
        result = xc.if_else(xc.is_finite(rounded), rounded, wide)
    else:
        rounded = xc.multiply(xc.round(xc.divide(wide, scale), 0, _HALF_AWAY), scale)
        kept = xc.if_else(xc.is_nan(rounded), 0.0, xc.if_else(xc.is_inf(rounded), wide, rounded))
        result = xc.if_else(xc.is_finite(wide), kept, wide)
    return cast(result, arrow_type(t), safe=False)


def _floor_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    _require(t is None or is_numeric(t), f"it takes a number, got {_show(t)}")
    _require(not is_decimal(t), f"floor/ceil of a decimal ({t}) is not supported; CAST to f64")
    result = t if is_float(t) else F64  # DuckDB: floor of an integer is a DOUBLE
    return Signature((result,), result)


def _variadic_rule(name: str, *, ordered: bool) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        try:
            result = adapted_common_type(types, nodes)
        except TypeProblem as exc:
            raise TypeProblem(f"{name} arguments must share a type: {exc}") from None
        if ordered:
            _require(is_comparable(result), f"values of type {result} have no order")
        nan = tuple(may_be_nan(n, t) for n, t in zip(nodes, types, strict=True))
        return Signature(tuple(result for _ in types), result, nan=nan)

    return rule


def _extreme_impl(greatest: bool) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        if sig.result is None:
            return values[0]
        args = _cast_args(values, types, sig)
        if sig.result == BOOL8:
            args = [cast(a, pa.uint8()) for a in args]
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
        return cast(result, pa.bool_()) if sig.result == BOOL8 else result

    return implement


def _nullif_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    a, b = types
    try:
        target = compare_type(a, b)
    except TypeProblem:
        raise TypeProblem(f"cannot compare {_show(a)} with {_show(b)}") from None
    nan = tuple(may_be_nan(n, t) for n, t in zip(nodes, types, strict=True))
    result = UTF8 if a is not None and is_string(a) else a
    return Signature((target, target), result, nan=nan)


def _nullif_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    """DuckDB's ``nullif(a, b)``: ``CASE WHEN a = b THEN NULL ELSE a END``, including
    the CASE shortcuts (all rows equal: a constant NULL; none: ``a`` as it is)."""
    if sig.result is None:
        return values[0]
    a, b = _cast_args(values, types, sig)
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
        _require(
            t is not None,
            f"{name}(NULL) has no argument type (DuckDB refuses it too); CAST the NULL to date",
        )
        _require(is_temporal(t), f"it takes a date or timestamp, got {_show(t)}")
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
        "lower", 1, 1, _text_rule(UTF8), _unary_impl(strings.duckdb_lower), "lower case"
    ),
    "upper": Function(
        "upper", 1, 1, _text_rule(UTF8), _unary_impl(strings.duckdb_upper), "upper case"
    ),
    "length": Function("length", 1, 1, _text_rule(I64), _unary_impl(_length), "code points"),
    "trim": Function(
        "trim", 1, 1, _text_rule(UTF8), _unary_impl(strings.trim), "strip space separators"
    ),
    "substr": Function(
        "substr", 2, 3, _substr_rule, _substr_impl, "substr(s, start[, length]), 1-based"
    ),
    "abs": Function("abs", 1, 1, _abs_rule, _abs_impl, "absolute value; overflow raises"),
    "round": Function(
        "round", 1, 2, _round_rule, _round_impl, "round(x[, digits]), half away from zero"
    ),
    "floor": Function("floor", 1, 1, _floor_rule, _unary_impl(pc.floor), "round down"),
    "ceil": Function("ceil", 1, 1, _floor_rule, _unary_impl(pc.ceil), "round up"),
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
    _require(is_comparable(t), f"values of type {t} have no order")
    return Signature((t,), UTF8 if t is not None and is_string(t) else t)


AGGREGATE_FUNCTIONS: Final[Mapping[str, Function]] = {
    "count": Function("count", 0, 1, _count_rule, None, "count(*) rows, count(x) non-NULL x"),
    "sum": Function("sum", 1, 1, _sum_rule, None, "sum; integers sum to decimal(38, 0)"),
    "avg": Function("avg", 1, 1, _avg_rule, None, "mean as f64"),
    "min": Function("min", 1, 1, _extreme_aggregate_rule, None, "smallest value"),
    "max": Function("max", 1, 1, _extreme_aggregate_rule, None, "largest value"),
}
