"""Decimal arithmetic as DuckDB types and computes it: result types, exact kernels, checks.

Read off DuckDB 2.0 with ``typeof()`` over table columns (``tests/test_expr_decimal.py``).
An integer operand counts as ``decimal(digits, 0)`` (u8 3, u16 5, u32 and i32 10, i64 19).

* ``a + b``, ``a - b``: ``decimal(max(p1 - s1, p2 - s2) + max(s1, s2) + 1, max(s1, s2))``,
  the precision capped at 38; both operands are first cast to that type (as DuckDB does).
* ``a * b``: ``decimal(p1 + p2, s1 + s2)``; a precision past 18 with both operands within 18
  digits and a scale below 18 is capped at 18; past 38 at 38. A scale past 38 is refused.
* ``a % b`` and the common type of CASE/coalesce/greatest/least: DuckDB's combined type
  ``decimal(max(p - s) + max(s), max(s))``; past 38 digits the scale gives way
  (``decimal(38, 38 - max(p - s))``), so the wider-scale values are rounded into it.
* ``round(x, n)``: ``n >= s`` leaves x as it is; ``0 <= n < s`` gives ``decimal(p, n)``;
  ``n < 0`` gives ``decimal(p + 1 if s == 0 else p, 0)`` (at most 38), or, once ``10**-n``
  passes every value, ``decimal(p, 0)`` and the constant 0 (DuckDB's binder: NULL rows too). ``floor``/``ceil`` give ``decimal(p, 0)``.

Known gap: an integer SUM is decimal(38, 0) here (Arrow's form of DuckDB's HUGEINT). Where
DuckDB's own kernel has the HUGEINT, it combines it with a decimal of scale s as an integer
(``coalesce(a, sum(i))`` is decimal(38, 2) there for a decimal(15, 2) ``a``), while a
decimal(38, 0) gives decimal(38, 0) (the scale gives way); arithmetic (``+ - * %``) agrees.

Values are exact: computed in a type wide enough (decimal256 where decimal128 would not
hold Arrow's own result types), then cast to DuckDB's type checked, so a result past its
precision raises DuckDB's error ("Overflow in multiplication of DECIMAL(18)") as an
``OutOfRangeError`` naming the expression. Rounding is half away from zero, as DuckDB's.
"""

from __future__ import annotations

import decimal as _pydecimal
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from platform_core.types import FieldType, decimal

from ._kernels import Value, cast, const, eager_only, is_lazy, rescale_decimal, xc
from ._types import TypeProblem, combine_decimals, is_decimal, is_int

__all__ = [
    "INT_DIGITS",
    "MAX_DIGITS",
    "add_type",
    "as_decimal",
    "ceil_floor",
    "combined_type",
    "decimal_add",
    "decimal_multiply",
    "decimal_remainder",
    "decimal_round",
    "mul_type",
    "rescale",
    "round_type",
]

MAX_DIGITS: Final = 38
_INT64_DIGITS: Final = 18
INT_DIGITS: Final = {"u8": 3, "u16": 5, "u32": 10, "i32": 10, "i64": 19}
"""The DECIMAL(width, 0) DuckDB gives each integer type in decimal arithmetic."""
_HALF_AWAY: Final = "half_towards_infinity"  # Arrow's name for half away from zero


def as_decimal(t: FieldType) -> FieldType:
    """``t`` as the decimal DuckDB treats it as: a decimal as it is, an integer
    ``decimal(digits, 0)``."""
    if is_decimal(t):
        return t
    if is_int(t):
        return decimal(INT_DIGITS[t.kind], 0)
    raise TypeProblem(f"{t} is not a decimal or an integer")


def _ps(t: FieldType) -> tuple[int, int]:
    d = as_decimal(t)
    assert d.precision is not None
    assert d.scale is not None
    return d.precision, d.scale


def add_type(a: FieldType, b: FieldType) -> FieldType:
    """DuckDB's type of ``a + b`` / ``a - b`` (decimals, or a decimal and an integer)."""
    (p1, s1), (p2, s2) = _ps(a), _ps(b)
    scale = max(s1, s2)
    width = max(p1 - s1, p2 - s2) + scale + 1
    return decimal(min(width, MAX_DIGITS), scale)


def mul_type(a: FieldType, b: FieldType) -> FieldType:
    """DuckDB's type of ``a * b``; TypeProblem when the scale passes 38 (as DuckDB)."""
    (p1, s1), (p2, s2) = _ps(a), _ps(b)
    width, scale = p1 + p2, s1 + s2
    if scale > MAX_DIGITS:
        raise TypeProblem(
            f"multiplying {a} by {b} needs scale {scale}, past the 38 digits of a decimal "
            "(DuckDB refuses it too); CAST an operand to f64, or to a decimal with a smaller scale"
        )
    if width > _INT64_DIGITS and max(p1, p2) <= _INT64_DIGITS and scale < _INT64_DIGITS:
        width = _INT64_DIGITS  # DuckDB stays in 64 bits and checks for overflow
    return decimal(min(width, MAX_DIGITS), scale)


def combined_type(a: FieldType, b: FieldType) -> FieldType:
    """DuckDB's common type of two decimals (or a decimal and an integer): the integer
    digits of the wider, the scale of the finer; past 38 digits the scale gives way."""
    return combine_decimals(a, b)


def round_type(t: FieldType, digits: int) -> FieldType:
    """DuckDB's type of ``round(x, digits)`` for a decimal ``x``."""
    p, s = _ps(t)
    if digits >= s:
        return t
    if digits >= 0:
        return decimal(p, digits)
    if -digits > p - s:
        return decimal(p, 0)  # every value rounds to 0
    return decimal(min(p + 1 if s == 0 else p, MAX_DIGITS), 0)


# --- kernels --------------------------------------------------------------------------------


def _arrow(precision: int, scale: int) -> pa.DataType:
    """decimal128 up to 38 digits, decimal256 beyond (up to 76)."""
    if precision <= MAX_DIGITS:
        return pa.decimal128(precision, scale)
    return pa.decimal256(precision, scale)


def _fit(value: Value, result: FieldType, overflow: str) -> Value:
    """``value`` cast to ``result``, checked: past its precision raises ``overflow``."""
    to = result.to_arrow()
    if is_lazy(value):
        return cast(value, to)
    try:
        return cast(value, to)
    except pa.ArrowInvalid:
        raise pa.ArrowInvalid(overflow) from None


def rescale(value: Value, source: FieldType, target: FieldType) -> Value:
    """DuckDB's CAST to a decimal from a decimal or an integer (see ``rescale_decimal``)."""
    if is_int(source):
        return cast(value, target.to_arrow())
    return rescale_decimal(value, source, target)


def decimal_add(op: str, a: Value, b: Value, result: FieldType) -> Value:
    """``a + b`` or ``a - b`` of two values already of type ``result`` (DuckDB casts both
    operands to it), checked against its precision."""
    assert result.precision is not None
    assert result.scale is not None
    p, s = result.precision, result.scale
    wide = pa.decimal128(p, s) if p < MAX_DIGITS else pa.decimal256(p, s)  # Arrow: p + 1
    a, b = cast(a, wide), cast(b, wide)
    out = (xc.add_checked if op == "+" else xc.subtract_checked)(a, b)
    word = "addition" if op == "+" else "subtraction"
    return _fit(out, result, f"Overflow in {word} of DECIMAL({result.precision})")


def decimal_multiply(a: Value, b: Value, ta: FieldType, tb: FieldType, result: FieldType) -> Value:
    """``a * b`` exactly (scale ``s1 + s2``), checked against ``result``'s precision."""
    overflow = f"Overflow in multiplication of DECIMAL({result.precision})"
    (p1, s1), (p2, s2) = _ps(ta), _ps(tb)
    if is_int(ta):
        a = cast(a, pa.decimal128(p1, 0))
    if is_int(tb):
        b = cast(b, pa.decimal128(p2, 0))
    if p1 + p2 + 1 > 76:  # Arrow's product type would pass decimal256: the digits held
        eager_only(a, f"decimal({p1}, {s1}) * decimal({p2}, {s2})")
        eager_only(b, f"decimal({p1}, {s1}) * decimal({p2}, {s2})")
        p1, p2 = max(_unscaled_digits(a, s1), s1, 1), max(_unscaled_digits(b, s2), s2, 1)
        if p1 + p2 + 1 > 76:  # a product of at least 74 digits: far past 38
            raise pa.ArrowInvalid(overflow)
    factor_a, factor_b = _arrow(p1, s1), _arrow(p2, s2)
    if p1 + p2 + 1 > MAX_DIGITS:  # Arrow types the product decimal(p1 + p2 + 1, s1 + s2)
        factor_a, factor_b = pa.decimal256(p1, s1), pa.decimal256(p2, s2)
    product = xc.multiply_checked(cast(a, factor_a), cast(b, factor_b))
    return _fit(product, result, overflow)


def decimal_remainder(a: Value, b: Value, result: FieldType) -> Value:
    """``a % b`` of two values already of type ``result``, as DuckDB: the sign of the
    dividend, a zero divisor an error; ``a - trunc(a / b) * b`` in decimal256 (Arrow's
    decimal division truncates toward zero and keeps the whole quotient)."""
    p, s = _ps(result)
    pa_, pb = p, p
    if 2 * p + 2 > 76:  # the intermediate types would pass decimal256: the digits held
        eager_only(a, f"% of {result}")
        eager_only(b, f"% of {result}")
        pa_, pb = max(_unscaled_digits(a, s), s, 1), max(_unscaled_digits(b, s), s, 1)
        if pa_ + max(pb, 3) + 2 > 76:  # the steps below would pass decimal256's 76 digits
            return _remainder_of_unscaled(a, b, s, result)
    wa, wb = cast(a, pa.decimal256(pa_, s)), cast(b, pa.decimal256(pb, s))
    quotient = xc.divide(wa, wb)  # scale max(4, pb + 1): the whole part exact
    whole = cast(quotient, pa.decimal256(pa_, 0), safe=False)  # truncated toward zero
    product = xc.multiply_checked(whole, wb)
    return cast(xc.subtract_checked(wa, product), result.to_arrow())


def _remainder_of_unscaled(a: Value, b: Value, scale: int, result: FieldType) -> Value:
    """``a % b`` of two decimals of scale ``scale`` as DuckDB computes it in its 128-bit
    integers: the remainder of the unscaled values, with the dividend's sign. Only for values
    past 36 digits (Arrow's decimal256 division cannot hold their quotient), so Python's
    integers, one value at a time, are the exact way here and not a hot path."""
    rows = max((len(v) for v in (a, b) if not isinstance(v, pa.Scalar)), default=1)

    def values(v: Value) -> list[Any]:
        return [v.as_py()] * rows if isinstance(v, pa.Scalar) else v.to_pylist()

    exact = _pydecimal.Context(prec=100)
    out: list[_pydecimal.Decimal | None] = []
    for x, y in zip(values(a), values(b), strict=True):
        if x is None or y is None:
            out.append(None)
            continue
        ux = int(_pydecimal.Decimal(x).scaleb(scale, context=exact))
        uy = int(_pydecimal.Decimal(y).scaleb(scale, context=exact))
        if uy == 0:
            raise pa.ArrowInvalid("divide by zero")
        r = abs(ux) % abs(uy)
        out.append(_pydecimal.Decimal(-r if ux < 0 else r).scaleb(-scale, context=exact))
    if all(isinstance(v, pa.Scalar) for v in (a, b)):
        return pa.scalar(out[0], result.to_arrow())
    return pa.array(out, result.to_arrow())


def decimal_round(x: Value, source: FieldType, digits: int, result: FieldType) -> Value:
    """``round(x, digits)`` half away from zero, typed ``result`` (``round_type``)."""
    p, s = _ps(source)
    if digits >= s:
        return x
    if digits < 0 and -digits > p - s:
        # every value rounds to 0, and DuckDB binds the call as the constant 0: NULL too
        return const(_pydecimal.Decimal(0), result.to_arrow(), lazy=is_lazy(x))
    rounded = xc.round(cast(x, _arrow(p + 1, s)), digits, _HALF_AWAY)
    return _fit(rounded, result, f"Overflow in ROUND of DECIMAL({result.precision})")


def ceil_floor(x: Value, source: FieldType, up: bool) -> Value:
    """``ceil``/``floor`` of a decimal, as ``decimal(p, 0)``."""
    p, s = _ps(source)
    if s == 0:
        return x
    turned = (xc.ceil if up else xc.floor)(cast(x, _arrow(p + 1, s)))
    return cast(turned, pa.decimal128(p, 0))


def _unscaled_digits(value: Value, scale: int) -> int:
    """Decimal digits of the largest unscaled absolute value (1 for none)."""
    biggest = value.as_py() if isinstance(value, pa.Scalar) else pc.max(pc.abs(value)).as_py()
    if biggest is None:
        return 1
    exact = _pydecimal.Context(prec=100)
    unscaled = abs(int(_pydecimal.Decimal(biggest).scaleb(scale, context=exact)))
    return len(str(unscaled))
