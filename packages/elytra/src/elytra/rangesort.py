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

import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emsqrt import EngineConfig, run
from emsqrt import plan as lp
from emsqrt.planning import plan_from_json, plan_to_json
from platform_core import MemCap, Schema

from .stages import Stage, StagePlan, source_bytes, task_plan
from .taskfile import ResultSpool

if TYPE_CHECKING:
    from .settings import ElytraSettings
    from .task import Task, TaskResult

__all__ = ["ORDINAL", "RangeRoute", "RangeSorts", "execute_step", "partition_of", "pick_splitters"]

ORDINAL = "__elytra_ord"
"""The column each row's input position travels in (the last sort key)."""
TASK_SHIFT = 40
"""Rows of one task at most: 2**40; tasks of one sort at most: 2**23."""
COMPRESSION = 3
"""Arrow bytes per byte of Parquet assumed when sizing the partitions before any task ran."""

Key = tuple[str, bool, bool]
"""(column, descending, nulls_first)"""


# --- the order ------------------------------------------------------------------------------


def _plain(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr


def _bools(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def rows_before(a: pa.Table, b: pa.Table, keys: tuple[Key, ...]) -> np.ndarray:
    """Row by row: does row ``i`` of ``a`` sort before row ``i`` of ``b``, by ``keys`` then
    the ordinal (emsqrt's order, see the module docstring)? Both hold the keys and ORDINAL."""
    n = a.num_rows
    before = np.zeros(n, dtype=bool)
    open_ = np.ones(n, dtype=bool)  # equal on every key so far

    def level(lt: np.ndarray, gt: np.ndarray) -> None:
        nonlocal before, open_
        before |= open_ & lt
        open_ &= ~(lt | gt)

    for column, descending, nulls_first in keys:
        x, y = _plain(a.column(column)), _plain(b.column(column))
        if x.type != y.type:
            y = y.cast(x.type)
        xn, yn = _bools(pc.is_null(x)), _bools(pc.is_null(y))
        if nulls_first:
            level(xn & ~yn, ~xn & yn)
        else:
            level(~xn & yn, xn & ~yn)
        valid = ~xn & ~yn
        if pa.types.is_floating(x.type):
            xnan = _bools(pc.fill_null(pc.is_nan(x), False))
            ynan = _bools(pc.fill_null(pc.is_nan(y), False))
            nan_lt, nan_gt = valid & ~xnan & ynan, valid & xnan & ~ynan  # NaN above numbers
            level(*((nan_gt, nan_lt) if descending else (nan_lt, nan_gt)))
            valid &= ~xnan & ~ynan
        lt = valid & _bools(pc.fill_null(pc.less(x, y), False))
        gt = valid & _bools(pc.fill_null(pc.greater(x, y), False))
        level(*((gt, lt) if descending else (lt, gt)))
    xo = np.asarray(a.column(ORDINAL).to_numpy(), dtype=np.int64)
    yo = np.asarray(b.column(ORDINAL).to_numpy(), dtype=np.int64)
    out: np.ndarray = before | (open_ & (xo < yo))
    return out


def _numbers(values: pa.Array, descending: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """A numeric key (ints, floats, dates, times) as float64 whose ascending order is the
    key's (``descending``: negated; -0.0 as 0.0), and which rows are plain numbers (not NULL,
    not NaN); None for other types. Rounding to float64 never reverses two values' order, at
    most makes them equal, and equal first keys go to the full comparison."""
    t = values.type
    if pa.types.is_dictionary(t) or not (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_time(t)
    ):
        return None
    if not pa.types.is_integer(t) and not pa.types.is_floating(t):
        values = values.view(pa.int64() if t.bit_width == 64 else pa.int32())
    valid = _bools(pc.is_valid(values))
    x = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_floating(t):
        valid &= ~np.isnan(x)
    x = np.where(valid, x, 0.0) + 0.0
    return (-x if descending else x), valid


def partition_of(table: pa.Table, splitters: pa.Table, keys: tuple[Key, ...]) -> np.ndarray:
    """Each row's range partition: how many splitters sort at or before it (0 .. S), by a
    binary search run for all rows at once (log2(S + 1) vectorised comparisons). A numeric
    first key places every row whose value no splitter shares by two ``searchsorted`` calls
    over the splitters' values; only the others (NULL, NaN, a splitter's value) are searched."""
    n, s = table.num_rows, splitters.num_rows
    lo = np.zeros(n, dtype=np.int64)
    hi = np.full(n, s, dtype=np.int64)
    if not s:
        return lo
    names = [*dict.fromkeys(k[0] for k in keys), ORDINAL]
    rows = table.select(names)
    cands = splitters.select(names)
    first, descending, _ = keys[0]
    mine = _numbers(_plain(rows.column(first)), descending)
    theirs = _numbers(_plain(cands.column(first)), descending)
    if mine is not None and theirs is not None:
        x, plain = mine
        v, numeric = theirs
        block = np.flatnonzero(numeric)  # the splitters holding numbers: one run of them
        if block.size and block[-1] - block[0] + 1 == block.size:
            start = int(block[0])  # splitters before it: NULLs first, or NaN descending
            vals = v[block]
            left = start + np.searchsorted(vals, x, side="left")
            right = start + np.searchsorted(vals, x, side="right")
            decided = plain & (left == right)
            lo[decided] = left[decided]
            hi[decided] = left[decided]
    while True:
        active = np.flatnonzero(lo < hi)
        if not active.size:
            return lo
        mid = (lo[active] + hi[active]) // 2
        at = pa.array(active)
        below = rows_before(rows.take(at), cands.take(pa.array(mid)), keys)
        hi[active[below]] = mid[below]
        lo[active[~below]] = mid[~below] + 1


def _order(table: pa.Table, keys: tuple[Key, ...]) -> np.ndarray:
    """The permutation sorting ``table`` by ``keys`` then ORDINAL, as emsqrt's sort orders."""
    from emsqrt.planning import SortSpec

    sk = [lp.SortKey(c, d, nf) for c, d, nf in keys] + [lp.SortKey(ORDINAL)]
    spec = SortSpec(sk, table.schema)
    return np.asarray(spec.indices(spec.augment(table)).to_numpy(), dtype=np.int64)


def pick_splitters(
    samples: list[tuple[pa.Table, int]], keys: tuple[Key, ...], parts: int
) -> pa.Table:
    """``parts - 1`` splitters (fewer when the samples are fewer) at the quantiles of the
    samples, each task's sample rows weighted by its rows over its sample's size."""
    kept = [(t, rows) for t, rows in samples if t.num_rows and rows]
    if not kept or parts <= 1:
        return samples[0][0].schema.empty_table()
    table = pa.concat_tables([t for t, _ in kept], promote_options="permissive")
    weights = np.concatenate([np.full(t.num_rows, rows / t.num_rows) for t, rows in kept])
    order = _order(table, keys)
    cum = np.cumsum(weights[order])
    targets = cum[-1] * np.arange(1, parts) / parts
    at = np.unique(np.minimum(np.searchsorted(cum, targets, side="left"), len(order) - 1))
    return table.take(pa.array(order[at]))


# --- the tasks' side --------------------------------------------------------------------------


def _schema_from_hex(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(text)))


def _table_from_hex(text: str) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(bytes.fromhex(text))).read_all()


def _table_to_hex(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    return str(sink.getvalue().to_pybytes().hex())


@dataclass(frozen=True)
class RangeStep:
    """What a task of a range sort does with its plan's rows (``Task.rangesort``, as JSON)."""

    op: str
    """``sample``, ``partition`` or ``sort``."""
    keys: tuple[Key, ...]
    number: int = 0
    """The task's number in input order (its rows' ordinals start at ``number << 40``)."""
    sample_rows: int = 0
    directory: str = ""
    splitters: str = ""
    """The splitters (keys and ORDINAL) as Arrow IPC, in hex."""
    schema: str = ""
    """The partition files' schema (the stage's, then ORDINAL), serialised, in hex."""
    part: int = 0
    group_bytes: int = 8 << 20

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RangeStep:
        data = json.loads(text)
        data["keys"] = tuple((str(c), bool(d), bool(nf)) for c, d, nf in data["keys"])
        return cls(**data)


class _Sampler:
    """A uniform sample of ``m`` rows of a stream (the ``m`` smallest random priorities)."""

    def __init__(self, step: RangeStep) -> None:
        self.step = step
        self.rng = np.random.default_rng(step.number)
        self.kept: pa.Table | None = None
        self.priority = np.zeros(0)
        self.rows = 0
        self.nbytes = 0

    def add(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        if not n:
            return
        start = (self.step.number << TASK_SHIFT) + self.rows
        table = pa.Table.from_batches([batch]).append_column(
            ORDINAL, pa.array(np.arange(start, start + n, dtype=np.int64))
        )
        self.rows += n
        self.nbytes += batch.nbytes
        priority = self.rng.random(n)
        if self.kept is not None:
            table = pa.concat_tables([self.kept, table])
            priority = np.concatenate([self.priority, priority])
        m = self.step.sample_rows
        if table.num_rows > m:
            pick = np.sort(np.argpartition(priority, m)[:m])
            table, priority = table.take(pa.array(pick)), priority[pick]
        self.kept, self.priority = table, priority


class _Partitioner:
    """Rows to their range partition's file, buffered per partition (a few MiB each)."""

    def __init__(self, step: RangeStep, where: Path, mem_cap: int) -> None:
        self.step = step
        self.where = where
        self.schema = _schema_from_hex(step.schema)
        self.splitters = _table_from_hex(step.splitters)
        parts = self.splitters.num_rows + 1
        self.buffer_bytes = max(64 << 10, min(4 << 20, mem_cap // (8 * parts)))
        self.rows = [0] * parts
        self.bytes = [0] * parts
        self.held: list[list[pa.Table]] = [[] for _ in range(parts)]
        self.held_bytes = [0] * parts
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.position = 0

    def add(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        if not n:
            return
        start = (self.step.number << TASK_SHIFT) + self.position
        self.position += n
        table = pa.Table.from_batches([batch]).append_column(
            ORDINAL, pa.array(np.arange(start, start + n, dtype=np.int64))
        )
        table = table.select(self.schema.names).cast(self.schema)
        ids = partition_of(table, self.splitters, self.step.keys)
        order = np.argsort(ids, kind="stable")
        counts = np.bincount(ids, minlength=len(self.rows))
        ordered = table.take(pa.array(order))
        begin = 0
        for part, count in enumerate(counts.tolist()):
            if count:
                piece = ordered.slice(begin, count)
                self.rows[part] += count
                self.bytes[part] += piece.nbytes
                self.held[part].append(piece)
                self.held_bytes[part] += piece.nbytes
                if self.held_bytes[part] >= self.buffer_bytes:
                    self._flush(part)
            begin += count

    def _flush(self, part: int) -> None:
        if not self.held[part]:
            return
        if part not in self.writers:
            self.where.mkdir(parents=True, exist_ok=True)
            self.writers[part] = pq.ParquetWriter(
                self.where / f"{part}.parquet", self.schema, compression="none"
            )
        self.writers[part].write_table(pa.concat_tables(self.held[part]))
        self.held[part], self.held_bytes[part] = [], 0

    def close(self) -> None:
        for part in range(len(self.rows)):
            self._flush(part)
        for w in self.writers.values():
            w.close()
        self.writers.clear()


def execute_step(task: Task) -> TaskResult:
    """Run a range sort's task (``task.rangesort``): sample, partition or sort its rows."""
    from .task import TaskResult

    started = time.perf_counter()
    step = RangeStep.from_json(task.rangesort)
    plan = plan_from_json(task.plan, trusted=True)  # tasks come from this job's driver only
    config = EngineConfig(mem_cap_bytes=task.mem_cap, spill_dir=task.spill_dir)
    done: dict[str, Any] = {"number": step.number}
    table: pa.Table | None = None
    if step.op == "sample":
        sampler = _Sampler(step)
        result = run(plan, config, on_batch=sampler.add)
        done |= {"rows": sampler.rows, "bytes": sampler.nbytes}
        table = sampler.kept
        rows, nbytes = sampler.rows, sampler.nbytes
    elif step.op == "partition":
        where = Path(step.directory) / f"{task.id}-a{task.attempt}"
        writer = _Partitioner(step, where, task.mem_cap)
        try:
            result = run(plan, config, on_batch=writer.add)
        finally:
            writer.close()
        done |= {"dir": str(where), "rows": writer.rows, "bytes": writer.bytes}
        rows, nbytes = sum(writer.rows), sum(writer.bytes)
    elif step.op == "sort":
        path = str(Path(step.directory) / f"{task.id}-a{task.attempt}.parquet")
        spool = ResultSpool(path, -1, step.group_bytes)  # every row to the file
        try:
            result = run(plan, config, on_batch=spool.add)
            spool.close()
        except BaseException:
            spool.abort()
            raise
        done |= {"part": step.part, "file": spool.path, "rows": spool.rows}
        rows, nbytes = spool.rows, spool.nbytes
    else:  # pragma: no cover - the driver writes these
        raise ValueError(f"range sort step {step.op!r}")
    m = result.manifest
    stats = {
        "rows_out": rows,
        "bytes_out": nbytes,
        "bytes_in": task.bytes_in,
        "spilled_bytes": m.spill.get("bytes_written", 0),
        "reserved_peak_bytes": m.memory.get("reserved_peak_bytes", 0),
        "exchange": done,
    }
    if table is None:
        table = pa.table({})
    return TaskResult(task.id, table, time.perf_counter() - started, stats)


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


def _replace(node: lp.Node, old: lp.Node, new: lp.Node) -> lp.Node:
    if node is old:
        return new
    kids = lp.children(node)
    if not kids:
        return node
    return lp.replace_children(node, tuple(_replace(k, old, new) for k in kids))


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
        runs = {s.name: i for i, s in enumerate(plan.stages) if isinstance(s.plan, lp.Sort)}
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

    def _parts(self, stages: list[Stage]) -> dict[str, tuple[str, ...]]:
        """Each stage task's own source files (its ``files`` end with the broadcast sides')."""
        out: dict[str, tuple[str, ...]] = {}
        for r in self.ranges:
            for i in r.stages:
                parts = stages[i].source.parts(int(self.settings.task_bytes))
                for t, part in zip(stages[i].tasks, parts, strict=True):
                    out[t.id] = part.files
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
            merge = _replace(merge, r.sort, new)
        return merge, empty

    def balance(self) -> dict[str, Any]:
        """Rows per partition of each sort (for the job's record and the tests)."""
        return {r.name: {"parts": r.parts, "rows": list(r.part_rows)} for r in self.ranges}


def _empty(r: _Range) -> pa.Table:
    fields = [r.schema.field(c) for c in dict.fromkeys(c for c, _, _ in r.keys)]
    return pa.schema([*fields, pa.field(ORDINAL, pa.int64())]).empty_table()
