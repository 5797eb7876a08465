"""Arithmetic with DuckDB's semantics: ``+ - * / %``, unary minus, abs, round, floor, ceil.

* ``+ - * %`` on integers keep the promoted integer type and raise on overflow (Arrow's
  ``_checked`` kernels); unsigned stay unsigned (``u8 + u8`` is u8, as in DuckDB); ``%``
  keeps the dividend's sign and integer ``% 0`` raises; float ``%`` is C's ``fmod``.
* ``/`` always divides as floats (f32 only when an operand is f32 and none is f64):
  ``7 / 2 = 3.5``, ``1 / 0 = inf``, ``0 / 0 = nan``.
* ``+ - * %`` of a decimal(38, 0) (an integer SUM: DuckDB's HUGEINT as Arrow has it) with an
  integer or another decimal(38, 0) are exact decimal(38, 0), as in DuckDB, and raise past 38
  digits ("Overflow in addition of DECIMAL(38)"). A decimal with a float computes in that
  float, and ``pow`` takes decimals as f64, as in DuckDB. Other arithmetic on decimals is
  refused (CAST to f64): DuckDB's decimal result types differ from Arrow's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from platform_core.types import F32, F64, I32, I64, FieldType, decimal

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
        if _wide_integers(pair):
            return Signature((_WIDE, _WIDE), _WIDE)
        if (is_decimal(pair[0]) or is_decimal(pair[1])) and (
            is_float(pair[0]) or is_float(pair[1])
        ):  # DuckDB: a decimal (a HUGEINT) with a float computes in that float
            result = F64 if F64 in pair else F32
            return Signature((result, result), result)
        require(
            not (is_decimal(pair[0]) or is_decimal(pair[1])),
            f"arithmetic {op} on decimals ({show(types[0])}, {show(types[1])}) is not "
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


def divide_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    pair = _numeric_pair("/", types)
    if pair is None:
        return Signature((F64, F64), F64)
    result = F32 if F32 in pair and F64 not in pair else F64
    return Signature((result, result), result)


_WIDE: Final = decimal(38, 0)


def _wide_integers(pair: tuple[FieldType, FieldType]) -> bool:
    """A decimal(38, 0) with an integer or another decimal(38, 0): DuckDB's DECIMAL(38, 0)
    (and HUGEINT) arithmetic, exact in decimal(38, 0)."""
    return _WIDE in pair and all(t == _WIDE or is_int(t) for t in pair)


def _wide_arith(op: str, a: Value, b: Value) -> Value:
    """``a op b`` of two decimal128(38, 0) values, exact: computed in decimal256 (Arrow has no
    room for the 39 or 77 digits its decimal128 kernels would type the result with), then
    checked back into 38 digits (an Arrow "does not fit" error, an OutOfRangeError)."""
    eager_only(a, f"decimal(38, 0) {op}")
    eager_only(b, f"decimal(38, 0) {op}")
    word = {"+": "addition", "-": "subtraction", "*": "multiplication"}[op]
    overflow = f"Overflow in {word} of DECIMAL(38)"  # DuckDB's words; Arrow's error type
    if op == "*":
        # operands at the digits they hold, so the product's precision (their sum plus one)
        # stays within decimal256's 76
        da, db = _digits(a), _digits(b)
        if da + db > 75:  # a product of at least 74 digits: far past 38
            raise pa.ArrowInvalid(overflow)
        out = pc.multiply_checked(
            cast(a, pa.decimal256(max(da, 1), 0)), cast(b, pa.decimal256(max(db, 1), 0))
        )
    else:
        wide = pa.decimal256(38, 0)
        out = _CHECKED[op](cast(a, wide), cast(b, wide))
    try:
        return cast(out, pa.decimal128(38, 0))
    except pa.ArrowInvalid:
        raise pa.ArrowInvalid(overflow) from None


def _wide_remainder(a: Value, b: Value) -> Value:
    """``a % b`` of two decimal128(38, 0) values, exact, as DuckDB's HUGEINT ``%``: the sign
    of the dividend, a zero divisor an error. ``a - trunc(a / b) * b`` in decimal256, each
    operand at the digits it holds (Arrow's decimal division truncates toward zero)."""
    eager_only(a, "decimal(38, 0) %")
    eager_only(b, "decimal(38, 0) %")
    zero = pc.equal(b, pa.scalar(0, b.type))
    if zero.as_py() if isinstance(zero, pa.Scalar) else pc.any(zero).as_py():
        raise pa.ArrowInvalid("divide by zero")  # DuckDB: "Division by zero"
    da, db = _digits(a), _digits(b)
    wa, wb = cast(a, pa.decimal256(da, 0)), cast(b, pa.decimal256(db, 0))
    quotient = pc.divide(wa, wb)  # scale max(4, db + 1): exact digits, then truncated
    whole = cast(
        quotient, pa.decimal256(quotient.type.precision - quotient.type.scale, 0), safe=False
    )
    dq = _digits(whole)
    if dq + db + 1 > 76:  # the product's type would pass decimal256's 76 digits
        raise pa.ArrowInvalid(
            "% of decimal(38, 0) values this large does not fit decimal256; CAST them to f64"
        )
    product = pc.multiply_checked(cast(whole, pa.decimal256(max(dq, 1), 0)), wb)
    return cast(pc.subtract_checked(wa, product), pa.decimal128(38, 0))


def _digits(value: Value) -> int:
    """Decimal digits of the largest absolute value (1 for none)."""
    biggest = value.as_py() if isinstance(value, pa.Scalar) else pc.max(pc.abs(value)).as_py()
    return len(str(abs(int(biggest)))) if biggest is not None else 1


_CHECKED: Final = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked}
_FLOAT: Final = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}


def arith_impl(op: str) -> Implementation:
    def implement(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
        a, b = lift(*cast_args(values, types, sig))
        if sig.result == _WIDE:
            return _wide_remainder(a, b) if op == "%" else _wide_arith(op, a, b)
        if op == "%":
            return xc.remainder_checked(a, b) if is_int(sig.result) else xc.remainder(a, b)
        if sig.result == _WIDE:
            return _wide_arith(op, a, b)
        return (_CHECKED if is_int(sig.result) else _FLOAT)[op](a, b)

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
    require(
        not is_decimal(t),
        f"round of a decimal ({t}) is not supported; CAST it to f64 first",
    )
    digits = int_constant(nodes[1], "the digits of round") if len(nodes) > 1 else 0
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


def round_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
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
    require(not is_decimal(t), f"floor/ceil of a decimal ({t}) is not supported; CAST to f64")
    result = t if is_float(t) else F64  # DuckDB: floor of an integer is a DOUBLE
    return Signature((result,), result)


def pow_rule(types: Sequence[MaybeType], nodes: Sequence[Expr]) -> Signature:
    """``pow(x, y)`` / ``power(x, y)``: DuckDB's one overload, DOUBLE ** DOUBLE."""
    for t in types:
        require(t is None or is_numeric(t), f"it takes numbers, got {show(t)}")
    return Signature((F64, F64), F64)


def pow_impl(values: Sequence[Value], types: Sequence[MaybeType], sig: Signature) -> Value:
    """C's ``pow`` on doubles, as DuckDB: pow(0, -1) = inf, pow(-8, 1/3) = nan, no error."""
    x, y = lift(*cast_args(values, types, sig))
    return xc.power(x, y)
