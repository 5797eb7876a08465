"""Infer a ``Schema`` from the start of a CSV, TSV, JSON-lines or Parquet file.

Only a sample is read: the first ``sample_bytes`` of CSV (typed as DuckDB's ``read_csv``
sniffs them, by ``platform_core.csv``) or JSONL (Arrow's own type inference on that prefix)
and only the footer of Parquet. Types the vocabulary lacks are mapped to
what a reader can produce without loss: all-null columns and other text-sourced oddities
(times of day, ...) become ``utf8``, nested JSON values become ``json``, nanosecond
timestamps become ``timestamp[us]``. ``overrides`` replace inferred types by column name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from platform_core._suggest import column_not_found
from platform_core.csv import CsvError, sniff_csv_schema
from platform_core.errors import BadInputError, NotFoundError
from platform_core.schema import Field, Schema
from platform_core.types import JSON, UTF8, FieldType, from_arrow, parse_type, timestamp

__all__ = ["DEFAULT_SAMPLE_BYTES", "FORMATS", "infer_schema"]

DEFAULT_SAMPLE_BYTES: Final = 1 << 20
#: Format names accepted by ``infer_schema(format=...)``.
FORMATS: Final = ("csv", "tsv", "jsonl", "parquet")
_SUFFIXES: Final = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_FORMAT_ALIASES: Final = {"json": "jsonl", "ndjson": "jsonl"}


def infer_schema(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
    overrides: Mapping[str, str | FieldType] | None = None,
) -> Schema:
    """The schema of the file at ``path``, inferred from a sample; see the module docstring.

    ``format`` defaults to the file suffix (.csv .tsv .jsonl .ndjson .json .parquet).
    Raises NotFoundError if the file is missing and BadInputError if it cannot be parsed,
    an override names a column the file lacks, or an override type is unknown.
    """
    file = Path(path)
    kind = _format_of(file, format)
    if not isinstance(sample_bytes, int) or sample_bytes < 1:
        raise BadInputError(f"sample_bytes must be a positive integer, got {sample_bytes!r}")
    if not file.exists():
        raise NotFoundError(f'file "{file}" does not exist', path=str(file))
    if not file.is_file():
        raise BadInputError(f'"{file}" is not a file', path=str(file))

    try:
        if kind == "parquet":
            arrow_schema = pq.read_schema(file)
        elif kind == "jsonl":
            arrow_schema = _jsonl_schema(file, sample_bytes)
        else:
            arrow_schema = _csv_schema(file, sample_bytes, "\t" if kind == "tsv" else ",")
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise BadInputError(
            f'cannot read "{file}" as {kind}: {exc}', path=str(file), format=kind
        ) from None
    if len(arrow_schema) == 0:
        raise BadInputError(f'no columns found in the sample of "{file}"', path=str(file))

    wanted = _parse_overrides(overrides or {}, arrow_schema.names)
    fields = []
    for arrow_field in arrow_schema:
        name = arrow_field.name
        field_type = wanted[name] if name in wanted else _widen(arrow_field, kind, file)
        # Text formats can always hold a null; Parquet says so itself.
        nullable = arrow_field.nullable if kind == "parquet" else True
        fields.append(Field(name, field_type, nullable=nullable))
    return Schema(fields)


def _format_of(file: Path, format: str | None) -> str:
    if format is not None:
        name = str(format).lower()
        name = _FORMAT_ALIASES.get(name, name)
        if name not in FORMATS:
            raise BadInputError(
                f'unknown format "{format}" (formats: {", ".join(FORMATS)})', value=format
            )
        return name
    suffix = file.suffix.lower()
    if suffix not in _SUFFIXES:
        raise BadInputError(
            f'cannot tell the format of "{file}" from its suffix "{suffix}"; pass format= '
            f"one of {', '.join(FORMATS)} (suffixes: {', '.join(_SUFFIXES)})",
            path=str(file),
        )
    return _SUFFIXES[suffix]


def _csv_schema(file: Path, sample_bytes: int, delimiter: str) -> pa.Schema:
    try:
        return sniff_csv_schema(file, delimiter=delimiter, sample_bytes=sample_bytes)
    except CsvError as exc:
        raise pa.ArrowInvalid(exc.message) from None


def _jsonl_schema(file: Path, sample_bytes: int) -> pa.Schema:
    with file.open("rb") as handle:
        sample = handle.read(sample_bytes)
        at_end = not handle.read(1)
    if not at_end:
        cut = sample.rfind(b"\n")
        if cut < 0:
            raise BadInputError(
                f'the first line of "{file}" is longer than sample_bytes={sample_bytes}; '
                "pass a larger sample_bytes",
                path=str(file),
            )
        sample = sample[: cut + 1]
    if not sample.strip():
        raise BadInputError(f'"{file}" has no JSON records in its first {sample_bytes} bytes')
    # One block for the whole sample, so all of it is inferred together.
    read_options = pa_json.ReadOptions(block_size=len(sample) + 1, use_threads=False)
    try:
        return pa_json.read_json(pa.BufferReader(sample), read_options=read_options).schema
    except pa.ArrowInvalid as exc:
        raise pa.ArrowInvalid(f"{exc} (expected one JSON object per line)") from None


def _widen(arrow_field: pa.Field, kind: str, file: Path) -> FieldType:
    """The vocabulary type for an inferred Arrow type, with the lenient mappings above."""
    t = arrow_field.type
    if pa.types.is_null(t):
        return UTF8
    if pa.types.is_timestamp(t) and t.unit == "ns":
        return timestamp(t.tz)
    try:
        return from_arrow(t)
    except BadInputError as exc:
        if kind in ("csv", "tsv"):
            return UTF8  # the source is text, so text loses nothing
        if kind == "jsonl":
            return JSON if pa.types.is_nested(t) else UTF8
        raise BadInputError(
            f'column "{arrow_field.name}" of "{file}": {exc.message}; or pass '
            f'overrides={{"{arrow_field.name}": "<type>"}} to read it as another type',
            **exc.details,
        ) from None


def _parse_overrides(
    overrides: Mapping[str, str | FieldType], columns: list[str]
) -> dict[str, FieldType]:
    if not isinstance(overrides, Mapping):
        raise BadInputError(
            f"overrides must map column names to types, got {type(overrides).__name__}"
        )
    parsed = {}
    for name, value in overrides.items():
        if name not in columns:
            raise column_not_found(str(name), columns, what="override column")
        try:
            parsed[name] = parse_type(value)
        except BadInputError as exc:
            raise BadInputError(
                f'override for column "{name}": {exc.message}', **exc.details
            ) from None
    return parsed
