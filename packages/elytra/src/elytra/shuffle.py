"""Worker-side exchange: a task partitions its own result into files by key hash.

The driver only schedules. A task of a stage whose output may be large (a group-by's partial
states, the raw rows of a median) carries a :class:`Shuffle`; when its result reaches
``min_bytes`` it writes the rows to ``parts`` Parquet files by ``hash(keys) % parts`` (the
same hash as the driver's :class:`~elytra.exchange.ExchangeWriter`, so rows the driver
partitions itself land beside them) in a directory of its own attempt, and answers with the
files' row and byte counts instead of the rows. The next stage's task for partition ``p``
reads every task's file ``p``. A killed attempt's files are never read: only the directory
of the attempt whose answer the driver accepted is, and the job's directory goes with the job.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from .exchange import ExchangeWriter

__all__ = ["Attempt", "Shuffle"]


class Attempt(Protocol):
    """What a shuffle needs of the task attempt writing it (``elytra.task.Task``, whose
    ``execute`` imports this module): its id and attempt number, which name its directory."""

    @property
    def id(self) -> str: ...

    @property
    def attempt(self) -> int: ...


@dataclass(frozen=True)
class Shuffle:
    """Where and how a task partitions its result (see the module docstring)."""

    directory: str
    parts: int
    keys: tuple[str, ...]
    types: str
    """The key types (an Arrow schema, serialised as hex) the keys are hashed as."""
    min_bytes: int = 0

    @classmethod
    def make(
        cls,
        directory: Path,
        parts: int,
        keys: tuple[str, ...],
        types: list[pa.DataType],
        min_bytes: int,
    ) -> Shuffle:
        schema = pa.schema([pa.field(f"k{i}", t) for i, t in enumerate(types)])
        return cls(str(directory), parts, keys, schema.serialize().to_pybytes().hex(), min_bytes)

    def key_types(self) -> list[pa.DataType]:
        schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(self.types)))
        return [f.type for f in schema]

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Shuffle:
        data = json.loads(text)
        data["keys"] = tuple(data["keys"])
        return cls(**data)

    def maybe_write(self, task: Attempt, table: pa.Table) -> dict[str, Any] | None:
        """Partition ``table`` into this attempt's files when it is big enough; what was
        written (``dir``, ``rows`` and ``bytes`` per partition), or ``None``."""
        if table.nbytes < self.min_bytes or not table.num_rows:
            return None
        where = Path(self.directory) / f"{task.id}-a{task.attempt}"
        writer = ExchangeWriter((self.keys,), (table.schema,), self.key_types(), where, self.parts)
        try:
            writer.add(0, table)
        finally:
            writer.close()
        return {"dir": str(where), "rows": writer.rows[0], "bytes": writer.bytes[0]}


def shuffled_file(done: dict[str, Any], part: int) -> str | None:
    """The file of partition ``part`` a task's answer names, if it wrote rows there."""
    if not done["rows"][part]:
        return None
    return str(Path(done["dir"]) / f"0-{part}.parquet")
