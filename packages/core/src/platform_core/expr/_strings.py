"""Text operations with DuckDB's semantics: LIKE/ILIKE, lower/upper, trim, substr.

Where pyarrow's kernels differ from DuckDB 2.0 (checked code point by code point):

* ``lower``/``upper``: Arrow's case tables are newer (Unicode 16) than DuckDB's; 75 code
  points each way that Arrow maps DuckDB leaves unchanged. They are shielded behind
  caseless placeholders during the case mapping and put back after it.
* ``trim``: DuckDB removes the Unicode space separators (category Zs), not tabs or
  newlines; pyarrow's ``utf8_trim_whitespace`` removes both, so the set is explicit.
* ``LIKE``: DuckDB has no default escape character (pyarrow's ``match_like`` treats
  ``\\`` as one), ``_`` is one code point and ``%`` crosses newlines.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from ._kernels import Value, cast, fill, is_lazy, not_, xc
from .errors import ExpressionError

__all__ = [
    "LikePlan",
    "duckdb_lower",
    "duckdb_upper",
    "like",
    "lower_text",
    "plan_like",
    "substr",
    "trim",
]


def _ranges(*spans: tuple[int, int]) -> tuple[str, ...]:
    return tuple(chr(c) for first, last in spans for c in range(first, last + 1))


#: Code points Arrow lower-cases and DuckDB 2.0 leaves as they are.
_KEEP_LOWER: Final = _ranges(
    (0x1C89, 0x1C89), (0xA7CB, 0xA7CC), (0xA7CE, 0xA7CE), (0xA7D2, 0xA7D2),
    (0xA7D4, 0xA7D4), (0xA7DA, 0xA7DA), (0xA7DC, 0xA7DD), (0xA7E2, 0xA7E2),
    (0xAB6C, 0xAB6D), (0x10D50, 0x10D65), (0x16EA0, 0x16EB8), (0x1DF40, 0x1DF40),
    (0x1DF48, 0x1DF48), (0x1DF4A, 0x1DF4A), (0x1DF4D, 0x1DF4D), (0x1DF51, 0x1DF51),
    (0x1DF68, 0x1DF68), (0x1DF6A, 0x1DF6A), (0x1DF6C, 0x1DF6C), (0x1DF6E, 0x1DF6E),
    (0x1DF72, 0x1DF72), (0x1DF74, 0x1DF74), (0x1DF76, 0x1DF76), (0x1DF78, 0x1DF78),
    (0x1DF7A, 0x1DF7A), (0x1DF7C, 0x1DF7C), (0x1DF7E, 0x1DF7E),
)  # fmt: skip

#: Code points Arrow upper-cases and DuckDB 2.0 leaves as they are.
_KEEP_UPPER: Final = _ranges(
    (0x019B, 0x019B), (0x0264, 0x0264), (0x0277, 0x0277), (0x027C, 0x027C),
    (0x1C8A, 0x1C8A), (0xA7CD, 0xA7CD), (0xA7CF, 0xA7CF), (0xA7D3, 0xA7D3),
    (0xA7D5, 0xA7D5), (0xA7DB, 0xA7DB), (0xAB4B, 0xAB4C), (0x10D70, 0x10D85),
    (0x16EBB, 0x16ED3), (0x1DF41, 0x1DF41), (0x1DF49, 0x1DF49), (0x1DF4B, 0x1DF4B),
    (0x1DF4E, 0x1DF4E), (0x1DF52, 0x1DF52), (0x1DF69, 0x1DF69), (0x1DF6B, 0x1DF6B),
    (0x1DF6D, 0x1DF6D), (0x1DF6F, 0x1DF6F), (0x1DF73, 0x1DF73), (0x1DF75, 0x1DF75),
    (0x1DF77, 0x1DF77), (0x1DF79, 0x1DF79), (0x1DF7B, 0x1DF7B), (0x1DF7D, 0x1DF7D),
    (0x1DF7F, 0x1DF7F),
)  # fmt: skip

#: What DuckDB's trim removes: the Unicode space separators (Zs), nothing else.
TRIM_CHARACTERS: Final = "".join(
    _ranges((0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x202F, 0x202F))
    + _ranges((0x205F, 0x205F), (0x3000, 0x3000))
)

# Placeholders for the shielded code points: a noncharacter marker followed by a caseless
# CJK ideograph naming the code point (the first ideograph escapes the marker itself).
_MARK: Final = "\ufdd0"
_FIRST_TAG: Final = 0x4E00


def _class(chars: tuple[str, ...]) -> str:
    return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in chars) + "]"


def _shielded_case(strings: Value, kernel: str, keep: tuple[str, ...]) -> Value:
    """Apply ``kernel`` (utf8_lower/utf8_upper) but leave the code points in ``keep``.

    Eagerly, only non-ASCII rows that hold such a code point take the slow path. A
    pushed-down expression cannot branch per row cheaply, so there such rows make the
    scan fail with a message saying so (evaluate() handles them).
    """
    call = getattr(pc, kernel)
    if is_lazy(strings):
        touched = fill(xc.match_substring_regex(strings, _class(keep)), False)
        check = cast(xc.if_else(touched, _SHIELD_REFUSAL, "0"), pa.int8())
        mapped = call(strings)
        return xc.if_else(xc.equal(check, 0), mapped, mapped)
    if isinstance(strings, pa.Scalar):
        return _shielded_case(pa.array([strings.as_py()], pa.string()), kernel, keep)[0]
    assert isinstance(strings, pa.Array)
    mapped = call(strings)
    candidates = xc.invert(fill(xc.string_is_ascii(strings), True))
    if not xc.any(candidates).as_py():
        return mapped
    touched = fill(xc.and_(candidates, xc.match_substring_regex(strings, _class(keep))), False)
    if not xc.any(touched).as_py():
        return mapped
    return xc.replace_with_mask(mapped, touched, _shield(strings.filter(touched), call, keep))


_SHIELD_REFUSAL: Final = (
    "lower/upper of text holding a code point whose case mapping Arrow and DuckDB "
    "disagree on cannot be pushed down; use evaluate()"
)


def _shield(strings: Value, call: object, keep: tuple[str, ...]) -> Value:
    tags = [_MARK + chr(_FIRST_TAG + i) for i in range(len(keep) + 1)]
    out = xc.replace_substring(strings, _MARK, tags[0])
    for char, tag in zip(keep, tags[1:], strict=True):
        out = xc.replace_substring(out, char, tag)
    out = call(out)  # type: ignore[operator]
    for char, tag in zip(keep, tags[1:], strict=True):
        out = xc.replace_substring(out, tag, char)
    return xc.replace_substring(out, tags[0], _MARK)


def duckdb_lower(strings: Value) -> Value:
    """DuckDB's ``lower``: per code point, with DuckDB's (older) Unicode tables."""
    return _shielded_case(strings, "utf8_lower", _KEEP_LOWER)


def duckdb_upper(strings: Value) -> Value:
    """DuckDB's ``upper``: per code point, with DuckDB's (older) Unicode tables."""
    return _shielded_case(strings, "utf8_upper", _KEEP_UPPER)


def lower_text(text: str) -> str:
    """DuckDB's ``lower`` of one constant (for ILIKE patterns and escape characters)."""
    result = duckdb_lower(pa.array([text], pa.string()))
    assert isinstance(result, pa.Array)
    value = result[0].as_py()
    assert isinstance(value, str)
    return value


def trim(strings: Value) -> Value:
    """DuckDB's ``trim(s)``: strip Unicode space separators from both ends."""
    return pc.utf8_trim(strings, characters=TRIM_CHARACTERS)


# --- substr -------------------------------------------------------------------------------

SUBSTR_LIMIT: Final = 2**32
"""DuckDB refuses offsets below -2**32 or above 2**32 - 1 (and lengths likewise)."""


def substr_bounds(start: int, length: int | None) -> tuple[int, int] | None:
    """Python-style ``[lo:hi]`` code point bounds for DuckDB's ``substr(s, start, length)``.

    DuckDB: a positive or zero ``start`` counts from 1 (0 is one before the first
    character), a negative one from the end; a negative ``length`` takes the characters
    before ``start``; the range is then clipped to the string. Without a length DuckDB
    takes 2**32 - 1 characters (so ``substr('hello', -2**32)`` is ``'hell'``). None means
    always empty.
    """
    if length is None:
        length = SUBSTR_LIMIT - 1
    far = sys.maxsize
    if start >= 0:
        first = start - 1
        lo, hi = (first, first + length) if length >= 0 else (first + length, first)
        return (max(lo, 0), max(hi, 0)) if hi > lo and hi > 0 else None
    lo, hi = (start, start + length) if length >= 0 else (start + length, start)
    if hi <= lo:
        return None
    return lo, (far if hi >= 0 else hi)


def substr(strings: Value, start: int, length: int | None) -> Value:
    """``substr(s, start[, length])`` with constant bounds, in code points."""
    bounds = substr_bounds(start, length)
    if bounds is None:
        return pc.utf8_slice_codeunits(strings, 0, 0)
    return pc.utf8_slice_codeunits(strings, bounds[0], bounds[1])


# --- LIKE -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LikePlan:
    """How to run one LIKE pattern: ``equal``/``prefix``/``suffix``/``contains``/``any``
    with ``text``, or ``regex`` with an anchored RE2 pattern in ``text``."""

    kind: str
    text: str


def plan_like(pattern: str, escape: str | None) -> LikePlan:
    """Translate a LIKE pattern: ``%`` any run, ``_`` one code point, ``escape`` quotes.

    Every other character matches itself (no default escape, as in DuckDB). A pattern
    ending in the escape character is an error, as in DuckDB.
    """
    if escape is not None and len(escape) > 1:
        raise ExpressionError(f"LIKE ESCAPE must be one character or empty, got {escape!r}")
    esc = escape or None
    tokens: list[str] = []  # "%", "_", or one literal character prefixed by "="
    chars = iter(pattern)
    for ch in chars:
        if esc is not None and ch == esc:
            quoted = next(chars, None)
            if quoted is None:
                raise ExpressionError(
                    f"LIKE pattern {pattern!r} must not end with the escape character {esc!r}"
                )
            tokens.append("=" + quoted)
        elif ch in "%_":
            if not (ch == "%" and tokens and tokens[-1] == "%"):
                tokens.append(ch)
        else:
            tokens.append("=" + ch)
    if "_" not in tokens:
        pieces: list[str] = [""]
        for token in tokens:
            if token == "%":
                pieces.append("")
            else:
                pieces[-1] += token[1:]
        if len(pieces) == 1:
            return LikePlan("equal", pieces[0])
        if len(pieces) == 2:
            first, last = pieces
            if not first and not last:
                return LikePlan("any", "")
            if not last:
                return LikePlan("prefix", first)
            if not first:
                return LikePlan("suffix", last)
        if len(pieces) == 3 and not pieces[0] and not pieces[2]:
            return LikePlan("contains", pieces[1])
    regex = "".join(".*" if t == "%" else "." if t == "_" else _re2_literal(t[1]) for t in tokens)
    return LikePlan("regex", f"(?s)\\A{regex}\\z")


def _re2_literal(ch: str) -> str:
    if ch.isascii() and not ch.isalnum():
        return f"\\x{{{ord(ch):X}}}"
    return ch


def like(strings: Value, plan: LikePlan, *, negated: bool = False) -> Value:
    """Run a planned LIKE over ``strings`` (NULL in, NULL out)."""
    if plan.kind == "equal":
        result = xc.equal(strings, plan.text)
    elif plan.kind == "prefix":
        result = xc.starts_with(strings, pattern=plan.text)
    elif plan.kind == "suffix":
        result = xc.ends_with(strings, pattern=plan.text)
    elif plan.kind == "contains":
        result = xc.match_substring(strings, pattern=plan.text)
    elif plan.kind == "any":
        result = xc.match_substring(strings, pattern="")
    else:
        result = xc.match_substring_regex(strings, pattern=plan.text)
    return not_(result) if negated else result
