"""Strand's schema: core field types plus per-field flags, and its binary form.

The binary schema is what the segment header stores and what attach compares; its FNV-1a
64-bit hash is the fingerprint (as the original Strand does). Every core field type is
storable; ``Layout`` says how a type is laid out in a batch block (Arrow's own buffers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Final, Literal

import pyarrow as pa

from platform_core import BadInputError, Field, FieldType, Schema, parse_type
from platform_core.types import VOCABULARY
from strand.errors import StrandConfigError, StrandHeaderError

__all__ = [
    "FLAG_NULLABLE",
    "FLAG_SORTED_ASC",
    "FLAG_SORTED_DESC",
    "Layout",
    "StrandField",
    "StrandSchema",
    "fnv1a64",
]

FLAG_NULLABLE: Final = 1
FLAG_SORTED_ASC: Final = 2
FLAG_SORTED_DESC: Final = 4

_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
_MASK64: Final = (1 << 64) - 1
_SCHEMA_MAGIC: Final = b"SSC1"


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64-bit: the schema fingerprint (runs once per attach, on a few hundred bytes)."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


class Layout(Enum):
    """How a column's values sit in a block: Arrow's buffer layout for the type."""

    FIXED = "fixed"  # one values buffer of ``width`` bytes per row
    BOOL = "bool"  # bit-packed values buffer
    VAR = "var"  # int32 offsets (rows + 1) and a data buffer
    LIST = "list"  # int32 offsets (rows + 1) and a child values buffer of 4-byte elements


_WIDTH: Final[dict[str, int]] = {
    "u8": 1,
    "u16": 2,
    "u32": 4,
    "i32": 4,
    "i64": 8,
    "f32": 4,
    "f64": 8,
    "date": 4,
    "timestamp": 8,
    "decimal": 16,
    "utf8_ref": 4,  # an int32 index into the intern table
}
_VAR_KINDS: Final = frozenset({"utf8", "json", "bytes"})
_LIST_KINDS: Final = frozenset({"i32_array", "f32_array"})
_SORTABLE: Final = frozenset(
    {"u8", "u16", "u32", "i32", "i64", "f32", "f64", "date", "timestamp", "utf8"}
)


@dataclass(frozen=True)
class StrandField:
    """One column: name, core type, nullability and an optional sort order the writer enforces.

    A sorted field (``sorted="asc"`` or ``"desc"``) must not be nullable: ``find_first``
    binary-searches it, and the writer refuses a batch that breaks the order.
    """

    name: str
    type: FieldType
    nullable: bool = True
    sorted: Literal["asc", "desc"] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise StrandConfigError(f"a field name must be a non-empty string, got {self.name!r}")
        if len(self.name.encode()) > 0xFFFF:
            raise StrandConfigError(f"field name {self.name[:40]!r}... is longer than 65535 bytes")
        if not isinstance(self.type, FieldType):
            try:
                object.__setattr__(self, "type", parse_type(self.type))
            except BadInputError as exc:
                raise StrandConfigError(f'field "{self.name}": {exc.message}') from None
        if self.sorted not in (None, "asc", "desc"):
            raise StrandConfigError(
                f'field "{self.name}": sorted must be "asc", "desc" or None, got {self.sorted!r}'
            )
        if self.sorted is not None:
            if self.nullable:
                raise StrandConfigError(
                    f'field "{self.name}" is flagged sorted_{self.sorted} and nullable; a sorted '
                    "field cannot hold nulls (declare it with nullable=False)"
                )
            if self.type.kind not in _SORTABLE:
                raise StrandConfigError(
                    f'field "{self.name}" of type {self.type} cannot be flagged sorted; '
                    f"sortable types: {', '.join(sorted(_SORTABLE))}"
                )

    @property
    def flags(self) -> int:
        """The header's flag bits: nullable, sorted_asc, sorted_desc."""
        return (
            (FLAG_NULLABLE if self.nullable else 0)
            | (FLAG_SORTED_ASC if self.sorted == "asc" else 0)
            | (FLAG_SORTED_DESC if self.sorted == "desc" else 0)
        )

    @cached_property
    def layout(self) -> Layout:
        """Which of Arrow's buffer layouts this type uses."""
        kind = self.type.kind
        if kind == "bool8":
            return Layout.BOOL
        if kind in _VAR_KINDS:
            return Layout.VAR
        if kind in _LIST_KINDS:
            return Layout.LIST
        return Layout.FIXED

    @cached_property
    def width(self) -> int:
        """Bytes per value in the values buffer (FIXED), or per element (LIST); 0 otherwise."""
        if self.type.kind in _LIST_KINDS:
            return 4
        return _WIDTH.get(self.type.kind, 0)

    @cached_property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type ``read_batch`` hands out for this column."""
        return self.type.to_arrow()

    def to_arrow(self) -> pa.Field:
        """The ``pyarrow.Field``, with the sort flag kept as field metadata."""
        meta = {b"strand.sorted": self.sorted.encode()} if self.sorted else None
        return pa.field(self.name, self.arrow_type, nullable=self.nullable, metadata=meta)


class StrandSchema:
    """The ordered fields of a strand, with their binary form and FNV-1a fingerprint."""

    __slots__ = (
        "_binary", "_positions", "checked", "fields", "has_sorted", "ipc_schema", "last_input",
        "names_list", "storage_types",
    )  # fmt: skip

    def __init__(self, fields: list[StrandField] | tuple[StrandField, ...]) -> None:
        fields = tuple(fields)
        if not fields:
            raise StrandConfigError("a strand schema needs at least one field")
        if len(fields) > 0xFFFF:
            raise StrandConfigError(
                f"a strand schema holds at most 65535 fields, got {len(fields)}"
            )
        positions: dict[str, int] = {}
        for i, f in enumerate(fields):
            if not isinstance(f, StrandField):
                raise StrandConfigError(f"schema entry {i} must be a StrandField, got {f!r}")
            if f.name in positions:
                raise StrandConfigError(f'duplicate field name "{f.name}" in the strand schema')
            positions[f.name] = i
        self.fields = fields
        self._positions = positions
        self._binary = _encode(fields)
        self.names_list = [f.name for f in fields]
        # the Arrow types a column must already have to be copied without conversion
        self.storage_types = [_storage_type(f) for f in fields]
        # the schema of a block's Arrow IPC message: every column in its storage form
        self.ipc_schema = pa.schema([pa.field(f.name, _ipc_type(f)) for f in fields])
        # fields whose incoming columns need a check even on the fast path (nulls, list items)
        self.checked = [
            i for i, f in enumerate(fields) if not f.nullable or f.layout is Layout.LIST
        ]
        self.has_sorted = any(f.sorted for f in fields)
        self.last_input: pa.Schema | None = None  # cache of the last batch schema accepted

    @classmethod
    def of(
        cls,
        schema: StrandSchema | Schema | pa.Schema | list[StrandField],
        sorted: dict[str, Literal["asc", "desc"]] | None = None,
    ) -> StrandSchema:
        """Build from a core ``Schema``, a ``pyarrow.Schema`` (types widened as core does;
        ``strand.sorted`` field metadata honoured) or a list of ``StrandField``s."""
        if isinstance(schema, StrandSchema) and not sorted:
            return schema
        order = dict(sorted or {})
        if isinstance(schema, StrandSchema):
            fields = list(schema.fields)
        elif isinstance(schema, pa.Schema):
            fields = []
            for af in schema:
                meta = af.metadata or {}
                flag = meta.get(b"strand.sorted")
                core = _core_field(af)
                sort = flag.decode() if flag else None
                fields.append(StrandField(core.name, core.type, core.nullable, sort))
        elif isinstance(schema, Schema):
            fields = [StrandField(f.name, f.type, f.nullable) for f in schema]
        else:
            fields = list(schema)
        names = {f.name for f in fields}
        unknown = set(order) - names
        if unknown:
            raise StrandConfigError(
                f"sorted names unknown fields {sorted_names(unknown)}; fields: {sorted_names(names)}"
            )
        fields = [
            StrandField(f.name, f.type, f.nullable, order[f.name]) if f.name in order else f
            for f in fields
        ]
        return cls(fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StrandSchema) and other._binary == self._binary

    def __hash__(self) -> int:
        return hash(self._binary)

    def __repr__(self) -> str:
        return f"StrandSchema({list(self.fields)!r})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def index(self, name: str) -> int:
        """Position of a field; ``StrandValueError`` naming the fields if there is none."""
        try:
            return self._positions[name]
        except KeyError:
            from strand.errors import StrandValueError

            raise StrandValueError(
                f'no field "{name}" in this strand; fields: {", ".join(self.names)}'
            ) from None

    def to_binary(self) -> bytes:
        """The header's binary schema."""
        return self._binary

    @property
    def fingerprint(self) -> int:
        """FNV-1a 64 of the binary schema."""
        return fnv1a64(self._binary)

    def to_arrow(self) -> pa.Schema:
        """The ``pyarrow.Schema`` of the batches ``read_batch`` returns."""
        return pa.schema([f.to_arrow() for f in self.fields])

    @classmethod
    def from_binary(cls, data: bytes) -> StrandSchema:
        """Decode a header's binary schema; ``StrandHeaderError`` if it is malformed."""
        try:
            return cls(_decode(data))
        except (struct.error, UnicodeDecodeError, IndexError, BadInputError) as exc:
            raise StrandHeaderError(f"the header's schema cannot be decoded: {exc}") from None

    def diff(self, other: StrandSchema) -> str:
        """A sentence naming the first difference between two schemas (for attach errors)."""
        if self.names != other.names:
            return f"fields are ({', '.join(self.names)}) here but ({', '.join(other.names)})"
        for a, b in zip(self.fields, other.fields, strict=True):
            if a != b:
                return f'field "{a.name}" is {_describe(a)} here but {_describe(b)}'
        return "the schemas are equal"


def _ipc_type(f: StrandField) -> pa.DataType:
    """The Arrow type a column is stored as: intern positions, JSON as its utf8 storage."""
    kind = f.type.kind
    if kind == "utf8_ref":
        return pa.int32()
    if kind == "json":
        return pa.utf8()
    return f.arrow_type


def _storage_type(f: StrandField) -> pa.DataType | None:
    if f.type.kind in ("utf8_ref", "json"):
        return None  # always converted (intern handles, JSON extension storage)
    return f.arrow_type


def sorted_names(names: set[str]) -> str:
    return ", ".join(sorted(names))


def _describe(f: StrandField) -> str:
    text = str(f.type) + (" nullable" if f.nullable else " not null")
    return text + (f" sorted {f.sorted}" if f.sorted else "")


def _core_field(af: pa.Field) -> Field:
    try:
        return Field.from_arrow(af)
    except BadInputError as exc:
        raise StrandConfigError(exc.message) from None


def _encode(fields: tuple[StrandField, ...]) -> bytes:
    out = [_SCHEMA_MAGIC, struct.pack("<H", len(fields))]
    for f in fields:
        name = f.name.encode()
        tz = (f.type.tz or "").encode()
        out.append(struct.pack("<H", len(name)))
        out.append(name)
        out.append(
            struct.pack(
                "<BBBBB",
                VOCABULARY.index(f.type.kind),
                f.flags,
                f.type.precision or 0,
                f.type.scale or 0,
                len(tz),
            )
        )
        out.append(tz)
    return b"".join(out)


def _decode(data: bytes) -> list[StrandField]:
    if data[:4] != _SCHEMA_MAGIC:
        raise StrandHeaderError("the header's schema block has the wrong magic")
    (count,) = struct.unpack_from("<H", data, 4)
    pos = 6
    fields = []
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos : pos + name_len].decode()
        pos += name_len
        kind_code, flags, precision, scale, tz_len = struct.unpack_from("<BBBBB", data, pos)
        pos += 5
        tz = data[pos : pos + tz_len].decode() if tz_len else None
        pos += tz_len
        kind = VOCABULARY[kind_code]
        ftype = FieldType(
            kind,
            tz=tz if kind == "timestamp" else None,
            precision=precision if kind == "decimal" else None,
            scale=scale if kind == "decimal" else None,
        )
        sort: Literal["asc", "desc"] | None = (
            "asc" if flags & FLAG_SORTED_ASC else "desc" if flags & FLAG_SORTED_DESC else None
        )
        fields.append(StrandField(name, ftype, bool(flags & FLAG_NULLABLE), sort))
    if pos != len(data):
        raise StrandHeaderError(f"the header's schema block has {len(data) - pos} trailing bytes")
    return fields
