"""Content hashes and canonical JSON: SHA-256 of bytes and files, stable hashes of plans.

Canonical JSON (sorted keys, no whitespace, UTF-8, no NaN) makes the same value hash the same
in every process and on every machine, so a plan hash can name a cached result or a task.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import BadInputError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "canonical_json",
    "sha256_bytes",
    "sha256_file",
    "sha256_stream",
    "stable_hash",
]

_CHUNK = 1 << 20


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of a buffer."""
    import hashlib  # in each function: hashlib costs `import platform_core.schema` milliseconds

    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO | Iterable[bytes]) -> str:
    """Hex SHA-256 of a binary stream or an iterable of chunks, read in 1 MiB pieces."""
    import hashlib

    digest = hashlib.sha256()
    if hasattr(stream, "read"):
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    else:
        for chunk in stream:
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's content, without loading it whole."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _plain(value: Any) -> Any:
    """Turn dataclasses, enums, paths, tuples and sets into JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, **fields}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    pathlib = sys.modules.get("pathlib")  # no Path exists unless pathlib was imported
    if pathlib is not None and isinstance(value, pathlib.Path):
        return value.as_posix()
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise BadInputError(f"canonical JSON needs string keys, got {k!r}")
            out[k] = _plain(v)
        return out
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInputError(f"canonical JSON cannot hold {value!r}; use null or a string")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    raise BadInputError(f"cannot put a {type(value).__name__} into canonical JSON: {value!r}")


def canonical_json(value: Any) -> str:
    """One exact JSON text per value: sorted keys, no spaces, UTF-8, NaN refused."""
    return json.dumps(
        _plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def stable_hash(value: Any) -> str:
    """Hex SHA-256 of the canonical JSON of ``value`` (plans, schemas, configs)."""
    return sha256_bytes(canonical_json(value).encode("utf-8"))
