"""Worker-side exchange: a task partitions its own result into files by key hash.

The driver only schedules. A task of a stage whose output may be large (a group-by's partial
states, the raw rows of a median, a side of a large join) carries a :class:`Shuffle`. An
*eager* one (a join's side, a group-by the planner expects to keep about as many groups as
rows) writes from the start: the task's kernel statement puts its rows straight into
``parts`` Parquet files by ``hash(keys) % parts`` (:func:`elytra.partitions.write_partitions`);
where the kernel cannot run it, the operators' rows are split by the same expression. A
non-eager one partitions only a result of at least ``min_bytes`` and otherwise returns the
rows. Either way the files are in a directory of the task's own attempt, and the task answers
with their names, row and byte counts instead of the rows; the next stage's task for
partition ``p`` reads every task's files of ``p``. A killed attempt's files are never read:
only the directory of the attempt whose answer the driver accepted is, and the job's
directory goes with the job.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from .partitions import hash_partition_sql, split_table, write_partitions

if TYPE_CHECKING:
    from emsqrt import plan as lp

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
    eager: bool = False
    """Partition from the start, whatever the result's size (see the module docstring)."""

    @classmethod
    def make(
        cls,
        directory: Path,
        parts: int,
        keys: tuple[str, ...],
        types: list[pa.DataType],
        min_bytes: int,
        eager: bool = False,
    ) -> Shuffle:
        schema = pa.schema([pa.field(f"k{i}", t) for i, t in enumerate(types)])
        hexed = schema.serialize().to_pybytes().hex()
        return cls(str(directory), parts, keys, hexed, min_bytes, eager)

    def key_types(self) -> list[pa.DataType]:
        schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(self.types)))
        return [f.type for f in schema]

    def part_sql(self) -> str:
        """The exchange's partition expression (the one every writer of it uses)."""
        return hash_partition_sql(self.keys, self.key_types(), self.parts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Shuffle:
        data = json.loads(text)
        data["keys"] = tuple(data["keys"])
        return cls(**data)

    def where(self, task: Attempt) -> Path:
        """The directory of this attempt's files."""
        return Path(self.directory) / f"{task.id}-a{task.attempt}"

    def write_plan(
        self, task: Attempt, plan: lp.Node, cap: int, spill_dir: str
    ) -> dict[str, Any] | None:
        """Run ``plan`` into this attempt's partition files in one DuckDB statement; what was
        written, or ``None`` when the kernel cannot run it (then :meth:`maybe_write` the
        operators' rows)."""
        written = write_partitions(
            plan, self.part_sql(), self.parts, self.where(task), cap, spill_dir
        )
        return None if written is None else written.to_dict()

    def maybe_write(self, task: Attempt, table: pa.Table) -> dict[str, Any] | None:
        """Partition ``table`` into this attempt's files when it is big enough (always, for an
        eager shuffle); what was written (files, rows and bytes per partition), or ``None``."""
        if not self.eager and (table.nbytes < self.min_bytes or not table.num_rows):
            return None
        return split_table(table, self.part_sql(), self.parts, self.where(task)).to_dict()
