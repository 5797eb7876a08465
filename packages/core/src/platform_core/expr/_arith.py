"""Arithmetic with DuckDB's semantics: ``+ - * / %``, unary minus, abs, round, floor, ceil.

* ``+ - * %`` on integers keep the promoted integer type and raise on overflow (Arrow's
  ``_checked`` kernels); unsigned stay unsigned (``u8 + u8`` is u8, as in DuckDB); ``%``
  keeps the dividend's sign and integer ``% 0`` raises; float ``%`` is C's ``fmod``.
* ``/`` always divides as floats (f32 only when an operand is f32 and none is f64):
  ``7 / 2 = 3.5``, ``1 / 0 = inf``, ``0 / 0 = nan``. Decimals divide as DOUBLE, as in DuckDB.
* ``+ - * %`` with a decimal operand (the other a decimal or an integer, which counts as
  ``decimal(digits, 0)``) are DuckDB's decimal arithmetic: DuckDB's result types (``+ -``
  ``decimal(max(p - s) + max(s) + 1, max(s))``, ``*`` ``decimal(p1 + p2, s1 + s2)`` capped
  at 18 or 38, ``%`` the combined type or DOUBLE past 38 digits), exact values, and DuckDB's
  Out of Range error past the result's precision; ``round``/``floor``/``ceil`` of a decimal
  give DuckDB's decimal types. The rules and kernels are in ``_decimal``. A decimal with a
  float computes in that float, and ``pow`` takes decimals as f64, as in DuckDB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from platform_core.types import F32, F64, I32, I64, FieldType, decimal

from . import _decimal as dec
from ._kernels import (
    OutOfRangeError,
    Value,
    cast,
    coerce,
    eager_only,
    is_lazy,
    lift,
    null,
    xc,
)
from ._signature import (
    Implementation,
    Signature,
    TypeRule,
    adapt,
    bare_integer,
    cast_args,
    int_constant,
    require,
    show,
)
from ._types import (
    MaybeType,
    arrow_type,
    is_decimal,
    is_float,
    is_int,
    is_numeric,
    is_unsigned,
    promote_numeric,
)
from .nodes import Expr

__all__ = [
    "abs_impl",
    "abs_rule",
    "arith_impl",
    "arith_rule",
    "ceil_floor_impl",
    "divide_impl",
    "divide_rule",
    "floor_rule",
    "negate_impl",
    "negate_rule",
    "round_impl",
    "round_rule",
]


def _numeric_pair(op: str, types: Sequence[MaybeType]) -> tuple[FieldType, FieldType] | None:
    a, b = types
    for t in (a, b):
        require(
            t is None or is_numeric(t),
            f"cannot apply {op} to {show(a)} and {show(b)} (it takes numbers)",
        )
    if a is None and b is None:
        return None
    a2 = a if a is not None else b
    b2 = b if b is not None else a
    assert a2 is not None
    assert b2 is not None
    return a2, b2


def arith_rule(op: str) -> TypeRule:
    def rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
        pair = _numeric_pair(op, types)
        if pair is None:
            return Signature((I64, I64), I64)
        if (is_decimal(pair[0]) or is_decimal(pair[1])) and (
            is_float(pair[0]) or is_float(pair[1])
        ):  # DuckDB: a decimal with a float computes in that float
            result = F64 if F64 in pair else F32
            return Signature((result, result), result)
        if is_decimal(pair[0]) or is_decimal(pair[1]):
            return _decimal_signature(op, pair)
        result = promote_numeric(*pair)
        a_value, b_value = (bare_integer(n) for n in nodes)
        if a_value is not None and b_value is None and adapt(types[1], a_value):
            result = pair[1]  # DuckDB: u8_col + 1 stays u8 (and overflows as u8)
        elif b_value is not None and a_value is None and adapt(types[0], b_value):
            result = pair[0]
        return Signature((result, result), result)

    return rule


def _decimal_signature(op: str, pair: tuple[FieldType, FieldType]) -> Signature:
    """DuckDB's decimal arithmetic (an integer operand is decimal(digits, 0)): ``+ -``
    and ``%`` bring both operands to one type first; ``*`` keeps them as they are."""
    a, b = pair
    if op == "*":
        return Signature((dec.as_decimal(a), dec.as_decimal(b)), dec.mul_type(a, b))
    if op == "%" and dec.combined_type(a, b).scale != max(_scale(a), _scale(b)):
        # DuckDB: when the combined type would cut the scale (past 38 digits), % is DOUBLE
        return Signature((F64, F64), F64)
    result = dec.add_type(a, b) if op in ("+", "-") else dec.combined_type(a, b)
    return Signature((result, result), result)


def _scale(t: FieldType) -> int:
    return (t.scale or 0) if is_decimal(t) else 0


def _no_zero_divisor(a: Value, b: Value) -> None:
    """Raise as DuckDB does for a zero divisor of decimals' ``%`` computed in DOUBLE (where
    a DOUBLE's own ``% 0`` is NaN): on any row whose dividend is not NULL, whatever the rest
    of the expression makes of it (found by the decimal property test: ``a + (0.05 % h)``
    with ``a`` NULL and ``h`` 0 raises; ``a % floor(i)`` with ``a`` NULL and ``i`` 0 is NULL)."""
    if pc.any(pc.and_kleene(pc.equal(b, 0), pc.is_valid(a))).as_py():
        raise pa.ArrowInvalid("divide by zero")


def divide_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    pair = _numeric_pair("/", types)
    if pair is None:
        return Signature((F64, F64), F64)
    result = F32 if F32 in pair and F64 not in pair else F64
    return Signature((result, result), result)


_CHECKED: Final = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked}
_FLOAT: Final = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}


def arith_impl(op: str) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        a, b = lift(*cast_args(values, types, sig))
        result = sig.result
        if is_decimal(result):
            assert result is not None
            if op == "*":
                ta, tb = sig.args
                assert ta is not None
                assert tb is not None
                return dec.decimal_multiply(a, b, ta, tb, result)
            if op == "%":
                return dec.decimal_remainder(a, b, result)
            return dec.decimal_add(op, a, b, result)
        if op == "%":
            if is_int(result):
                return xc.remainder_checked(a, b)
            if any(is_decimal(t) for t in types) and not any(is_float(t) for t in types):
                # decimals' % in DOUBLE (past 38 digits): DuckDB raises; with a float operand
                # it is a DOUBLE's own %, NaN for a zero divisor
                _no_zero_divisor(a, b)
            return xc.remainder(a, b)
        return (_CHECKED if is_int(result) else _FLOAT)[op](a, b)

    return implement


def divide_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    a, b = lift(*cast_args(values, types, sig))
    return xc.divide(a, b)


def negate_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    require(t is None or is_numeric(t), f"cannot negate {show(t)} (it takes a number)")
    result = I64 if t is None else t
    return Signature((result,), result)


def negate_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    (x,) = cast_args(values, types, sig)
    t = sig.result
    if is_unsigned(t):  # DuckDB: -x of an unsigned type is an error unless x is 0
        assert t is not None
        return cast(xc.negate_checked(cast(x, pa.int64())), arrow_type(t))
    return xc.negate_checked(x) if is_int(t) else xc.negate(x)


def abs_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    require(t is None or is_numeric(t), f"it takes a number, got {show(t)}")
    result = I64 if t is None else t
    return Signature((result,), result)


def abs_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    (x,) = cast_args(values, types, sig)
    return xc.abs_checked(x) if is_int(sig.result) or is_decimal(sig.result) else xc.abs(x)


def round_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    t = types[0]
    require(t is None or is_numeric(t), f"it takes a number, got {show(t)}")
    digits = int_constant(nodes[1], "the digits of round") if len(nodes) > 1 else 0
    if t is None:
        result = I64
    elif is_int(t):
        result = t if t in (I32, I64) else I64
    elif is_decimal(t):
        args: tuple[MaybeType, ...] = (t, *(None for _ in nodes[1:]))
        if digits is None:
            return Signature(args, t, params=(digits,))
        return Signature(args, dec.round_type(t, digits), params=(digits,))
    else:
        result = t
    args = (result, *(None for _ in nodes[1:]))
    return Signature(args, result, params=(digits,))


_HALF_AWAY: Final = "half_towards_infinity"  # Arrow's name for half away from zero
_MAX_POW10: Final = {"i32": 9, "i64": 18}


def round_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    target = sig.args[0]
    x = coerce(values[0], types[0], target) if target is not None else values[0]
    (digits,) = sig.params
    if digits is None:
        return null(arrow_type(sig.result or I64), lazy=is_lazy(x))
    assert isinstance(digits, int)
    assert sig.result is not None
    if is_decimal(sig.result):
        source = types[0] if types[0] is not None else sig.args[0]
        assert source is not None
        return dec.decimal_round(x, source, digits, sig.result)
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
        half = 5 * 10**18  # rounds away to 10**19, beyond i64
        if xc.any(xc.or_(xc.greater_equal(x, half), xc.less_equal(x, -half))).as_py():
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


def floor_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    (t,) = types
    require(t is None or is_numeric(t), f"it takes a number, got {show(t)}")
    if is_decimal(t):  # DuckDB: decimal(p, 0)
        assert t is not None
        return Signature((t,), decimal(t.precision or 0, 0))
    result = t if is_float(t) else F64  # DuckDB: floor of an integer is a DOUBLE
    return Signature((result,), result)


def ceil_floor_impl(up: bool) -> Implementation:
    """``ceil``/``floor``: Arrow's kernel for floats, exact for decimals."""

    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        (x,) = cast_args(values, types, sig)
        if is_decimal(sig.result):
            source = sig.args[0]
            assert source is not None
            return dec.ceil_floor(x, source, up)
        return (pc.ceil if up else pc.floor)(x)

    return implement


def pow_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    """``pow(x, y)`` / ``power(x, y)``: DuckDB's one overload, DOUBLE ** DOUBLE."""
    for t in types:
        require(t is None or is_numeric(t), f"it takes numbers, got {show(t)}")
    return Signature((F64, F64), F64)


def pow_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    """C's ``pow`` on doubles, as DuckDB: pow(0, -1) = inf, pow(-8, 1/3) = nan, no error."""
    x, y = lift(*cast_args(values, types, sig))
    return xc.power(x, y)
