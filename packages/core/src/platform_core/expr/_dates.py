"""Dates and timestamps to and from text, as DuckDB 2.0 reads and writes them.

DuckDB reads more than ISO 8601 (``2020-1-2``, ``2020/01/02``, ``-44-03-15``,
``2020-01-02 (BC)``, ``epoch``, one-digit time fields, a zone after the time) and writes
years outside 1..9999 its own way (``0172-09-05 (BC)``, ``10000-01-01``). pyarrow's parser
and formatter cover ISO years 1..9999 only, so both directions are computed here from
year/month/day arithmetic (H. Hinnant's civil calendar algorithms) with vectorised
``pyarrow.compute`` calls: no Python per row, and the same code builds expressions.

Not supported (raise ``ConversionError``): ``infinity``/``-infinity`` (no Arrow value),
zone names such as ``Europe/Paris`` after a time.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from ._kernels import Value, cast, fill, lift, xc

__all__ = ["DATE_FORMS", "TIMESTAMP_FORMS", "format_date", "format_timestamp", "parse_temporal"]

DATE_FORMS: Final = (
    "[-]Y-M-D with '-', '/', ' ' or '\\' between (one or two digit month and day), "
    "optionally ' (BC)', optionally followed by a time; or 'epoch'"
)
TIMESTAMP_FORMS: Final = (
    "a date as for dates, then optionally 'T' or spaces and H:M[:S[.fraction]] "
    "(one or two digits each), and a zone Z, +HH, +HHMM or +HH:MM"
)

_SPACE: Final = r"[ \t\n\r\f\v]"
_PATTERN: Final = (
    rf"(?i)\A{_SPACE}*(?P<neg>-?)(?P<y>[0-9]+)(?P<s1>[-/ \\])(?P<m>[0-9]{{1,2}})"
    r"(?P<s2>[-/ \\])(?P<d>[0-9]{1,2})(?P<bc> \(BC\))?"
    r"(?P<time>(?:T|[ \t])[ \t]*(?P<H>[0-9]{1,2}):(?P<M>[0-9]{1,2})"
    r"(?::(?P<S>[0-9]{1,2})(?:\.(?P<F>[0-9]*))?)?"
    r"(?P<zone>Z|[+-](?P<zh>[0-9]{2})(?::?(?P<zm>[0-9]{2}))?)?)?"
    rf"(?P<tail>{_SPACE}*)\z"
)
_EPOCH: Final = rf"(?i)\A{_SPACE}*epoch{_SPACE}*\z"
_DAY_US: Final = 86_400_000_000
_DATE_LIMIT: Final = 2**31 - 2  # DuckDB's finite dates (+-2**31 - 1 mean infinity)
_TS_MIN: Final = -9_223_372_022_400_000_000  # 290309-12-22 (BC) 00:00:00
_TS_MAX: Final = 2**63 - 2


def _int(value: int) -> pa.Scalar:
    return pa.scalar(value, pa.int64())


def _num(text: Value) -> Value:
    """A digit string (empty as 0) as int64; the caller has bounded its length."""
    return cast(xc.if_else(xc.equal(text, ""), "0", text), pa.int64())


def _floordiv(a: Value, b: int) -> Value:
    """Floor division by a positive constant (Arrow integer division truncates)."""
    quotient = xc.divide(a, _int(b))
    inexact = xc.and_(xc.less(a, 0), xc.not_equal(xc.remainder(a, _int(b)), 0))
    return xc.subtract(quotient, cast(inexact, pa.int64()))


def days_from_civil(y: Value, m: Value, d: Value) -> Value:
    """Days since 1970-01-01 of the proleptic Gregorian y-m-d (astronomical years)."""
    y = xc.subtract(y, cast(xc.less_equal(m, 2), pa.int64()))
    era = _floordiv(y, 400)
    yoe = xc.subtract(y, xc.multiply(era, _int(400)))
    month = xc.if_else(xc.greater(m, 2), xc.subtract(m, _int(3)), xc.add(m, _int(9)))
    doy = xc.add(
        xc.divide(xc.add(xc.multiply(month, _int(153)), _int(2)), _int(5)),
        xc.subtract(d, _int(1)),
    )
    doe = xc.add(
        xc.subtract(
            xc.add(xc.multiply(yoe, _int(365)), xc.divide(yoe, _int(4))),
            xc.divide(yoe, _int(100)),
        ),
        doy,
    )
    return xc.subtract(xc.add(xc.multiply(era, _int(146097)), doe), _int(719468))


def civil_from_days(days: Value) -> tuple[Value, Value, Value]:
    """(year, month, day) of days since 1970-01-01, astronomical years."""
    z = xc.add(cast(days, pa.int64()), _int(719468))
    era = _floordiv(z, 146097)
    doe = xc.subtract(z, xc.multiply(era, _int(146097)))
    yoe = xc.divide(
        xc.subtract(
            xc.add(xc.subtract(doe, xc.divide(doe, _int(1460))), xc.divide(doe, _int(36524))),
            xc.divide(doe, _int(146096)),
        ),
        _int(365),
    )
    doy = xc.subtract(
        doe,
        xc.subtract(
            xc.add(xc.multiply(yoe, _int(365)), xc.divide(yoe, _int(4))),
            xc.divide(yoe, _int(100)),
        ),
    )
    mp = xc.divide(xc.add(xc.multiply(doy, _int(5)), _int(2)), _int(153))
    d = xc.add(
        xc.subtract(doy, xc.divide(xc.add(xc.multiply(mp, _int(153)), _int(2)), _int(5))),
        _int(1),
    )
    m = xc.if_else(xc.less(mp, 10), xc.add(mp, _int(3)), xc.subtract(mp, _int(9)))
    y = xc.add(xc.add(yoe, xc.multiply(era, _int(400))), cast(xc.less_equal(m, 2), pa.int64()))
    return y, m, d


def _days_in_month(y: Value, m: Value) -> Value:
    leap = xc.and_(
        xc.equal(xc.remainder(y, _int(4)), 0),
        xc.or_(
            xc.not_equal(xc.remainder(y, _int(100)), 0), xc.equal(xc.remainder(y, _int(400)), 0)
        ),
    )
    long_month = xc.is_in(m, value_set=pa.array([1, 3, 5, 7, 8, 10, 12], pa.int64()))
    february = xc.if_else(leap, _int(29), _int(28))
    return xc.if_else(xc.equal(m, 2), february, xc.if_else(long_month, _int(31), _int(30)))


def parse_temporal(text: Value, *, timestamp: bool, zoned: bool) -> tuple[Value, Value]:
    """``(value, valid)``: days (date) or microseconds (timestamp) since the epoch as
    int64, and whether each text parsed as DuckDB would; invalid rows hold 0, NULL text
    gives NULL.

    ``zoned`` applies a written zone offset (TIMESTAMP WITH TIME ZONE); naive timestamps
    ignore it, as DuckDB does.
    """
    parts = xc.extract_regex(text, _PATTERN)

    def part(name: str) -> Value:
        return fill_text(xc.struct_field(parts, name))

    matched = xc.is_valid(parts)
    year_text = part("y")
    has_time = xc.not_equal(part("time"), "")
    shape_ok = xc.and_(
        xc.and_(matched, xc.equal(part("s1"), part("s2"))),
        xc.less_equal(pc.utf8_length(year_text), 9),  # beyond any representable date
    )
    tail = part("tail")
    spaces_only = xc.equal(xc.replace_substring(tail, " ", ""), "")
    # After a time only spaces may follow; after a bare date any space (none in TIMESTAMP).
    shape_ok = xc.and_(
        shape_ok,
        xc.if_else(has_time, spaces_only, xc.equal(tail, "") if timestamp else True),
    )
    ok = fill(shape_ok, False)
    year = _num(xc.if_else(ok, year_text, "0"))
    year = xc.if_else(xc.equal(part("neg"), "-"), xc.negate(year), year)
    year = xc.if_else(xc.equal(part("bc"), ""), year, xc.subtract(_int(1), year))
    month = _num(xc.if_else(ok, part("m"), "1"))
    day = _num(xc.if_else(ok, part("d"), "1"))
    ok = xc.and_(
        ok,
        xc.and_(
            xc.and_(xc.greater_equal(month, 1), xc.less_equal(month, 12)),
            xc.and_(xc.greater_equal(day, 1), xc.less_equal(day, _days_in_month(year, month))),
        ),
    )
    days = days_from_civil(year, xc.if_else(ok, month, _int(1)), xc.if_else(ok, day, _int(1)))
    epoch = fill(xc.match_substring_regex(text, _EPOCH), False)
    if not timestamp:
        ok = xc.and_(ok, xc.less_equal(xc.abs(days), _DATE_LIMIT))
        time_ok = _time_fields(part, has_time)[1]
        ok = xc.or_(xc.and_(ok, time_ok), epoch)
        return _null_where_null(text, xc.if_else(ok, xc.if_else(epoch, _int(0), days), _int(0))), ok
    micros_of_day, time_ok = _time_fields(part, has_time)
    ok = xc.and_(ok, time_ok)
    safe_days = xc.if_else(ok, days, _int(0))
    # Bound the day before multiplying, then keep the sum below 2**63.
    last_day = 106_751_991  # 294247-01-10, the last day of DuckDB's timestamps
    in_span = xc.less_equal(xc.abs(safe_days), last_day)
    over = xc.and_(
        xc.equal(safe_days, last_day),
        xc.greater(micros_of_day, _TS_MAX - last_day * _DAY_US),
    )
    ok = xc.and_(ok, xc.and_(in_span, xc.invert(over)))
    safe_days = xc.if_else(ok, safe_days, _int(0))
    micros = xc.add(xc.multiply(safe_days, _int(_DAY_US)), xc.if_else(ok, micros_of_day, _int(0)))
    if zoned:
        micros = xc.subtract(micros, _zone_offset(part))
    ok = xc.and_(ok, xc.and_(xc.greater_equal(micros, _TS_MIN), xc.less_equal(micros, _TS_MAX)))
    ok = xc.or_(ok, epoch)
    return _null_where_null(text, xc.if_else(xc.and_(ok, xc.invert(epoch)), micros, _int(0))), ok


def _null_where_null(text: Value, value: Value) -> Value:
    return xc.if_else(xc.is_null(text), pa.scalar(None, pa.int64()), value)


def fill_text(value: Value) -> Value:
    """NULL text (an optional group that did not match) as ''."""
    return xc.coalesce(*lift(value, pa.scalar("", pa.string())))


def _time_fields(part: object, has_time: Value) -> tuple[Value, Value]:
    """Microseconds into the day of the time part (0 without one), and its validity."""
    get = part  # a callable: group name -> text
    assert callable(get)
    hours, minutes, seconds = (_num(xc.if_else(has_time, get(n), "0")) for n in ("H", "M", "S"))
    fraction = pc.utf8_rpad(pc.utf8_slice_codeunits(get("F"), 0, 6), 6, "0")
    micros = _num(xc.if_else(has_time, fraction, "0"))
    rest_zero = xc.and_(
        xc.and_(xc.equal(minutes, 0), xc.equal(seconds, 0)),
        xc.equal(xc.replace_substring(get("F"), "0", ""), ""),
    )
    valid = xc.and_(
        xc.or_(xc.less_equal(hours, 23), xc.and_(xc.equal(hours, 24), rest_zero)),
        xc.and_(xc.less_equal(minutes, 59), xc.less_equal(seconds, 59)),
    )
    total = xc.add(
        xc.add(xc.multiply(hours, _int(3_600_000_000)), xc.multiply(minutes, _int(60_000_000))),
        xc.add(xc.multiply(seconds, _int(1_000_000)), micros),
    )
    return total, valid


def _zone_offset(part: object) -> Value:
    """The written zone offset in microseconds (0 for Z or none)."""
    assert callable(part)
    hours = _num(part("zh"))
    minutes = _num(part("zm"))
    magnitude = xc.add(
        xc.multiply(hours, _int(3_600_000_000)), xc.multiply(minutes, _int(60_000_000))
    )
    negative = xc.starts_with(part("zone"), "-")
    return xc.if_else(negative, xc.negate(magnitude), magnitude)


# --- formatting ---------------------------------------------------------------------------


def _pad(value: Value, width: int) -> Value:
    return pc.utf8_lpad(cast(value, pa.string()), width, "0")


def _join(*parts: object) -> Value:
    return xc.binary_join_element_wise(*lift(*parts), "")


def _date_parts(days: Value) -> tuple[Value, Value]:
    """DuckDB's ``YYYY-MM-DD`` for days since the epoch, and the era suffix."""
    y, m, d = civil_from_days(days)
    bc = xc.less_equal(y, 0)
    shown_year = xc.if_else(bc, xc.subtract(_int(1), y), y)
    text = _join(_pad(shown_year, 4), "-", _pad(m, 2), "-", _pad(d, 2))
    return text, xc.if_else(bc, " (BC)", "")


def format_date(value: Value) -> Value:
    """A date32 as DuckDB writes it (``0172-09-05 (BC)`` before year 1)."""
    text, era = _date_parts(cast(value, pa.int32()))
    return _join(text, era)


def format_timestamp(value: Value, *, zoned: bool) -> Value:
    """A timestamp[us] as DuckDB writes it: fraction without trailing zeros, the era after
    the date, and ``+00`` for a zoned value (DuckDB session time zone UTC)."""
    micros = cast(cast(value, pa.timestamp("us")), pa.int64())
    days = _floordiv(micros, _DAY_US)
    of_day = xc.subtract(micros, xc.multiply(days, _int(_DAY_US)))
    date_text, era = _date_parts(days)
    seconds, fraction = xc.divide(of_day, _int(1_000_000)), xc.remainder(of_day, _int(1_000_000))
    clock = _join(
        _pad(xc.divide(seconds, _int(3600)), 2),
        ":",
        _pad(xc.remainder(xc.divide(seconds, _int(60)), _int(60)), 2),
        ":",
        _pad(xc.remainder(seconds, _int(60)), 2),
    )
    digits = pc.utf8_rtrim(_pad(fraction, 6), characters="0")
    fraction_text = xc.if_else(xc.equal(digits, ""), "", _join(".", digits))
    text = _join(date_text, era, " ", clock, fraction_text)
    return _join(text, "+00") if zoned else text
