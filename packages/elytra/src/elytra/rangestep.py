"""The worker's side of a range-partitioned sort (``rangesort.py``): one step of a task.

A task of a range sort samples its rows, writes them to range partitions, or sorts one
partition (``RangeStep.op``). This module knows the order of the keys (emsqrt's) and the
step's wire form; it does not know stages or the driver, so ``elytra.task`` can run a step
without importing the planner.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from emsqrt import EngineConfig, run
from emsqrt import plan as lp
from emsqrt.planning import plan_from_json
from platform_core import MemCap

from .taskfile import ResultSpool

__all__ = ["ORDINAL", "RangeStep", "StepTask", "partition_of", "pick_splitters", "run_step"]


class StepTask(Protocol):
    """What a step needs of its task (``elytra.task.Task``, which imports this module)."""

    @property
    def id(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def plan(self) -> str: ...

    @property
    def mem_cap(self) -> MemCap: ...

    @property
    def spill_dir(self) -> str: ...

    @property
    def bytes_in(self) -> int: ...

    @property
    def rangesort(self) -> str: ...


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


def run_step(task: StepTask) -> tuple[pa.Table, float, dict[str, Any]]:
    """Run a range sort's task (``task.rangesort``): sample, partition or sort its rows; its
    rows (a sample, or none), seconds and stats, which ``elytra.task`` makes its result."""
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
    return table, time.perf_counter() - started, stats
