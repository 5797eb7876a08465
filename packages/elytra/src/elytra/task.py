"""A task: one serialisable unit of work, the same on every backend.

A task is the chunk-local part of a pipeline (scan with pushed-down columns and predicate,
filters, projections, a partial aggregate, a local top-k or sorted run) as emsqrt plan JSON,
over the files of one chunk (or a group of small chunks), with its memory cap and attempt.
Workers run it with :func:`execute`: it is ``emsqrt.run`` under the task's cap, nothing more.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pyarrow as pa

from emsqrt import EngineConfig, run
from emsqrt.planning import SchemaResolver, StreamBroken, plan_from_json
from platform_core import MemCap

from .errors import NativeDeclinedError
from .rangestep import run_step
from .taskfile import ResultSpool

__all__ = ["Task", "TaskResult", "execute"]


@dataclass(frozen=True)
class Task:
    """``plan`` is emsqrt plan JSON whose leaves are scans of this task's files."""

    id: str
    stage: int
    plan: str
    mem_cap: MemCap
    """The task's cap (``ELYTRA_WORKER_MEM_CAP``); an int given becomes a ``MemCap``."""
    spill_dir: str
    attempt: int = 1
    files: tuple[str, ...] = ()
    """The files the plan reads (for placement and reports)."""
    shared_files: int = 0
    """How many of ``files``, at their end, are broadcast sides every task of the stage reads:
    placement weighs them only to break ties (never sent to a peer)."""
    bytes_in: int = 0
    exchange: str = ""
    """JSON of an :class:`~elytra.shuffle.Shuffle`: when the result is at least its
    ``min_bytes``, the task hash-partitions it into files itself (a worker-side exchange) and
    returns no rows, only where they are (``stats["exchange"]``)."""
    rangesort: str = ""
    """JSON of a :class:`~elytra.rangesort.RangeStep`: the task is a step of a global sort by
    range partitioning (it samples, partitions or sorts its plan's rows) and answers with
    ``stats["exchange"]``."""
    partition: str = ""
    """JSON of a :class:`~elytra.reread.KeyPartition`: the plan is a whole aggregate over
    the stage's every part, run for the rows whose keys hash to this partition only (a
    group-by exchanged by rereading, ``reread.py``)."""
    result_file: str = ""
    """Where a result past ``result_file_bytes`` goes (a Parquet file on the driver's machine,
    the attempt appended): the task streams it there and returns no rows, only the file
    (``stats["file"]``), so neither the worker nor the driver holds it whole (``taskfile``)."""
    result_file_bytes: int = 0
    result_group_bytes: int = 8 << 20
    """Row groups of that file hold about this many bytes (the driver's merge reads one
    whole under its cap)."""
    threads: int = 1
    """DuckDB threads of the task's kernel: more than one only for a task that runs alone
    (the only task of its round), which then has the cores its backend gives it."""
    sql: str = ""
    """JSON of a query DuckDB runs whole in place of ``plan`` (``nativesql.native_task``): a
    job run as one task from ``session.sql``; ``plan`` is its fallback."""
    result_format: str = "parquet"
    """``arrow``: that file is an Arrow IPC file the driver memory-maps (where the merge only
    concatenates the tasks' rows; ``taskfile``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.mem_cap, MemCap):
            object.__setattr__(self, "mem_cap", MemCap(self.mem_cap, what="a task's mem_cap"))

    def to_json(self) -> str:
        data = asdict(self)
        del data["shared_files"]  # the coordinator's, for placement
        if not self.result_file:  # a peer's task names no file to write (peer_api refuses)
            for name in ("result_file", "result_file_bytes", "result_group_bytes"):
                del data[name]
        if self.threads == 1:  # the default: peers' older drivers never send it
            del data["threads"]
        if not self.sql:  # nor a query's text (only a whole job from SQL has one)
            del data["sql"]
        if self.result_format == "parquet":  # the default: peers' older drivers never send it
            del data["result_format"]
        if not self.rangesort:  # nor one of a range sort (only the local machine's run them)
            del data["rangesort"]
        if not self.partition:  # nor a reread partition (the same)
            del data["partition"]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Task:
        data = json.loads(text)
        data["files"] = tuple(data.get("files", ()))
        return cls(**data)

    def retry(self) -> Task:
        """The same task, one attempt later."""
        return replace(self, attempt=self.attempt + 1)


@dataclass
class TaskResult:
    """A task's output and what it cost."""

    task_id: str
    table: pa.Table
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


def execute(task: Task, cancel: threading.Event | None = None) -> TaskResult:
    """Run ``task`` under its cap and return its rows (the worker side of every backend).
    ``cancel`` (the inline backend's, which runs tasks in the job's process) stops its
    emsqrt run within a batch (``emsqrt.CancelledError``)."""
    if task.rangesort:  # a step of a range-partitioned sort
        table, seconds, stats = run_step(task)
        return TaskResult(task.id, table, seconds, stats)
    started = time.perf_counter()
    if not task.plan:  # a query run before it was planned: DuckDB's text or nothing
        done = _native(task, None, started)
        if done is None:
            raise NativeDeclinedError(
                f"task {task.id}: DuckDB declined the query's text under a cap of "
                f"{int(task.mem_cap)} bytes; it is planned and run as a plan instead"
            )
        return done
    plan = plan_from_json(task.plan, trusted=True)  # tasks come from this job's driver only
    config = EngineConfig(
        mem_cap_bytes=task.mem_cap, spill_dir=task.spill_dir, kernel_threads=max(1, task.threads)
    )
    shuffle = None
    if task.exchange:
        from .shuffle import Shuffle

        shuffle = Shuffle.from_json(task.exchange)
        if shuffle.eager:  # the kernel's statement writes the partitions itself
            written = shuffle.write_plan(task, plan, task.mem_cap, task.spill_dir)
            if written is not None:
                stats = {
                    "rows_out": sum(written["rows"]),
                    "bytes_out": sum(written["bytes"]),
                    "bytes_in": task.bytes_in,
                    "spilled_bytes": 0,
                    "exchange": written,
                }
                schema = SchemaResolver().schema(plan)
                return TaskResult(
                    task.id, schema.empty_table(), time.perf_counter() - started, stats
                )
            config = replace(config, kernel="off")  # DuckDB could not: the operators do
    if task.partition:
        return _partition(task, plan, started)
    if task.sql and shuffle is None:
        done = _native(task, plan, started)
        if done is not None:
            return done
    spool: ResultSpool | None = None
    if task.result_file and shuffle is None:  # a large result streams to the file
        path = f"{task.result_file}.a{task.attempt}"
        spool = ResultSpool(path, task.result_file_bytes, task.result_group_bytes)
        try:
            result = run(plan, config, on_batch=spool.add, cancel=cancel)
            spool.close()
        except BaseException:
            spool.abort()
            raise
        result.table = spool.held(SchemaResolver().schema(plan))
    else:
        result = run(plan, config, cancel=cancel)
    assert result.table is not None  # a task plan never ends in a sink
    m = result.manifest
    shuffled = shuffle.maybe_write(task, result.table) if shuffle is not None else None
    stats = {
        "rows_out": result.table.num_rows if spool is None else spool.rows,
        "bytes_out": result.table.nbytes if spool is None else spool.nbytes,
        "bytes_in": task.bytes_in,
        "spilled_bytes": m.spill.get("bytes_written", 0),
        "reserved_peak_bytes": m.memory.get("reserved_peak_bytes", 0),
        "threads": config.kernel_threads,
    }
    table = result.table
    if spool is not None and spool.path is not None:
        stats["file"] = {"path": spool.path, "rows": spool.rows, "bytes": spool.nbytes}
    if shuffled is not None:
        stats["exchange"] = shuffled
        table = table.schema.empty_table()
    return TaskResult(task.id, table, time.perf_counter() - started, stats)


def _native(task: Task, plan: Any, started: float) -> TaskResult | None:
    """The task's query run whole by DuckDB (``nativesql``), its rows held or streamed to
    the result file as the plan's would be; None when DuckDB could not (nothing was handed
    on): the plan runs (``plan`` None: the task has none, and says so)."""
    from .nativesql import run_native

    # a task of no plan: its rows as DuckDB makes them (``nativequery``)
    schema = SchemaResolver().schema(plan) if plan is not None else None
    spool: ResultSpool | None = None
    if task.result_file:
        path = f"{task.result_file}.a{task.attempt}"
        spool = ResultSpool(path, task.result_file_bytes, task.result_group_bytes)
    threads = max(1, task.threads)
    try:
        ran = run_native(
            task.sql,
            schema,
            task.mem_cap,
            task.spill_dir,
            threads,
            spool.add if spool is not None else None,
        )
        if ran is not None and schema is None:
            schema = ran.schema
            assert schema is not None  # a run with no schema given reports DuckDB's
            if len(set(schema.names)) != len(schema.names):
                ran = None  # a name twice: the plan refuses it, and says so
        if ran is None:
            if spool is not None:
                spool.abort()
            return None
        if spool is not None:
            spool.close()
    except StreamBroken:
        # DuckDB failed after rows went into the result file, which goes: the plan runs and
        # names the fault (a value that does not convert), not a retry of the same failure
        if spool is not None:
            spool.abort()
            return None
        raise
    except BaseException:
        if spool is not None:
            spool.abort()
        raise
    assert schema is not None
    table = spool.held(schema) if spool is not None else ran.table
    assert table is not None
    stats: dict[str, Any] = {
        "rows_out": table.num_rows if spool is None else spool.rows,
        "bytes_out": table.nbytes if spool is None else spool.nbytes,
        "bytes_in": task.bytes_in,
        "spilled_bytes": ran.spilled_bytes,
        "threads": threads,
        "native": True,
    }
    if spool is not None and spool.path is not None:
        stats["file"] = {"path": spool.path, "rows": spool.rows, "bytes": spool.nbytes}
    return TaskResult(task.id, table, time.perf_counter() - started, stats)


def _partition(task: Task, plan: Any, started: float) -> TaskResult:
    """A task of a group-by exchanged by rereading (``reread.py``): its partition's groups,
    whole, streamed to the result file past its size as any task's rows."""
    from .reread import KeyPartition, run_partition

    where = KeyPartition.from_json(task.partition)
    spool: ResultSpool | None = None
    if task.result_file:
        path = f"{task.result_file}.a{task.attempt}"
        spool = ResultSpool(
            path, task.result_file_bytes, task.result_group_bytes, task.result_format
        )
    try:
        table, rows, spilled = run_partition(
            plan, where, task.mem_cap, task.spill_dir, spool.add if spool is not None else None
        )
        if spool is not None:
            spool.close()
    except BaseException:
        if spool is not None:
            spool.abort()
        raise
    stats: dict[str, Any] = {"bytes_in": task.bytes_in, "spilled_bytes": spilled}
    if spool is not None:
        table = spool.held(SchemaResolver().schema(plan))
        stats |= {"rows_out": spool.rows, "bytes_out": spool.nbytes}
        if spool.path is not None:
            stats["file"] = {
                "path": spool.path,
                "rows": spool.rows,
                "bytes": spool.nbytes,
                "format": spool.format,
            }
    else:
        assert table is not None
        stats |= {"rows_out": rows, "bytes_out": table.nbytes}
    assert table is not None
    return TaskResult(task.id, table, time.perf_counter() - started, stats)
