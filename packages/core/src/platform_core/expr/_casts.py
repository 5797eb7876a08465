"""``CAST(x AS type)`` with DuckDB 2.0's results, or a check-time refusal.

Each supported (source, target) pair below was compared with DuckDB; pairs where we
could not reproduce DuckDB exactly are refused by ``cast_problem`` with advice, so a
cast never silently gives a different value. Text is read in DuckDB's forms (``1_000``,
``1e3`` and ``2.5`` as integers, ``2024-1-5`` as a date) but more strictly where DuckDB goes
further (``0x10``, ``infinity`` dates, zone names): text outside the documented forms raises
``ConversionError`` rather than guessing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from platform_core.types import FieldType

from ._dates import DATE_FORMS, TIMESTAMP_FORMS, format_date, format_timestamp, parse_temporal
from ._floatfmt import format_floats
from ._kernels import (
    ConversionError,
    OutOfRangeError,
    Value,
    cast,
    coerce,
    decimal_to_float,
    eager_only,
    fill,
    is_lazy,
    null,
    rescale_decimal,
    xc,
)
from ._types import (
    MaybeType,
    TypeProblem,
    arrow_type,
    is_decimal,
    is_float,
    is_int,
    is_string,
    is_temporal,
)

__all__ = ["cast_problem", "explicit_cast"]

# Characters DuckDB skips around numbers and dates in text (C isspace).
_SPACE: Final = " \t\n\r\f\v"
_DIGITS: Final = r"[0-9]+(?:_[0-9]+)*"  # DuckDB allows "_" between digits: 1_000
_NUMBER_TEXT: Final = (
    rf"\A[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?[0-9]+)?\z"
)
_FLOAT_TEXT: Final = r"(?i)\A[+-]?(?:inf|infinity|nan)\z"
_PLAIN_INT: Final = r"\A[+-]?[0-9]+\z"
_INT_TEXT_LIMIT: Final = 1e30  # beyond any integer type; keeps decimal parsing exact
_TRUE_TEXT: Final = ("true", "t", "yes", "y", "1")
_FALSE_TEXT: Final = ("false", "f", "no", "n", "0")
_UNPARSEABLE: Final = "<text DuckDB does not read as this type>"  # fails the pushed-down cast
_FORMATS: Final = {
    "int": "decimal or scientific notation such as -12, 1_000, 2.5 (rounded), 1e3; "
    "not hexadecimal or binary",
    "float": "decimal or scientific notation, inf, infinity or nan",
    "date": DATE_FORMS,
    "timestamp": TIMESTAMP_FORMS,
    "bool": "true/false, t/f, yes/no, y/n or 1/0 (any case)",
}


def cast_problem(source: MaybeType, target: FieldType) -> str | None:
    """Why ``CAST(source AS target)`` is refused, or None when it is supported."""
    if source is None or source == target:
        return None
    s, t = source.kind, target.kind
    if t in ("utf8_ref", "json", "bytes", "i32_array", "f32_array"):
        return f"CAST to {target} is not supported; CAST to utf8 instead"
    if s in ("bytes", "i32_array", "f32_array"):
        return f"CAST from {source} is not supported"
    if s == "json":
        return None if t == "utf8" else "CAST json to utf8 first"
    if s == "f32" and t == "utf8":
        return (
            "CAST from f32 to utf8 is not supported (DuckDB writes f32 digits its own way); "
            "CAST to f64 first"
        )
    numeric_like = is_int(source) or is_float(source) or s == "bool8"
    if t in ("u8", "u16", "u32", "i32", "i64", "f32", "f64", "bool8"):
        if numeric_like or is_string(source) or (is_decimal(source) and t != "bool8"):
            return None
    elif t == "decimal":
        if is_int(source) or is_decimal(source) or is_float(source):
            return None
        if is_string(source):
            return (
                f"CAST from {source} to {target} is not supported (DuckDB rounds the "
                "digits past the scale); CAST to f64 first, or from an integer"
            )
    elif t == "utf8":
        if is_temporal(source) or is_decimal(source) or numeric_like or is_string(source):
            return None
    elif t == "date":
        if is_string(source) or s == "timestamp":
            return None
    elif t == "timestamp" and (is_string(source) or is_temporal(source)):
        return None
    return f"CAST from {source} to {target} is not supported"


def explicit_cast(value: Value, source: MaybeType, target: FieldType) -> Value:
    """``CAST(value AS target)`` for a supported pair (see ``cast_problem``)."""
    problem = cast_problem(source, target)
    if problem is not None:
        raise TypeProblem(problem)
    to = arrow_type(target)
    if source is None:
        return null(to, lazy=is_lazy(value))
    if source == target:
        return value
    s, t = source.kind, target.kind
    if is_string(source):
        return _from_text(value, target)
    if t == "utf8":
        return _to_text(value, source)
    if is_float(source) and is_int(target):
        return cast(xc.round(value, 0, "half_to_even"), to)
    if is_float(source) and t == "f32":
        return _narrow_float(value)
    if is_float(source) and t == "decimal":
        return _float_to_decimal(value, target)
    if is_decimal(source):
        return _from_decimal(value, source, target)
    if t == "decimal":  # from an integer: through the widest decimal, then checked
        assert target.scale is not None
        return cast(cast(value, pa.decimal128(38, target.scale)), to)
    if s == "timestamp" and t == "date":
        return cast(_as_utc_wall_time(value, source), to, safe=False)
    if is_int(source) and is_float(target):
        return cast(value, to, safe=False)
    return coerce(value, source, target) if t != "bool8" else cast(value, to)


def _float_to_decimal(value: Value, target: FieldType) -> Value:
    """DuckDB's float -> decimal(p, s): ``round(x * 10**s)`` in double (half away from zero),
    an error when that is not below ``10**p`` (or not finite), else that integer as the
    unscaled value, exactly."""
    assert target.precision is not None
    assert target.scale is not None
    p, s = target.precision, target.scale
    scaled = xc.multiply(cast(value, pa.float64()), 10.0**s)
    rounded = xc.round(scaled, 0, "half_towards_infinity")
    try:
        whole = cast(rounded, pa.decimal128(p, 0))
    except pa.ArrowInvalid:  # DuckDB: "Could not cast value ... to DECIMAL(p,s)"
        raise pa.ArrowInvalid(
            f"a value is out of range for {target} (or not finite) in CAST from a float"
        ) from None
    scale = 0
    while scale < s:  # times 10**-k, at most 76 digits at a time (decimal(p + k + 1, ...))
        k = min(s - scale, 75 - p)
        factor = pa.scalar(Decimal(1).scaleb(-k), pa.decimal128(k, k))
        scale += k
        wide = pa.decimal256(p, scale)
        whole = cast(xc.multiply(cast(whole, pa.decimal256(p, scale - k)), factor), wide)
    return cast(whole, arrow_type(target))


def _as_utc_wall_time(value: Value, source: FieldType) -> Value:
    """A timestamp with a zone as a naive UTC timestamp (DuckDB session time zone UTC)."""
    return cast(value, pa.timestamp("us")) if source.tz is not None else value


def _narrow_float(value: Value) -> Value:
    eager_only(value, "CAST from f64 to f32")
    narrowed = cast(value, pa.float32(), safe=False)
    overflow = xc.and_(xc.is_finite(value), xc.invert(xc.is_finite(narrowed)))
    if xc.any(overflow).as_py():
        raise OutOfRangeError("Out of Range Error: value out of range for f32 in CAST to f32")
    return narrowed


def _from_decimal(value: Value, source: FieldType, target: FieldType) -> Value:
    to = arrow_type(target)
    if is_float(target):
        return decimal_to_float(value, source, target)
    if is_int(target):  # rounded half away from zero, with room for the carry
        assert source.precision is not None
        assert source.scale is not None
        room = source.precision + 1
        wide = (
            pa.decimal128(room, source.scale) if room <= 38 else pa.decimal256(room, source.scale)
        )
        return cast(xc.round(cast(value, wide), 0, "half_towards_infinity"), to)
    return rescale_decimal(value, source, target)


# --- to text ------------------------------------------------------------------------------


def _to_text(value: Value, source: FieldType) -> Value:
    if is_float(source):
        eager_only(value, f"CAST from {source} to utf8")
        return format_floats(value)
    if source.kind == "json":
        return cast(value, pa.string())
    if source.kind in ("date", "timestamp"):
        eager_only(value, f"CAST from {source} to utf8")
    if source.kind == "date":
        return format_date(value)
    if source.kind == "timestamp":
        return format_timestamp(value, zoned=source.tz is not None)
    if is_decimal(source) and (source.scale or 0) > 0:
        return _decimal_text(value, source)
    return cast(value, pa.string())


def _decimal_text(value: Value, source: FieldType) -> Value:
    """A decimal as DuckDB writes it: every digit of the scale, never exponent notation
    (Arrow writes ``1E-10`` and ``0E-18``), and no ``0`` before the point when the type has
    no integer digits (decimal(18, 18): ``.010000000000000000``, ``-.5...``).

    Built from the unscaled integer's digits: ``|x| * 10**s`` at scale 0, left-padded with
    zeros, the point put before the last ``s`` digits."""
    assert source.precision is not None
    assert source.scale is not None
    p, s = source.precision, source.scale
    wide = pa.decimal128 if p + s + 2 <= 38 else pa.decimal256
    scaled, scale = cast(xc.abs(value), wide(p, s)), s
    while scale:  # times 10**k, at most 76 digits at a time (Arrow: decimal(p + k + 2, scale))
        k = min(scale, 74 - p)
        factor = pa.scalar(Decimal(10**k), wide(k + 1, 0))
        scale -= k
        scaled = cast(xc.multiply(scaled, factor), wide(p, scale))  # exact: k zero digits
    digits = cast(scaled, pa.string())
    digits = xc.utf8_lpad(digits, s + 1 if p > s else s, "0")
    text = xc.binary_join_element_wise(
        xc.utf8_slice_codeunits(digits, 0, -s), xc.utf8_slice_codeunits(digits, -s), "."
    )
    negative = xc.less(
        value, pa.scalar(Decimal(0), value.type if not is_lazy(value) else wide(p, s))
    )
    return xc.if_else(negative, xc.binary_join_element_wise("-", text, ""), text)


# --- from text ----------------------------------------------------------------------------


def _from_text(value: Value, target: FieldType) -> Value:
    to = arrow_type(target)
    t = target.kind
    if t == "utf8":
        return value
    if t == "bool8":  # no spaces allowed around, as in DuckDB
        lowered = xc.ascii_lower(value)
        as_true = xc.is_in(lowered, value_set=pa.array(_TRUE_TEXT))
        as_false = xc.is_in(lowered, value_set=pa.array(_FALSE_TEXT))
        text = xc.if_else(as_true, "true", xc.if_else(as_false, "false", value))
        return cast(_gate(value, text, xc.or_(as_true, as_false), target, "bool"), to)
    if is_int(target):
        return _int_from_text(value, target)
    if is_float(target):
        trimmed = pc.utf8_trim(value, characters=_SPACE)
        number = xc.match_substring_regex(trimmed, _NUMBER_TEXT)
        valid = xc.or_(number, xc.match_substring_regex(trimmed, _FLOAT_TEXT))
        cleaned = xc.replace_substring(trimmed, "_", "")
        return cast(_gate(value, cleaned, valid, target, "float"), to)
    eager_only(value, f"CAST from text to {target}")  # ~100 kernels: too big to push down
    value_ok = parse_temporal(value, timestamp=t == "timestamp", zoned=target.tz is not None)
    number, ok = value_ok
    number = cast(_gate(value, number, ok, target, t), pa.int64())
    if t == "date":
        return cast(cast(number, pa.int32()), to)
    return cast(number, to)


def _int_from_text(value: Value, target: FieldType) -> Value:
    """DuckDB's text -> integer: digits with ``_`` separators, a fraction rounded half away
    from zero, an exponent; out of range raises. (Hex and binary are not supported.)"""
    to = arrow_type(target)
    trimmed = pc.utf8_trim(value, characters=_SPACE)
    valid = xc.match_substring_regex(trimmed, _NUMBER_TEXT)
    cleaned = xc.replace_substring(_gate(value, trimmed, valid, target, "int"), "_", "")
    plain = fill(xc.match_substring_regex(cleaned, _PLAIN_INT), True)
    # Plain digits parse exactly at any length; the rest go through decimal(38, 1), which
    # keeps the one fractional digit that decides rounding (exact below 1e30).
    digits = xc.replace_substring_regex(xc.if_else(plain, cleaned, "0"), r"^\+", "")
    digits = xc.replace_substring_regex(digits, r"^-(0+)$", r"\1")  # "-0" is 0, unsigned too
    exact = cast(digits, to)
    other = xc.if_else(plain, "0", cleaned)
    too_big = fill(xc.greater_equal(xc.abs(cast(other, pa.float64())), _INT_TEXT_LIMIT), False)
    _refuse_where(too_big, value, target)
    other = xc.if_else(too_big, _UNPARSEABLE, other)
    rounded = xc.round(cast(other, pa.decimal128(38, 1), safe=False), 0, "half_towards_infinity")
    return xc.if_else(plain, exact, cast(rounded, to))


def _refuse_where(bad: Value, original: Value, target: FieldType) -> None:
    """Raise OutOfRangeError when any row of eager ``bad`` is true."""
    if is_lazy(bad) or not xc.any(bad).as_py():
        return
    first = xc.filter(original, bad)[0] if isinstance(bad, pa.Array) else original
    raise OutOfRangeError(f"Out of Range Error: {_show(first)} is out of range for {target}")


def _gate(original: Value, cleaned: Value, valid: Value, target: FieldType, form: str) -> Value:
    """``cleaned`` where ``valid``; elsewhere raise (eagerly) or fail the later cast (lazily)."""
    valid = xc.or_kleene(xc.is_null(original), valid)  # NULL text stays NULL
    if not is_lazy(valid):
        bad = xc.invert(fill(valid, True))
        if xc.any(bad).as_py():
            first = xc.filter(original, bad)[0].as_py() if isinstance(bad, pa.Array) else original
            raise ConversionError(
                f"Conversion Error: Could not convert string {_show(first)} to {target} "
                f"(accepted: {_FORMATS[form]})"
            )
        return cleaned
    if isinstance(cleaned, pc.Expression) and form in ("date", "timestamp"):
        poison = cast(xc.if_else(fill(valid, True), "0", _UNPARSEABLE), pa.int64())
        return xc.add(cleaned, poison)  # fails exactly on the rows that do not parse
    return xc.if_else(fill(valid, True), cleaned, _UNPARSEABLE)


def _show(value: object) -> str:
    text = value.as_py() if isinstance(value, pa.Scalar) else value
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."
