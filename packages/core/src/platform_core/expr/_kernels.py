"""Building blocks shared by every operator: values, implicit casts, NaN-aware comparison.

A *value* is either eager Arrow data (``pa.Array``/``pa.Scalar``) or a lazy
``pc.Expression``. ``pyarrow.compute`` functions accept both and return the same kind, so
each operator is written once. Corrections that pyarrow kernels cannot express (numpy
work on buffers) call ``eager_only`` first, which raises ``NotPushableError`` for
expressions.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from platform_core.types import FieldType

from ._types import MaybeType, arrow_type, is_decimal, is_float, is_int
from .errors import ExpressionError

__all__ = [
    "ConversionError",
    "DivisionByZeroError",
    "EvaluationError",
    "NotPushableError",
    "OutOfRangeError",
    "Value",
    "and_",
    "cast",
    "coerce",
    "compare",
    "const",
    "eager_only",
    "fill",
    "is_lazy",
    "lift",
    "not_",
    "null",
    "or_",
    "rescale_decimal",
    "translate_arrow_error",
    "xc",
]

Value: TypeAlias = pa.Array | pa.ChunkedArray | pa.Scalar | pc.Expression
"""Eager Arrow data, or a ``pc.Expression`` when building a pushed-down filter."""


class EvaluationError(ExpressionError):
    """The expression is well typed but the data made it fail (as DuckDB would fail)."""


class OutOfRangeError(EvaluationError):
    """Integer overflow, or a value outside the target type of a CAST (DuckDB: Out of Range)."""


class DivisionByZeroError(EvaluationError):
    """Integer ``%`` by zero (DuckDB: Invalid Input Error: Division by zero)."""


class ConversionError(EvaluationError):
    """Text that does not parse as the type of a CAST (DuckDB: Conversion Error)."""


class NotPushableError(ExpressionError):
    """The expression needs an eager correction and has no ``pc.Expression`` form."""


def is_lazy(*values: object) -> bool:
    """Whether any value is a ``pc.Expression`` (then all of them are)."""
    return any(isinstance(v, pc.Expression) for v in values)


def lift(*values: object) -> list[Any]:
    """The values, with constants made expressions when any value is an expression.

    pyarrow's compute wrappers build an expression only when the first argument is one,
    so mixed calls go through this.
    """
    if any(isinstance(v, pc.Expression) for v in values):
        return [v if isinstance(v, pc.Expression) else pc.scalar(v) for v in values]
    return list(values)


class _Compute:
    """``pyarrow.compute`` with constants lifted into expressions in mixed calls, so each
    operator can call it alike on data, on expressions, or on both."""

    def __getattr__(self, name: str) -> Any:
        function = getattr(pc, name)
        spec = getattr(function, "__arrow_compute_function__", None)
        if spec is None:
            return function
        arity = spec["arity"]
        registered = spec["name"]

        def call(*args: Any, **kwargs: Any) -> Any:
            data = args if arity is Ellipsis else args[:arity]
            if not any(isinstance(a, pc.Expression) for a in data):
                return function(*args, **kwargs)
            lifted = [*lift(*data), *args[len(data) :]]
            if name in ("and_", "or_") and not kwargs:  # the wrappers misname these
                return pc.Expression._call(registered, lifted)
            return function(*lifted, **kwargs)

        return call


xc: Any = _Compute()
"""Use ``xc.<function>`` like ``pc.<function>``; mixed data/expression calls work."""


def eager_only(value: Value, what: str) -> None:
    """Raise NotPushableError when ``value`` is a ``pc.Expression``."""
    if isinstance(value, pc.Expression):
        raise NotPushableError(
            f"{what} cannot be expressed as a pyarrow.compute.Expression "
            "(it needs an eager correction); evaluate it with evaluate() instead"
        )


def const(value: object, type: pa.DataType, *, lazy: bool) -> Value:
    """A constant of Arrow type ``type``: a scalar, or a literal expression when lazy."""
    scalar = pa.scalar(value, type)
    return pc.scalar(scalar) if lazy else scalar


def null(type: pa.DataType, *, lazy: bool) -> Value:
    """A NULL of Arrow type ``type``."""
    return const(None, type, lazy=lazy)


def cast(value: Value, to: pa.DataType, *, safe: bool = True) -> Value:
    """``pc.cast`` for data, ``Expression.cast`` for expressions."""
    if isinstance(value, pc.Expression):
        return value.cast(to, safe=safe)
    if value.type == to:
        return value
    return pc.cast(value, to, safe=safe)


def fill(value: Value, default: bool) -> Value:
    """A boolean ``value`` with NULL replaced by ``default`` (data or expression)."""
    return pc.coalesce(*lift(value, pa.scalar(default, pa.bool_())))


def and_(a: Value, b: Value) -> Value:
    """SQL ``AND`` (three-valued)."""
    return pc.and_kleene(*lift(a, b))


def or_(a: Value, b: Value) -> Value:
    """SQL ``OR`` (three-valued)."""
    return pc.or_kleene(*lift(a, b))


def not_(a: Value) -> Value:
    """SQL ``NOT`` (NULL stays NULL)."""
    return pc.invert(a)


# --- implicit casts ------------------------------------------------------------------------


def coerce(value: Value, source: MaybeType, target: FieldType) -> Value:
    """Cast ``value`` of type ``source`` to ``target`` as DuckDB's implicit casts do.

    These are the widenings the type rules produce: integer to wider integer (exact),
    integer to float (round to nearest), decimal to float (DuckDB's conversion), date to
    timestamp (midnight), naive timestamp to a zone (read as UTC), any type from NULL.
    """
    to = arrow_type(target)
    if source is None:
        return cast(value, to)
    if source == target:
        return value
    if is_decimal(source) and is_float(target):
        return decimal_to_float(value, source, target)
    if is_decimal(source) and is_decimal(target):
        return rescale_decimal(value, source, target)
    if is_int(source) and is_float(target):
        return cast(value, to, safe=False)
    return cast(value, to)


def rescale_decimal(value: Value, source: FieldType, target: FieldType) -> Value:
    """DuckDB's CAST between decimals: to a smaller scale rounds half away from zero (in a
    type with room for the carry), and a value past the target's precision raises."""
    assert source.precision is not None
    assert source.scale is not None
    assert target.scale is not None
    if target.scale < source.scale:
        room = source.precision + 1
        wide = (
            pa.decimal128(room, source.scale) if room <= 38 else pa.decimal256(room, source.scale)
        )
        value = xc.round(cast(value, wide), target.scale, "half_towards_infinity")
    return cast(value, arrow_type(target))


def decimal_to_float(value: Value, source: FieldType, target: FieldType) -> Value:
    """DuckDB's decimal -> float conversion, bit for bit.

    DuckDB rounds correctly (as parsing the decimal text does), except from a 128-bit
    decimal with scale 0 to DOUBLE, where it converts the two 64-bit halves separately
    (``lower + upper * 2**64``; ``upper == -1`` specially). pyarrow's own cast rounds
    differently in both cases, so neither path uses it.
    """
    assert source.precision is not None
    to = arrow_type(target)
    if target.kind == "f64" and source.scale == 0 and source.precision > 18:
        eager_only(value, f"converting {source} to {target}")
        return _hugeint_to_double(value)
    if target.kind == "f64" and source.precision <= _EXACT_DIGITS and not is_lazy(value):
        return _small_decimal_to_double(value, source.scale or 0)
    return cast(cast(value, pa.string()), to)


_EXACT_DIGITS: Final = 15
"""Up to 15 digits the unscaled integer and 10**scale are exact doubles, so one IEEE
division rounds correctly: the same double as parsing the decimal's text, without the text."""


def _small_decimal_to_double(value: Value, scale: int) -> Value:
    """A decimal of at most 15 digits as f64: its unscaled integer (the low 64-bit word of
    each 128-bit value, which holds it whole) divided by ``10**scale``."""
    if isinstance(value, pa.Scalar):
        return _small_decimal_to_double(pa.array([value.as_py()], value.type), scale)[0]
    if isinstance(value, pa.ChunkedArray):
        chunks = [_small_decimal_to_double(chunk, scale) for chunk in value.chunks]
        return pa.chunked_array(chunks, type=pa.float64())
    assert isinstance(value, pa.Array)
    words = np.frombuffer(value.buffers()[1], dtype="<i8")
    low = words[2 * value.offset : 2 * (value.offset + len(value)) : 2]
    result = low.astype(np.float64) / (10.0**scale)
    return pa.array(result, pa.float64(), mask=value.is_null().to_numpy(zero_copy_only=False))


_TWO_64: Final = float(2**64)


def _hugeint_to_double(value: Value) -> Value:
    if isinstance(value, pa.Scalar):
        return _hugeint_to_double(pa.array([value.as_py()], value.type))[0]
    if isinstance(value, pa.ChunkedArray):
        return pa.chunked_array(
            [_hugeint_to_double(chunk) for chunk in value.chunks], type=pa.float64()
        )
    assert isinstance(value, pa.Array)
    words = np.frombuffer(value.buffers()[1], dtype="<u8")
    words = words[2 * value.offset : 2 * (value.offset + len(value))]
    lower = words[0::2]
    upper = words[1::2].view("<i8")
    with np.errstate(over="ignore"):
        general = lower.astype(np.float64) + upper.astype(np.float64) * _TWO_64
        minus_one = -(np.uint64(2**64 - 1) - lower).astype(np.float64) - 1.0
    result = np.where(upper == -1, minus_one, general)
    return pa.array(result, pa.float64(), mask=value.is_null().to_numpy(zero_copy_only=False))


# --- comparison -----------------------------------------------------------------------------

_COMPARE: Final[dict[str, Any]] = {
    "=": pc.equal,
    "<>": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


def compare(op: str, a: Value, b: Value, *, a_nan: bool = True, b_nan: bool = True) -> Value:
    """``a op b`` with DuckDB's float order: NaN equals NaN and is above every number.

    ``a`` and ``b`` already have one type. ``a_nan``/``b_nan`` say whether that side can
    hold NaN at all (False for integers cast to float, or a non-NaN constant), which
    spares the correction and keeps pushed-down filters simple.
    """
    if op == ">":
        return compare("<", b, a, a_nan=b_nan, b_nan=a_nan)
    if op == ">=":
        return compare("<=", b, a, a_nan=b_nan, b_nan=a_nan)
    a_const, b_const = _constant_nan(a), _constant_nan(b)
    if a_const is not None or b_const is not None:
        return _compare_constant(op, a, b, a_const, b_const, a_nan=a_nan, b_nan=b_nan)
    a, b = lift(a, b)
    base = _COMPARE[op](a, b)
    if op == "=" and a_nan and b_nan:
        return or_(base, and_(pc.is_nan(a), pc.is_nan(b)))
    if op == "<>" and a_nan and b_nan:
        return and_(base, not_(and_(pc.is_nan(a), pc.is_nan(b))))
    if op == "<" and b_nan:
        return or_(base, and_(pc.is_nan(b), not_(pc.is_nan(a))))
    if op == "<=" and b_nan:
        return or_(base, and_(pc.is_nan(b), pc.is_valid(a)))
    return base


def _constant_nan(value: Value) -> bool | None:
    """For a non-NULL float constant, whether it is NaN; None for anything else."""
    if isinstance(value, pa.Scalar) and value.is_valid and pa.types.is_floating(value.type):
        return math.isnan(value.as_py())
    return None


def _compare_constant(
    op: str,
    a: Value,
    b: Value,
    a_const: bool | None,
    b_const: bool | None,
    *,
    a_nan: bool,
    b_nan: bool,
) -> Value:
    """``compare`` when a side is a known float constant: the NaN terms fold away."""
    if a_const is not None and b_const is not None:
        return compare(op, pa.array([a.as_py()], a.type), pa.array([b.as_py()], b.type))[0]
    other, const_is_nan = (b, a_const) if a_const is not None else (a, b_const)
    other_nan = b_nan if a_const is not None else a_nan
    if op in ("=", "<>"):
        if const_is_nan:
            found = pc.is_nan(other)
            return found if op == "=" else not_(found)
        return _COMPARE[op](*lift(a, b))
    base = _COMPARE[op](*lift(a, b))
    if a_const is not None:  # constant on the left: the right may be NaN (above it)
        if not other_nan or a_const:
            return base if not (a_const and op == "<=") else or_(base, pc.is_nan(b))
        return or_(base, pc.is_nan(b))
    # constant on the right: a NaN constant is above every number
    if b_const:
        return not_(pc.is_nan(a)) if op == "<" else or_(base, pc.is_valid(a))
    return base


# --- errors ---------------------------------------------------------------------------------

_OUT_OF_RANGE: Final = re.compile(
    r"overflow|out of (?:range|bounds)|not in range|would cause data loss|was truncated"
    r"|would overflow|outside of (?:the )?(?:supported )?range|exceed|does not fit",
    re.IGNORECASE,
)


def translate_arrow_error(exc: Exception, where: str) -> EvaluationError:
    """The platform error for an Arrow error raised while evaluating ``where``."""
    text = str(exc).strip()
    lowered = text.lower()
    if "divide by zero" in lowered or "division by zero" in lowered:
        return DivisionByZeroError(f"Division by zero in {where}")
    if _OUT_OF_RANGE.search(text):
        return OutOfRangeError(f"Out of Range Error: {text} in {where}")
    if "parse" in lowered or "invalid" in lowered:
        return ConversionError(f"Conversion Error: {text} in {where}")
    return EvaluationError(f"{text} in {where}")
