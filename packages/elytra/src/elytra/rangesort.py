"""Global sort by range partitioning on the workers: no run of rows is merged by the driver.

A sort over a chain (or a union of chains) whose input is at least ``range_sort_bytes`` (the
catalog's sizes) runs in three rounds of tasks, the way distributed engines sort:

1. **sample**: each task runs its chain projected to the sort keys and keeps a uniform sample
   of its rows (bottom-``m`` by a seeded random priority, vectorised batch by batch), each
   row with its *ordinal*: ``task number << 40 | position``, where the task number counts the
   tasks in input order (the union's branches in order, then each branch's parts). The driver
   weighs each task's sample by its row count and picks ``P - 1`` *splitters* at the weighted
   quantiles, in emsqrt's order of the keys with the ordinal as the last key.
2. **partition**: each task runs its chain once more, numbers its rows the same way, and
   writes each row to the file of the range partition its (keys, ordinal) falls in (a
   vectorised binary search over the splitters), in a directory of its own attempt, as the
   worker-side hash exchange (``shuffle.py``) does; it answers with the files' row counts.
3. **sort**: one task per non-empty partition reads every task's file of that partition and
   sorts it by the keys then the ordinal (emsqrt's ``Sort``: the kernel's or the operators',
   under the task's cap, spilling past it), writing the sorted rows to a file.

The driver then reads the partitions' files in partition order (a union of scans in the merge
plan): it concatenates, never sorts. The order is exactly emsqrt's ``Sort`` over the whole
input: every row is in exactly one partition, the partitions are ordered ranges of (keys,
ordinal), and ties keep input order because the ordinal is the last key everywhere. The
comparison used to place a row is emsqrt's (``physical/sortkeys.py``): NULLS FIRST/LAST per
key whatever the direction, NaN above every number (first when descending), -0.0 equal to
0.0, strings by bytes.

Skew: a splitter is a (keys, ordinal) pair, so one value held by most rows is split between
partitions by ordinal; the partitions stay balanced to the sample's precision (``m`` rows per
task). A partition larger than a task's cap is still correct: its sort spills.

Faults: a task's files are under ``<job>/range-<name>/<task>-a<attempt>``; only the attempt
whose answer the driver accepted is read, and the job's directory (with every attempt's
files, a SIGKILLed worker's too) goes when the job ends, cancelled or not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from emsqrt import plan as lp
from emsqrt.planning import plan_to_json
from platform_core import MemCap, Schema

from .rangestep import (
    COMPRESSION,
    ORDINAL,
    TASK_SHIFT,
    Key,
    RangeStep,
    _table_to_hex,
    partition_of,
    pick_splitters,
)
from .stages import ExchangeSource, Stage, StagePlan, replace_node, source_bytes, task_plan

if TYPE_CHECKING:
    from .settings import ElytraSettings
    from .sources import Part
    from .task import Task

__all__ = ["ORDINAL", "RangeRoute", "RangeSorts", "partition_of", "pick_splitters"]

# --- the driver's side ------------------------------------------------------------------------


@dataclass
class _Range:
    """One range-partitioned sort: the merge's Sort node and the stages under it."""

    name: str
    sort: lp.Sort
    stages: list[int]
    schema: pa.Schema
    parts: int
    directory: Path
    numbers: dict[str, int] = field(default_factory=dict)
    """Task id (of a stage task) -> its number in input order."""
    samples: dict[int, pa.Table] = field(default_factory=dict)
    rows: dict[int, int] = field(default_factory=dict)
    splitters: pa.Table | None = None
    files: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    part_rows: list[int] = field(default_factory=list)
    part_bytes: list[int] = field(default_factory=list)
    sorted: dict[int, str] = field(default_factory=dict)

    @property
    def keys(self) -> tuple[Key, ...]:
        return tuple((k.column, k.descending, k.nulls_first) for k in self.sort.keys)

    def file_schema(self) -> pa.Schema:
        return self.schema.append(pa.field(ORDINAL, pa.int64(), nullable=False))


class RangeRoute:
    """Where the range sort's task answers go (the driver's ``_round`` calls ``add`` with a
    task's rows, then ``given`` with its ``stats["exchange"]``)."""

    def __init__(self, r: _Range, op: str) -> None:
        self.r = r
        self.op = op

    def add(self, side: int, table: pa.Table) -> None:
        if self.op == "sample" and table.num_rows:
            number = int(table.column(ORDINAL)[0].as_py()) >> TASK_SHIFT
            self.r.samples[number] = table

    def given(self, side: int, done: dict[str, Any]) -> None:
        r = self.r
        if self.op == "sample":
            r.rows[int(done["number"])] = int(done["rows"])
        elif self.op == "partition":
            for part, n in enumerate(done["rows"]):
                if n:
                    path = str(Path(done["dir"]) / f"{part}.parquet")
                    r.files.setdefault(part, []).append((int(done["number"]), path))
                    r.part_rows[part] += int(n)
                    r.part_bytes[part] += int(done["bytes"][part])
        elif done.get("file"):
            r.sorted[int(done["part"])] = str(done["file"])


def _sort_inputs(node: lp.Node, stages: dict[str, int], plan: StagePlan) -> list[int] | None:
    """The stages a merge Sort reads, when it reads only sorted runs of chains by its keys."""
    inputs = node.inputs if isinstance(node, lp.Union) else (node,)
    out = []
    for i in inputs:
        if not isinstance(i, lp.Input) or i.name not in stages:
            return None
        out.append(stages[i.name])
    return out


class RangeSorts:
    """The range-partitioned sorts of one job, and the tasks of their three rounds."""

    def __init__(self, ranges: list[_Range], settings: ElytraSettings) -> None:
        self.ranges = ranges
        self.settings = settings

    @classmethod
    def find(
        cls, plan: StagePlan, settings: ElytraSettings, spill: Path, min_parts: int
    ) -> RangeSorts:
        """The merge's sorts over sorted runs whose input is at least ``range_sort_bytes``."""
        runs = {  # not over an exchange: its tasks are made after its sides ran
            s.name: i
            for i, s in enumerate(plan.stages)
            if isinstance(s.plan, lp.Sort) and not isinstance(s.source, ExchangeSource)
        }
        found: list[_Range] = []

        def walk(node: lp.Node) -> None:
            if isinstance(node, lp.Sort):
                under = _sort_inputs(node.input, runs, plan)
                if under is not None and all(
                    getattr(plan.stages[i].plan, "keys", None) == node.keys for i in under
                ):
                    size = sum(source_bytes(plan.stages[i].source) for i in under)
                    if size >= int(settings.range_sort_bytes):
                        target = max(int(settings.worker_mem_cap) // 4, 1)
                        parts = max(min_parts, math.ceil(size * COMPRESSION / target))
                        name = f"range{len(found)}"
                        found.append(
                            _Range(
                                name,
                                node,
                                under,
                                plan.stages[under[0]].schema,
                                min(parts, 1024),
                                spill / f"range-{name}",
                            )
                        )
                        return
            for k in lp.children(node):
                walk(k)

        walk(plan.merge)
        return cls(found, settings)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    @property
    def stages(self) -> set[int]:
        return {i for r in self.ranges for i in r.stages}

    def describe(self, plan: StagePlan) -> list[str]:
        """Lines for ``explain``."""
        return [
            f"{r.name}: global sort of stage(s) {', '.join(map(str, r.stages))} by range "
            f"partitioning on the workers: a sample round, then each task writes its rows to "
            f"about {r.parts} range partitions, one sort task per partition; the driver "
            "concatenates them in order"
            for r in self.ranges
        ]

    def _each_task(self, stages: list[Stage], r: _Range) -> Iterator[tuple[int, Stage, Task]]:
        number = 0
        for i in r.stages:
            for t in stages[i].tasks:
                r.numbers[t.id] = number
                yield number, stages[i], t
                number += 1

    def _chain_plan(self, stage: Stage, task: Task) -> lp.Node:
        assert isinstance(stage.plan, lp.Sort)
        return stage.plan.input

    def sample_tasks(
        self, stages: list[Stage], job_id: str, first: int
    ) -> tuple[list[Task], dict[int, tuple[RangeRoute, int]]]:
        """Round 1: one sampling task per task of the sorted stages (stage ``first + k`` for
        range ``k``), and where their answers go."""
        out: list[Task] = []
        routes: dict[int, tuple[RangeRoute, int]] = {}
        parts_of = self._parts(stages)
        for k, r in enumerate(self.ranges):
            index = first + k
            routes[index] = (RangeRoute(r, "sample"), 0)
            tasks = list(self._each_task(stages, r))
            m = min(4096, max(64, math.ceil(64 * r.parts / max(len(tasks), 1))))
            for number, stage, t in tasks:
                chain = self._chain_plan(stage, t)
                names = tuple(dict.fromkeys(c for c, _, _ in r.keys))
                projected = replace(stage, plan=lp.Project(chain, tuple((c, c) for c in names)))
                step = RangeStep("sample", r.keys, number=number, sample_rows=m)
                out.append(
                    replace(
                        t,
                        id=f"{job_id}-s{index}-t{number}",
                        stage=index,
                        plan=task_plan(projected, parts_of[t.id]),
                        spill_dir=str(Path(t.spill_dir).parent / f"s{index}-t{number}"),
                        rangesort=step.to_json(),
                        result_file="",
                    )
                )
        return out, routes

    def _parts(self, stages: list[Stage]) -> dict[str, Part]:
        """Each stage task's own part of its source (files, and the row groups of each it
        reads), as the driver cut it: a part cut by row groups must not read its files whole."""
        out: dict[str, Part] = {}
        for r in self.ranges:
            for i in r.stages:
                for t, part in zip(stages[i].tasks, stages[i].parts, strict=True):
                    out[t.id] = part
        return out

    def partition_tasks(
        self, stages: list[Stage], tasks: list[Task]
    ) -> tuple[list[Task], dict[int, tuple[RangeRoute, int]]]:
        """Round 2: the sorted stages' tasks, now writing range partitions by the splitters
        the samples gave (picked here), in place of their sorted runs."""
        parts_of = self._parts(stages)
        replaced: dict[str, Task] = {}
        routes: dict[int, tuple[RangeRoute, int]] = {}
        for r in self.ranges:
            samples = [
                (r.samples.get(n, _empty(r)), r.rows.get(n, 0)) for n in range(len(r.numbers))
            ]
            if not samples:
                samples = [(_empty(r), 0)]
            r.splitters = pick_splitters(samples, r.keys, r.parts)
            r.parts = r.splitters.num_rows + 1
            r.part_rows, r.part_bytes = [0] * r.parts, [0] * r.parts
            schema_hex = r.file_schema().serialize().to_pybytes().hex()
            splitters_hex = _table_to_hex(r.splitters)
            for number, stage, t in self._each_task(stages, r):
                routes[t.stage] = (RangeRoute(r, "partition"), 0)
                chain = replace(stage, plan=self._chain_plan(stage, t))
                step = RangeStep(
                    "partition",
                    r.keys,
                    number=number,
                    directory=str(r.directory),
                    splitters=splitters_hex,
                    schema=schema_hex,
                )
                replaced[t.id] = replace(
                    t,
                    plan=task_plan(chain, parts_of[t.id]),
                    rangesort=step.to_json(),
                    result_file="",
                )
        return [replaced.get(t.id, t) for t in tasks], routes

    def sort_tasks(
        self, job_id: str, first: int, spill: Path, mem_cap: MemCap, group_bytes: int
    ) -> tuple[list[Task], dict[int, tuple[RangeRoute, int]]]:
        """Round 3: one task per non-empty range partition, sorting every task's file of it
        (stage ``first + k`` for range ``k``)."""
        from .task import Task

        out: list[Task] = []
        routes: dict[int, tuple[RangeRoute, int]] = {}
        for k, r in enumerate(self.ranges):
            index = first + k
            routes[index] = (RangeRoute(r, "sort"), 0)
            schema = Schema.from_arrow(r.file_schema())
            sort_keys = (*r.sort.keys, lp.SortKey(ORDINAL))
            for part in range(r.parts):
                files = [path for _, path in sorted(r.files.get(part, []))]
                if not files:
                    continue
                scans = [lp.Scan(f, "parquet", schema) for f in files]
                leaf = scans[0] if len(scans) == 1 else lp.Union(tuple(scans))
                names = tuple((c, c) for c in r.schema.names)
                plan = lp.Project(lp.Sort(leaf, sort_keys), names)
                step = RangeStep(
                    "sort",
                    r.keys,
                    directory=str(r.directory / "sorted"),
                    part=part,
                    group_bytes=group_bytes,
                )
                out.append(
                    Task(
                        id=f"{job_id}-s{index}-t{part}",
                        stage=index,
                        plan=plan_to_json(plan),
                        mem_cap=mem_cap,
                        spill_dir=str(spill / f"s{index}-t{part}"),
                        files=tuple(files),
                        bytes_in=r.part_bytes[part],
                        rangesort=step.to_json(),
                    )
                )
        return out, routes

    def merge(self, merge: lp.Node) -> tuple[lp.Node, dict[str, pa.Table]]:
        """The merge plan with each sort replaced by its sorted partitions' files, read in
        partition order (and the empty tables of sorts that had no rows)."""
        empty: dict[str, pa.Table] = {}
        for r in self.ranges:
            schema = Schema.from_arrow(r.schema)
            scans = [lp.Scan(r.sorted[p], "parquet", schema) for p in sorted(r.sorted)]
            if not scans:
                empty[r.name] = r.schema.empty_table()
                new: lp.Node = lp.Input(r.name, schema)
            else:
                new = scans[0] if len(scans) == 1 else lp.Union(tuple(scans))
            merge = replace_node(merge, r.sort, new)
        return merge, empty

    def balance(self) -> dict[str, Any]:
        """Rows per partition of each sort (for the job's record and the tests)."""
        return {r.name: {"parts": r.parts, "rows": list(r.part_rows)} for r in self.ranges}


def _empty(r: _Range) -> pa.Table:
    fields = [r.schema.field(c) for c in dict.fromkeys(c for c, _, _ in r.keys)]
    return pa.schema([*fields, pa.field(ORDINAL, pa.int64())]).empty_table()
