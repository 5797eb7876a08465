"""Type rules shared by the checker and the evaluator: kinds, promotion, common types.

Every rule here was read off DuckDB 2.0 with ``typeof()`` over Arrow tables of each
vocabulary type (see ``tests/test_expr_check.py``). ``None`` stands for the type of an
untyped ``NULL`` literal: it takes the type its context asks for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, TypeAlias

import pyarrow as pa

from platform_core.types import (
    F32,
    F64,
    I32,
    I64,
    UTF8,
    FieldType,
    decimal,
    timestamp,
)

__all__ = [
    "INT_KINDS",
    "MaybeType",
    "TypeProblem",
    "arrow_type",
    "combine_decimals",
    "common_type",
    "compare_type",
    "is_comparable",
    "is_decimal",
    "is_float",
    "is_int",
    "is_numeric",
    "is_string",
    "is_temporal",
    "is_unsigned",
    "promote_numeric",
]

MaybeType: TypeAlias = FieldType | None
"""A type, or None for an untyped NULL whose type comes from its context."""

INT_KINDS: Final = ("u8", "u16", "u32", "i32", "i64")
_UNSIGNED: Final = frozenset({"u8", "u16", "u32"})
_BITS: Final = {"u8": 8, "u16": 16, "u32": 32, "i32": 32, "i64": 64}
_INT_DIGITS: Final = {"u8": 3, "u16": 5, "u32": 10, "i32": 10, "i64": 19}
_MAX_DECIMAL: Final = 38


class TypeProblem(Exception):
    """A type rule does not apply; the checker adds the expression text to the message."""


def is_int(t: MaybeType) -> bool:
    """u8 u16 u32 i32 i64."""
    return t is not None and t.kind in _BITS


def is_unsigned(t: MaybeType) -> bool:
    """u8 u16 u32."""
    return t is not None and t.kind in _UNSIGNED


def is_float(t: MaybeType) -> bool:
    """f32 f64."""
    return t is not None and t.kind in ("f32", "f64")


def is_decimal(t: MaybeType) -> bool:
    """decimal(p, s)."""
    return t is not None and t.kind == "decimal"


def is_numeric(t: MaybeType) -> bool:
    """Integers, floats and decimals."""
    return is_int(t) or is_float(t) or is_decimal(t)


def is_string(t: MaybeType) -> bool:
    """utf8, and utf8_ref (dictionary-encoded text, evaluated as utf8)."""
    return t is not None and t.kind in ("utf8", "utf8_ref")


def is_temporal(t: MaybeType) -> bool:
    """date and timestamp (naive or with a time zone)."""
    return t is not None and t.kind in ("date", "timestamp")


def arrow_type(t: FieldType) -> pa.DataType:
    """The Arrow type values of ``t`` have during evaluation (utf8_ref and json as utf8)."""
    if t.kind in ("utf8_ref", "json"):
        return pa.string()
    return t.to_arrow()


def promote_numeric(a: FieldType, b: FieldType) -> FieldType:
    """DuckDB's result type of ``a + b`` for integers and floats (no decimals).

    Unsigned with unsigned stays unsigned (u8 + u16 -> u16); mixing signs widens to the
    smallest signed type holding both (u8 + i32 -> i32, u32 + i32 -> i64); any float
    wins over integers, f64 over f32.
    """
    if is_float(a) or is_float(b):
        return F64 if F64 in (a, b) else F32
    if a == b:
        return a
    if a.kind in _UNSIGNED and b.kind in _UNSIGNED:
        return a if _BITS[a.kind] >= _BITS[b.kind] else b
    needed = max(_BITS[k] + (1 if k in _UNSIGNED else 0) for k in (a.kind, b.kind))
    return I32 if needed <= 32 else I64


def _decimal_with_int(d: FieldType, i: FieldType) -> FieldType:
    """DuckDB's comparison type of a decimal and an integer: decimal(38, s). Exact while the
    integer's digits fit beside the scale; past that the cast raises on a value that does
    not fit, as DuckDB's does ("Casting value ... to type DECIMAL(38,20) failed")."""
    assert d.precision is not None
    assert d.scale is not None
    return decimal(_MAX_DECIMAL, d.scale)


def _decimal_with_decimal(a: FieldType, b: FieldType) -> FieldType:
    """DuckDB's comparison type of two decimals: decimal(38, the larger scale), a checked
    cast (a decimal(38, 0) value past 28 digits does not fit decimal(38, 10): an error, in
    DuckDB too)."""
    assert a.precision is not None
    assert a.scale is not None
    assert b.precision is not None
    assert b.scale is not None
    if a == b:
        return a
    return decimal(_MAX_DECIMAL, max(a.scale, b.scale))


def _temporal(a: FieldType, b: FieldType) -> FieldType:
    """date < timestamp < timestamp with a time zone, as DuckDB (session time zone UTC)."""
    if a == b:
        return a
    zones = [t.tz for t in (a, b) if t.kind == "timestamp" and t.tz is not None]
    if zones:
        return timestamp(zones[0] if len(set(zones)) == 1 else "UTC")
    return timestamp()


def compare_type(a: MaybeType, b: MaybeType) -> MaybeType:
    """The type both sides of a comparison are cast to; TypeProblem if they do not compare.

    Numbers compare with numbers (decimals with integers and decimals in decimal(38, the
    larger scale), exactly, raising where a value does not fit it, as DuckDB does; through
    the float type with floats), text with text, bool with bool, bytes with bytes, dates
    and timestamps with each other (a date becomes midnight; naive timestamps are UTC).
    """
    if a is None or b is None:
        return _normalise(b if a is None else a)
    if is_numeric(a) and is_numeric(b):
        if is_float(a) or is_float(b):
            return F64 if F64 in (a, b) else F32
        if is_decimal(a) and is_decimal(b):
            return _decimal_with_decimal(a, b)
        if is_decimal(a):
            return _decimal_with_int(a, b)
        if is_decimal(b):
            return _decimal_with_int(b, a)
        return promote_numeric(a, b)
    if is_string(a) and is_string(b):
        return UTF8
    if is_temporal(a) and is_temporal(b):
        return _temporal(a, b)
    if a.kind == b.kind and a.kind in ("bool8", "bytes"):
        return a
    raise TypeProblem(f"cannot compare {a} with {b}")


def common_type(types: Iterable[MaybeType]) -> MaybeType:
    """The type values of several branches share (CASE, coalesce, greatest, IN lists).

    Like ``compare_type`` but the result holds the values themselves, so decimals must
    agree exactly (or meet a float, which wins), as must non-numeric kinds.
    """
    result: MaybeType = None
    for t in types:
        if t is None:
            continue
        if result is None:
            result = _normalise(t)
            continue
        if (is_decimal(result) or is_decimal(t)) and not (is_float(result) or is_float(t)):
            if not (is_numeric(result) and is_numeric(t)):
                raise TypeProblem(f"cannot mix {result} with {t}")
            # DuckDB's combined decimal type (an integer as decimal(digits, 0)): the integer
            # digits of the wider, the scale of the finer, the scale giving way past 38
            result = combine_decimals(result, t)
            continue
        if (is_numeric(result) and is_numeric(t)) or (is_temporal(result) and is_temporal(t)):
            result = compare_type(result, t)
        elif is_string(result) and is_string(t):
            result = UTF8
        elif result.kind != t.kind or result.kind not in ("bool8", "bytes", "json"):
            raise TypeProblem(f"cannot mix {result} with {t}")
    return result


def combine_decimals(a: FieldType, b: FieldType) -> FieldType:
    """DuckDB's common type of two decimals, or of a decimal and an integer (as
    ``decimal(digits, 0)``): ``decimal(max(p - s) + max(s), max(s))``; past 38 digits the
    scale gives way: ``decimal(38, 38 - max(p - s))``."""
    pa_, sa = _decimal_view(a)
    pb, sb = _decimal_view(b)
    whole, scale = max(pa_ - sa, pb - sb), max(sa, sb)
    if whole + scale > _MAX_DECIMAL:
        return decimal(_MAX_DECIMAL, _MAX_DECIMAL - whole)
    return decimal(whole + scale, scale)


def _decimal_view(t: FieldType) -> tuple[int, int]:
    if is_int(t):
        return _INT_DIGITS[t.kind], 0
    assert t.precision is not None
    assert t.scale is not None
    return t.precision, t.scale


def _normalise(t: MaybeType) -> MaybeType:
    """utf8_ref values are evaluated as utf8; everything else stays as it is."""
    if t is not None and t.kind == "utf8_ref":
        return UTF8
    return t


#: Kinds besides numbers, text and time that have an order.
ORDERED_KINDS: Final = ("bool8", "bytes")


def is_comparable(t: MaybeType) -> bool:
    """Whether values of ``t`` have an order (so ``<``, greatest and min/max apply)."""
    return t is None or is_numeric(t) or is_string(t) or is_temporal(t) or t.kind in ORDERED_KINDS
