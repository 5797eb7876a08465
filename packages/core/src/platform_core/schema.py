"""``Schema``: an ordered list of named, nullable fields, with a canonical JSON form.

The canonical JSON is ``{"fields":[{"name":...,"nullable":...,"type":...}]}`` with sorted
keys, no whitespace and UTF-8 text; its SHA-256 is the schema's ``fingerprint``, so two
processes (or a browser) that agree on the schema agree on the fingerprint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, overload

import pyarrow as pa

from platform_core._suggest import column_not_found
from platform_core.errors import BadInputError
from platform_core.integrity import canonical_json, stable_hash
from platform_core.types import FieldType, from_arrow, parse_type

__all__ = ["Field", "Schema"]


@dataclass(frozen=True, init=False)
class Field:
    """A named column: ``Field("amount", "decimal(10, 2)", nullable=False)``."""

    name: str
    type: FieldType
    nullable: bool

    def __init__(
        self, name: str, type: FieldType | str | pa.DataType, nullable: bool = True
    ) -> None:
        if not isinstance(name, str) or not name:
            raise BadInputError(f"a field name must be a non-empty string, got {name!r}")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInputError(f"field name {name!r} is not valid Unicode text") from None
        if not isinstance(nullable, bool):
            raise BadInputError(
                f'nullable of field "{name}" must be true or false, got {nullable!r}'
            )
        try:
            field_type = parse_type(type)
        except BadInputError as exc:
            raise BadInputError(f'field "{name}": {exc.message}', **exc.details) from None
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "type", field_type)
        object.__setattr__(self, "nullable", nullable)

    def __repr__(self) -> str:
        suffix = "" if self.nullable else ", nullable=False"
        return f"Field({self.name!r}, {str(self.type)!r}{suffix})"

    def to_arrow(self) -> pa.Field:
        """The ``pyarrow.Field`` with this name, Arrow type and nullability."""
        return pa.field(self.name, self.type.to_arrow(), nullable=self.nullable)

    @classmethod
    def from_arrow(cls, field: pa.Field) -> Field:
        """The field for a ``pyarrow.Field``; its type widened by ``types.from_arrow``."""
        try:
            field_type = from_arrow(field.type)
        except BadInputError as exc:
            raise BadInputError(f'column "{field.name}": {exc.message}', **exc.details) from None
        return cls(field.name, field_type, nullable=field.nullable)

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "type": <canonical text>, "nullable": ...}``."""
        return {"name": self.name, "type": str(self.type), "nullable": self.nullable}


@dataclass(frozen=True, init=False)
class Schema:
    """An ordered list of fields with unique, non-empty names."""

    fields: tuple[Field, ...]

    def __init__(self, fields: Iterable[Field]) -> None:
        fields = tuple(fields)
        seen: set[str] = set()
        for position, field in enumerate(fields):
            if not isinstance(field, Field):
                raise BadInputError(
                    f"schema entry {position} must be a Field, got {type(field).__name__} {field!r}"
                )
            if field.name in seen:
                raise BadInputError(
                    f'duplicate column name "{field.name}" in schema; column names must be unique',
                    column=field.name,
                )
            seen.add(field.name)
        object.__setattr__(self, "fields", fields)

    def __repr__(self) -> str:
        return f"Schema({list(self.fields)!r})"

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(field.name for field in self.fields)

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {name: position for position, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __contains__(self, name: object) -> bool:
        return name in self._positions

    @overload
    def __getitem__(self, key: int) -> Field: ...
    @overload
    def __getitem__(self, key: str) -> Field: ...
    def __getitem__(self, key: int | str) -> Field:
        if isinstance(key, str):
            return self.field(key)
        if isinstance(key, int) and not isinstance(key, bool):
            try:
                return self.fields[key]
            except IndexError:
                raise IndexError(
                    f"field index {key} out of range for a schema of {len(self)} fields"
                ) from None
        raise TypeError(f"schema index must be a column name or an int, got {key!r}")

    def field(self, name: str) -> Field:
        """The field called ``name``; BadInputError naming the closest column if none is."""
        return self.fields[self.index(name)]

    def index(self, name: str) -> int:
        """The position of column ``name``; BadInputError naming the closest column if none."""
        try:
            return self._positions[name]
        except (KeyError, TypeError):
            raise column_not_found(str(name), self.names) from None

    # --- Arrow ---------------------------------------------------------------------------

    def to_arrow(self) -> pa.Schema:
        """The ``pyarrow.Schema`` data with this schema is stored as."""
        return pa.schema([field.to_arrow() for field in self.fields])

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> Schema:
        """The schema for a ``pyarrow.Schema``, widening types (metadata is dropped)."""
        if not isinstance(schema, pa.Schema):
            raise BadInputError(f"expected a pyarrow Schema, got {type(schema).__name__}")
        return cls(Field.from_arrow(field) for field in schema)

    # --- dict and JSON -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``{"fields": [{"name": ..., "type": ..., "nullable": ...}, ...]}``."""
        return {"fields": [field.to_dict() for field in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """The schema for ``to_dict()`` output; BadInputError saying what is wrong otherwise."""
        if not isinstance(data, Mapping):
            raise BadInputError(f'a schema must be an object with "fields", got {_kind(data)}')
        if set(data) != {"fields"}:
            extra = sorted(str(key) for key in set(data) - {"fields"})
            if extra:
                raise BadInputError(f"unexpected key(s) in schema: {', '.join(extra)}")
            raise BadInputError('a schema must have a "fields" list')
        entries = data["fields"]
        if not isinstance(entries, list | tuple):
            raise BadInputError(f'schema "fields" must be a list, got {_kind(entries)}')
        return cls(_field_from_dict(position, entry) for position, entry in enumerate(entries))

    def to_json(self) -> str:
        """The canonical JSON text: sorted keys, no whitespace, non-ASCII kept as is."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> Schema:
        """The schema for JSON text in the ``to_json`` shape (any whitespace or key order)."""
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise BadInputError(f"schema is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadInputError("schema JSON is nested too deeply to be a schema") from None
        return cls.from_dict(data)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the UTF-8 canonical JSON; equal schemas, equal fingerprints."""
        return stable_hash(self.to_dict())


def _field_from_dict(position: int, entry: object) -> Field:
    if not isinstance(entry, Mapping):
        raise BadInputError(f"schema field {position} must be an object, got {_kind(entry)}")
    extra = sorted(str(key) for key in set(entry) - {"name", "type", "nullable"})
    if extra:
        raise BadInputError(
            f"unexpected key(s) in schema field {position}: {', '.join(extra)} "
            "(allowed: name, type, nullable)"
        )
    for key in ("name", "type"):
        if not isinstance(entry.get(key), str):
            raise BadInputError(
                f'schema field {position} needs a string "{key}", got {_kind(entry.get(key))}'
            )
    return Field(entry["name"], entry["type"], entry.get("nullable", True))


def _kind(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
