"""Floats as DuckDB writes them in ``CAST(x AS VARCHAR)`` and ``||``.

DuckDB prints the shortest digits that read back to the same value, in Python's
``repr`` layout: positional when the decimal exponent is in ``[-4, 16)`` (always with a
fractional part: ``100.0``), otherwise ``d.ddde+XX`` with at least two exponent digits
(``1e+16``, ``1e-05``); ``nan`` (``-nan`` when the sign bit is set, as 0.0/0.0 gives on
x86-64), ``inf``, ``-inf``, ``-0.0``. pyarrow's cast finds the
same shortest digits but lays them out differently (``100``, ``1e+15``, ``0.00001``), so
the digits and exponent are taken from its text and laid out again, vectorised: the
per-row exponent only ever selects among 16 fixed layouts.
"""

from __future__ import annotations

import math
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from ._kernels import Value, cast, fill, lift, xc

__all__ = ["format_floats"]

_POSITIONAL_LOW: Final = -4
_POSITIONAL_HIGH: Final = 16
_SHAPE: Final = r"\A-?(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]+))?(?:e(?P<exp>[+-]?[0-9]+))?\z"


def _join(*parts: object) -> Value:
    return xc.binary_join_element_wise(*lift(*parts), "")


def _zeros(count: Value) -> Value:
    """``count`` zeros, clipped to the range positional layouts ever need."""
    clipped = xc.min_element_wise(xc.max_element_wise(count, 0), _POSITIONAL_HIGH + 1)
    return xc.binary_repeat(*lift("0", clipped))


def format_floats(value: Value) -> Value:
    """DuckDB's text for f64 values (NULL stays NULL).

    pyarrow writes positional text for decimal exponents -6..9 and scientific otherwise.
    Most rows then need at most a ``.0`` or a second exponent digit; only exponents
    -6, -5 (DuckDB: scientific) and 10..15 (DuckDB: positional) are laid out again.
    """
    text = _signed_nan(value, cast(value, pa.string()))
    numeric = xc.match_substring_regex(text, r"\A-?[0-9]")
    scientific = xc.match_substring(text, "e")
    padded = xc.replace_substring_regex(text, r"e([+-])([0-9])$", r"e\10\2")
    integral = xc.invert(xc.match_substring(text, "."))
    positional = xc.if_else(integral, _join(text, ".0"), text)
    simple = xc.if_else(numeric, xc.if_else(scientific, padded, positional), text)
    rebuild = fill(
        xc.or_(
            xc.match_substring_regex(text, r"\A-?0\.0000"),
            xc.match_substring_regex(text, r"e\+1[0-5]$"),
        ),
        False,
    )
    if isinstance(text, pa.Array):
        if not xc.any(rebuild).as_py():
            return simple
        return xc.replace_with_mask(simple, rebuild, _layout(text.filter(rebuild)))
    if isinstance(text, pa.Scalar):
        return _layout(text) if rebuild.as_py() else simple
    return xc.if_else(rebuild, _layout(text), simple)


def _signed_nan(value: Value, text: Value) -> Value:
    """``-nan`` for NaNs with the sign bit set (DuckDB prints it; pyarrow does not).

    The sign is read through an int64 view of the buffer, which only arrays have; a
    ``pc.Expression`` (pushed-down filter) keeps pyarrow's ``nan``.
    """
    if isinstance(value, pa.ChunkedArray) and isinstance(text, pa.ChunkedArray):
        chunks = [_signed_nan(v, t) for v, t in zip(value.chunks, text.chunks, strict=True)]
        return pa.chunked_array(chunks, pa.string())
    if isinstance(value, pa.Array) and value.type == pa.float64():
        negative_nan = xc.and_(xc.is_nan(value), xc.less(value.view(pa.int64()), 0))
        return xc.if_else(fill(negative_nan, False), "-nan", text)
    if isinstance(value, pa.Scalar) and value.is_valid and value.type == pa.float64():
        number = value.as_py()
        if math.isnan(number) and math.copysign(1.0, number) < 0:
            return pa.scalar("-nan")
    return text


def _layout(text: Value) -> Value:
    """DuckDB's layout from pyarrow's text of non-special values (see module doc)."""
    shape = xc.extract_regex(text, _SHAPE)
    whole = xc.struct_field(shape, "whole")
    frac = xc.struct_field(shape, "frac")
    exp_field = xc.replace_substring(xc.struct_field(shape, "exp"), "+", "")
    exp_text = xc.if_else(xc.equal(exp_field, ""), "0", exp_field)
    raw = _join(whole, frac)
    digits = pc.utf8_rtrim(pc.utf8_ltrim(raw, characters="0"), characters="0")
    leading = xc.subtract(pc.utf8_length(raw), pc.utf8_length(pc.utf8_ltrim(raw, characters="0")))
    exponent = xc.subtract(
        xc.add(cast(exp_text, pa.int32()), xc.subtract(pc.utf8_length(whole), 1)), leading
    )
    count = pc.utf8_length(digits)
    sign = xc.if_else(xc.starts_with(text, "-"), "-", "")

    # Positional, exponent >= 0: pad with zeros, or put the point inside the digits.
    padded = _join(digits, _zeros(xc.subtract(xc.add(exponent, 1), count)), ".0")
    conditions = [xc.less_equal(count, xc.add(exponent, 1))]
    choices = [padded]
    for e in range(10, _POSITIONAL_HIGH):  # pyarrow is positional below 10
        conditions.append(xc.equal(exponent, e))
        choices.append(
            _join(
                pc.utf8_slice_codeunits(digits, 0, e + 1),
                ".",
                pc.utf8_slice_codeunits(digits, e + 1, 1 << 30),
            )
        )
    names = [f"c{i}" for i in range(len(conditions))]
    non_negative = xc.case_when(xc.make_struct(*conditions, field_names=names), *choices)
    # Positional, exponent < 0: 0.000ddd
    negative = _join("0.", _zeros(xc.subtract(xc.negate(exponent), 1)), digits)
    positional = xc.if_else(xc.greater_equal(exponent, 0), non_negative, negative)
    # Scientific: d[.ddd]e±XX
    tail = pc.utf8_slice_codeunits(digits, 1, 1 << 30)
    mantissa = _join(
        pc.utf8_slice_codeunits(digits, 0, 1),
        xc.if_else(xc.equal(tail, ""), "", _join(".", tail)),
    )
    magnitude = pc.utf8_lpad(cast(xc.abs(exponent), pa.string()), 2, "0")
    scientific = _join(mantissa, "e", xc.if_else(xc.less(exponent, 0), "-", "+"), magnitude)
    in_range = xc.and_(
        xc.greater_equal(exponent, _POSITIONAL_LOW), xc.less(exponent, _POSITIONAL_HIGH)
    )
    laid_out = xc.if_else(in_range, positional, scientific)
    zero = xc.equal(digits, "")
    number = _join(sign, xc.if_else(zero, "0.0", laid_out))
    special = xc.invert(xc.match_substring_regex(text, r"\A-?[0-9]"))
    return xc.if_else(special, text, number)
