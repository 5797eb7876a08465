"""The platform's field-type vocabulary and its mapping to and from Arrow.

Every column of every dataset has one of these types::

    u8 u16 u32 i32 i64 f32 f64 bool8 utf8 utf8_ref json bytes i32_array f32_array
    date timestamp[us, tz] decimal(p, s)

``parse_type`` reads the canonical spelling (``str(t)``), Arrow type names (``Utf8``,
``Int64``, ``large_string``, ``double``, ... case-insensitive) and pyarrow ``DataType``s.
``FieldType.to_arrow`` is total; ``from_arrow`` widens lossless Arrow types into the
vocabulary (int8 -> i32, large_string -> utf8, timestamp[ms] -> timestamp[us], ...) and
raises ``BadInputError`` with what to cast to for anything else, so data never changes
meaning silently on the way in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from platform_core._suggest import did_you_mean
from platform_core.errors import BadInputError

__all__ = [
    "BOOL8",
    "BYTES",
    "DATE",
    "F32",
    "F32_ARRAY",
    "F64",
    "I32",
    "I32_ARRAY",
    "I64",
    "JSON",
    "MAX_DECIMAL_PRECISION",
    "U8",
    "U16",
    "U32",
    "UTF8",
    "UTF8_REF",
    "VOCABULARY",
    "FieldType",
    "decimal",
    "from_arrow",
    "parse_type",
    "timestamp",
    "type_name",
]

#: Every kind, in the order the vocabulary is documented; parametrised kinds last.
VOCABULARY: Final = (
    "u8",
    "u16",
    "u32",
    "i32",
    "i64",
    "f32",
    "f64",
    "bool8",
    "utf8",
    "utf8_ref",
    "json",
    "bytes",
    "i32_array",
    "f32_array",
    "date",
    "timestamp",
    "decimal",
)
_SIMPLE_KINDS: Final = frozenset(VOCABULARY) - {"timestamp", "decimal"}
_VOCABULARY_TEXT: Final = ", ".join([*VOCABULARY[:-2], "timestamp[us, tz]", "decimal(p, s)"])
MAX_DECIMAL_PRECISION: Final = 38


@dataclass(frozen=True, slots=True, repr=False)
class FieldType:
    """One type of the vocabulary: a frozen, hashable value whose ``str()`` is canonical.

    ``kind`` is one of ``VOCABULARY``; ``tz`` is set only for timestamps (None = naive) and
    ``precision``/``scale`` only (and always) for decimals. Build one with ``parse_type`` or
    the module constants (``I64``, ``timestamp("UTC")``, ``decimal(10, 2)``).
    """

    kind: str
    tz: str | None = None
    precision: int | None = None
    scale: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in VOCABULARY:
            raise BadInputError(
                f'unknown field type kind "{self.kind}"{did_you_mean(str(self.kind), VOCABULARY)} '
                f"(kinds: {', '.join(VOCABULARY)}; use parse_type() for other spellings)",
                value=str(self.kind),
            )
        if self.kind == "timestamp":
            if self.tz is not None:
                _check_tz(self.tz)
        elif self.tz is not None:
            raise BadInputError(f'only timestamps have a time zone, not "{self.kind}"')
        if self.kind == "decimal":
            _check_decimal(self.precision, self.scale)
        elif self.precision is not None or self.scale is not None:
            raise BadInputError(f'only decimals have a precision and scale, not "{self.kind}"')

    def __str__(self) -> str:
        if self.kind == "timestamp":
            return "timestamp[us]" if self.tz is None else f"timestamp[us, {self.tz}]"
        if self.kind == "decimal":
            return f"decimal({self.precision}, {self.scale})"
        return self.kind

    def __repr__(self) -> str:
        return f"<FieldType {self}>"

    def to_arrow(self) -> pa.DataType:
        """The Arrow type that stores this field type (defined for every type)."""
        if self.kind == "timestamp":
            return pa.timestamp("us", self.tz)
        if self.kind == "decimal":
            return pa.decimal128(self.precision, self.scale)
        return _SIMPLE_TO_ARROW[self.kind]()


def timestamp(tz: str | None = None) -> FieldType:
    """``timestamp[us, tz]`` (``tz=None``: naive ``timestamp[us]``)."""
    return FieldType("timestamp", tz=tz)


def decimal(precision: int, scale: int = 0) -> FieldType:
    """``decimal(precision, scale)``, stored as Arrow decimal128 (precision 1..38)."""
    return FieldType("decimal", precision=precision, scale=scale)


U8: Final = FieldType("u8")
U16: Final = FieldType("u16")
U32: Final = FieldType("u32")
I32: Final = FieldType("i32")
I64: Final = FieldType("i64")
F32: Final = FieldType("f32")
F64: Final = FieldType("f64")
BOOL8: Final = FieldType("bool8")
UTF8: Final = FieldType("utf8")
UTF8_REF: Final = FieldType("utf8_ref")
JSON: Final = FieldType("json")
BYTES: Final = FieldType("bytes")
I32_ARRAY: Final = FieldType("i32_array")
F32_ARRAY: Final = FieldType("f32_array")
DATE: Final = FieldType("date")

_SIMPLE_TO_ARROW: Final[dict[str, Any]] = {
    "u8": pa.uint8,
    "u16": pa.uint16,
    "u32": pa.uint32,
    "i32": pa.int32,
    "i64": pa.int64,
    "f32": pa.float32,
    "f64": pa.float64,
    "bool8": pa.bool_,
    "utf8": pa.utf8,
    "utf8_ref": lambda: pa.dictionary(pa.int32(), pa.utf8()),
    "json": pa.json_,
    "bytes": pa.binary,
    "i32_array": lambda: pa.list_(pa.int32()),
    "f32_array": lambda: pa.list_(pa.float32()),
    "date": pa.date32,
}


def _check_tz(tz: object) -> None:
    """Accept fixed offsets (``+05:30``) and IANA zone names known to this machine."""
    if not isinstance(tz, str) or not tz:
        raise BadInputError(f"time zone must be a non-empty string, got {tz!r}")
    if re.fullmatch(r"[+-](?:[01]\d|2[0-3]):[0-5]\d", tz):
        return
    import zoneinfo  # here, not at import: it costs `import strand` several milliseconds

    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        known = zoneinfo.available_timezones()
        if not known:  # no time zone database here; leave the check to Arrow
            return
        raise BadInputError(
            f'unknown time zone "{tz}"{did_you_mean(tz, known)} '
            '(use an IANA name such as "UTC" or "Europe/Paris", or an offset such as "+05:30")',
            value=tz,
        ) from None


def _check_decimal(precision: object, scale: object) -> None:
    if not isinstance(precision, int) or isinstance(precision, bool):
        raise BadInputError(f"decimal precision must be an integer, got {precision!r}")
    if not isinstance(scale, int) or isinstance(scale, bool):
        raise BadInputError(f"decimal scale must be an integer, got {scale!r}")
    if not 1 <= precision <= MAX_DECIMAL_PRECISION:
        raise BadInputError(
            f"decimal precision must be between 1 and {MAX_DECIMAL_PRECISION}, got {precision} "
            f"in decimal({precision}, {scale}); use f64 or utf8 for wider numbers",
            value=f"decimal({precision}, {scale})",
        )
    if not 0 <= scale <= precision:
        raise BadInputError(
            f"decimal scale must be between 0 and the precision ({precision}), got {scale} "
            f"in decimal({precision}, {scale})",
            value=f"decimal({precision}, {scale})",
        )


# --- text --------------------------------------------------------------------------------

# Arrow (C++, Rust, pyarrow) names for each kind, lower-cased; the vocabulary names map to
# themselves. Narrow Arrow types map to the kind that from_arrow widens them to.
_ALIASES: Final[dict[str, str]] = {
    **{kind: kind for kind in _SIMPLE_KINDS},
    "uint8": "u8",
    "uint16": "u16",
    "uint32": "u32",
    "int8": "i32",
    "int16": "i32",
    "int32": "i32",
    "int64": "i64",
    "float16": "f32",
    "halffloat": "f32",
    "float": "f32",
    "float32": "f32",
    "double": "f64",
    "float64": "f64",
    "bool": "bool8",
    "boolean": "bool8",
    "string": "utf8",
    "large_string": "utf8",
    "largestring": "utf8",
    "large_utf8": "utf8",
    "largeutf8": "utf8",
    "string_view": "utf8",
    "stringview": "utf8",
    "utf8_view": "utf8",
    "utf8view": "utf8",
    "binary": "bytes",
    "large_binary": "bytes",
    "largebinary": "bytes",
    "binary_view": "bytes",
    "binaryview": "bytes",
    "date32": "date",
    "date32[day]": "date",
    "arrow.json": "json",
    "extension<arrow.json>": "json",
}

# Names people will try that have no lossless place in the vocabulary, with what to do.
_UNSUPPORTED_NAMES: Final[dict[str, str]] = {
    "uint64": "values above 2**63-1 do not fit i64; use i64 if they fit, or decimal(20, 0)",
    "u64": "values above 2**63-1 do not fit i64; use i64 if they fit, or decimal(20, 0)",
    "date64": "use date (days) or timestamp[us]",
    "null": "give the column the type its values will have (utf8 if unknown)",
    "time32": "use utf8 or i64 (microseconds since midnight)",
    "time64": "use utf8 or i64 (microseconds since midnight)",
    "duration": "use i64 (a count of your unit)",
    "struct": "use json, or one column per member",
    "map": "use json",
}

_TS_RE: Final = re.compile(
    r"timestamp\s*(?:\[\s*(?P<unit>\w+)\s*(?:,\s*(?:tz\s*=\s*)?(?P<tz>[^\]]*?)\s*)?\])?",
    re.IGNORECASE,
)
_DEC_RE: Final = re.compile(
    r"decimal(?:32|64|128|256)?\s*\(\s*(?P<p>[+-]?\d+)\s*(?:,\s*(?P<s>[+-]?\d+)\s*)?\)",
    re.IGNORECASE,
)
_LIST_RE: Final = re.compile(
    r"(?:large_?)?list(?:_?view)?\s*<\s*(?:item\s*:\s*)?(?P<inner>.+?)(?:\s+not\s+null)?\s*>",
    re.IGNORECASE,
)
_DICT_RE: Final = re.compile(
    r"dictionary\s*<\s*values\s*=\s*(?P<values>[^,>]+?)\s*,\s*indices\s*=\s*(?P<indices>[^,>]+?)"
    r"\s*(?:,\s*ordered\s*=\s*[01]\s*)?>",
    re.IGNORECASE,
)


_MAX_TYPE_TEXT: Final = 120
"""Longer text is no type of the vocabulary; refusing it early bounds parsing work."""


def parse_type(value: str | FieldType | pa.DataType) -> FieldType:
    """Read a field type from its canonical text, an Arrow type name, or a pyarrow type."""
    if isinstance(value, FieldType):
        return value
    if isinstance(value, pa.DataType):
        return from_arrow(value)
    if not isinstance(value, str):
        raise BadInputError(
            f"a field type must be a string, FieldType or pyarrow DataType, "
            f"got {type(value).__name__} {value!r}"
        )
    text = value.strip()
    if len(text) > _MAX_TYPE_TEXT:
        raise BadInputError(
            f"a field type is at most {_MAX_TYPE_TEXT} characters, got {len(text)}: "
            f'"{text[:40]}..." (allowed: {_VOCABULARY_TEXT})'
        )
    lowered = text.lower()
    if lowered in _ALIASES:
        return FieldType(_ALIASES[lowered])
    if m := _TS_RE.fullmatch(text):
        return _parse_timestamp(value, m["unit"], m["tz"])
    if m := _DEC_RE.fullmatch(text):
        return decimal(int(m["p"]), int(m["s"] or 0))
    if m := _LIST_RE.fullmatch(text):
        return _list_of(value, parse_type(m["inner"]))
    if m := _DICT_RE.fullmatch(text):
        if parse_type(m["values"]) == UTF8 and _is_int_name(m["indices"]):
            return UTF8_REF
        raise BadInputError(
            f'unsupported field type "{value}": only dictionaries of strings (utf8_ref) are '
            "supported; use the dictionary's value type instead",
            value=value,
        )
    base = re.split(r"[\[<(]", lowered, maxsplit=1)[0].strip()
    if base in _UNSUPPORTED_NAMES:
        raise BadInputError(
            f'unsupported field type "{value}": {_UNSUPPORTED_NAMES[base]} '
            f"(allowed: {_VOCABULARY_TEXT})",
            value=value,
        )
    raise BadInputError(
        f'unknown field type "{value}"{did_you_mean(text, [*VOCABULARY, *_ALIASES])} '
        f"(allowed: {_VOCABULARY_TEXT}; Arrow names such as Utf8, Int64, Float64 work too)",
        value=value,
    )


def _parse_timestamp(text: str, unit: str | None, tz: str | None) -> FieldType:
    unit = (unit or "us").lower()
    if unit == "ns":
        raise BadInputError(
            f'unsupported field type "{text}": nanoseconds do not fit the platform\'s '
            "microsecond timestamps without loss; use timestamp[us] or timestamp[us, <tz>]",
            value=text,
        )
    if unit not in ("s", "ms", "us"):
        raise BadInputError(
            f'unknown timestamp unit "{unit}" in "{text}" (timestamps are timestamp[us] '
            "or timestamp[us, <tz>]; s and ms widen to us)",
            value=text,
        )
    if tz is not None and tz.lower() in ("", "none"):
        raise BadInputError(f'missing time zone in "{text}" (write timestamp[us] for naive)')
    return timestamp(tz)


def _list_of(text: str, element: FieldType) -> FieldType:
    if element == I32:
        return I32_ARRAY
    if element == F32:
        return F32_ARRAY
    raise BadInputError(
        f'unsupported field type "{text}": lists hold int32 (i32_array) or float32 '
        f"(f32_array), not {element}; use json for other lists",
        value=text,
    )


def _is_int_name(text: str) -> bool:
    return text.strip().lower() in {f"{s}int{n}" for s in ("", "u") for n in (8, 16, 32, 64)}


# --- Arrow -------------------------------------------------------------------------------

_SUPPORTED_ARROW: Final = (
    "int8/16/32/64, uint8/16/32, float16/32/64, bool, string/large_string/string_view, "
    "binary/large_binary/binary_view, dictionary<int, string>, date32, timestamp[s|ms|us, tz], "
    "decimal with precision <= 38, list/large_list/list_view of int8/16/32 or float16/32, "
    "arrow.json"
)


def from_arrow(arrow_type: pa.DataType) -> FieldType:
    """The vocabulary type for an Arrow type, widening lossless cases; else BadInputError."""
    t = arrow_type
    types = pa.types
    if not isinstance(t, pa.DataType):
        raise BadInputError(f"expected a pyarrow DataType, got {type(t).__name__} {t!r}")
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.json":
            return JSON
        raise _unsupported(t, "decode the extension to its storage type first")
    if types.is_int8(t) or types.is_int16(t) or types.is_int32(t):
        return I32
    simple = {
        pa.int64(): I64,
        pa.uint8(): U8,
        pa.uint16(): U16,
        pa.uint32(): U32,
        pa.float16(): F32,
        pa.float32(): F32,
        pa.float64(): F64,
        pa.bool_(): BOOL8,
        pa.date32(): DATE,
    }
    if t in simple:
        return simple[t]
    if types.is_string(t) or types.is_large_string(t) or types.is_string_view(t):
        return UTF8
    if types.is_binary(t) or types.is_large_binary(t) or types.is_binary_view(t):
        return BYTES
    if types.is_dictionary(t):
        if types.is_integer(t.index_type) and _from_arrow_or_none(t.value_type) == UTF8:
            return UTF8_REF
        raise _unsupported(t, "only dictionaries of strings are supported; cast to the value type")
    if types.is_timestamp(t):
        if t.unit == "ns":
            raise _unsupported(
                t,
                "nanoseconds would be truncated to the platform's microseconds; "
                f"cast to timestamp('us'{'' if t.tz is None else f', {t.tz!r}'}) if that is acceptable",
            )
        return timestamp(t.tz)
    if types.is_decimal(t):
        if t.precision > MAX_DECIMAL_PRECISION:
            raise _unsupported(t, "precision above 38 does not fit decimal128; cast to float64")
        if not 0 <= t.scale <= t.precision:
            raise _unsupported(t, "the scale must be between 0 and the precision; rescale it")
        return decimal(t.precision, t.scale)
    if (
        types.is_list(t)
        or types.is_large_list(t)
        or types.is_list_view(t)
        or types.is_large_list_view(t)
    ):
        item = t.value_type
        if types.is_int8(item) or types.is_int16(item) or types.is_int32(item):
            return I32_ARRAY
        if types.is_float16(item) or types.is_float32(item):
            return F32_ARRAY
        raise _unsupported(t, "lists must hold int32 or float32; cast the elements or use json")
    raise _unsupported(t, _ARROW_ADVICE.get(_arrow_family(t), "cast it to a supported type"))


def _from_arrow_or_none(arrow_type: pa.DataType) -> FieldType | None:
    """Like ``from_arrow`` but None instead of raising for unsupported types."""
    try:
        return from_arrow(arrow_type)
    except BadInputError:
        return None


_ARROW_ADVICE: Final = {
    "uint64": "values above 2**63-1 do not fit int64; cast to int64 if they fit, or decimal128(20, 0)",
    "date64": "cast to date32",
    "time": "cast to string or int64",
    "duration": "cast to int64",
    "null": "cast to the type the values will have (string if unknown)",
    "nested": "encode as JSON text (arrow.json) or flatten into columns",
    "fixed_size_binary": "cast to binary",
    "fixed_size_list": "cast to list<int32> or list<float32>",
}


def _arrow_family(t: pa.DataType) -> str:
    types = pa.types
    if types.is_uint64(t):
        return "uint64"
    if types.is_date64(t):
        return "date64"
    if types.is_time(t):
        return "time"
    if types.is_duration(t):
        return "duration"
    if types.is_null(t):
        return "null"
    if types.is_fixed_size_binary(t):
        return "fixed_size_binary"
    if types.is_fixed_size_list(t):
        return "fixed_size_list"
    if types.is_struct(t) or types.is_map(t) or types.is_union(t):
        return "nested"
    return "other"


def _unsupported(t: pa.DataType, advice: str) -> BadInputError:
    return BadInputError(
        f"Arrow type {t} is not supported: {advice} (supported: {_SUPPORTED_ARROW})",
        arrow_type=str(t),
    )


def type_name(arrow_type: pa.DataType) -> str:
    """The name a column of ``arrow_type`` is shown with: the vocabulary's, else Arrow's.

    Results, schemas and DESCRIBE all name types this way, so ``i64`` in one is ``i64`` in
    the others; a query may produce a type outside the vocabulary (``uint64``, a list), which
    keeps its Arrow name rather than failing the display.
    """
    try:
        return str(from_arrow(arrow_type))
    except BadInputError:
        return str(arrow_type)
