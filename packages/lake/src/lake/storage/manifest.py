"""Manifests: the immutable description of one version of a dataset.

A manifest lists the dataset's schema and its chunks (SHA-256, rows, bytes, per-column
min/max). Versions count up from 1; a tombstone is a version with ``deleted=True`` and no
chunks, so every node that learns it stops serving the dataset. Manifests are plain data with
a canonical JSON form, so two nodes agree on a version's bytes and can merge what they know
(:func:`merge`): for each dataset, the highest version wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from platform_core import Schema, canonical_json

from ..errors import CorruptChunkError
from ..names import check_dataset_name, check_sha256

__all__ = ["ChunkRef", "Manifest", "merge"]


@dataclass(frozen=True)
class ChunkRef:
    """One chunk of a dataset version."""

    sha256: str
    rows: int
    bytes: int
    stats: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    """Column name to (min, max) as JSON values; absent when a column has no usable stats."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "rows": self.rows,
            "bytes": self.bytes,
            "stats": {k: list(v) for k, v in sorted(self.stats.items())},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChunkRef:
        return cls(
            sha256=check_sha256(d["sha256"], "chunk id"),
            rows=int(d["rows"]),
            bytes=int(d["bytes"]),
            stats={k: (v[0], v[1]) for k, v in d.get("stats", {}).items()},
        )


@dataclass(frozen=True)
class Manifest:
    """One immutable version of a dataset."""

    name: str
    version: int
    schema: Schema | None
    chunks: tuple[ChunkRef, ...] = ()
    created: float = 0.0
    deleted: bool = False
    origin: str = ""
    """The node that committed this version."""
    owner: str | None = None
    """The ``sub`` of the user who uploaded the dataset (kept across its versions); ``None`` for
    manifests written before owners were recorded: then only an admin may delete it."""

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.chunks)

    @property
    def size(self) -> int:
        return sum(c.bytes for c in self.chunks)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "schema": None if self.schema is None else self.schema.to_dict(),
            "chunks": [c.to_dict() for c in self.chunks],
            "created": self.created,
            "deleted": self.deleted,
            "origin": self.origin,
        }
        if self.owner is not None:  # absent, an old manifest keeps its exact canonical bytes
            d["owner"] = self.owner
        return d

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        try:
            schema = d.get("schema")
            return cls(
                name=check_dataset_name(d["name"]),
                version=int(d["version"]),
                schema=None if schema is None else Schema.from_dict(schema),
                chunks=tuple(ChunkRef.from_dict(c) for c in d.get("chunks", [])),
                created=float(d.get("created", 0.0)),
                deleted=bool(d.get("deleted", False)),
                origin=str(d.get("origin", "")),
                owner=_owner(d.get("owner")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptChunkError(f"malformed manifest: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CorruptChunkError(f"manifest is not JSON: {exc}") from exc
        return cls.from_dict(data)


def _owner(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"owner {value!r} is not a user id")
    return value


def _wins(a: Manifest, b: Manifest) -> Manifest:
    """The later of two versions of one dataset; ties break on origin, then content."""
    ka = (a.version, a.deleted, a.origin, a.to_json())
    kb = (b.version, b.deleted, b.origin, b.to_json())
    return a if ka >= kb else b


def merge(*views: Iterable[Manifest]) -> dict[str, Manifest]:
    """Merge what several nodes know: per dataset, the winning head (commutative, idempotent)."""
    out: dict[str, Manifest] = {}
    for view in views:
        for m in view:
            cur = out.get(m.name)
            out[m.name] = m if cur is None else _wins(cur, m)
    return out
