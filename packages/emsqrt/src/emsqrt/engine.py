"""Running a plan under a cap: check, optimize, lower, schedule, execute, report.

``run(plan, config)`` returns a :class:`RunResult` with the manifest and, when the root is not
a sink, the result as an Arrow table (collecting it is the caller's memory, not the run's: the
Arrow-out side of the API). The run's spill directory is removed in every case, including
errors and Ctrl-C; a failed sink leaves no partial file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from platform_core import sha256_file

from . import plan as lp
from .budget import MemoryBudget
from .cancel import Cancel, cancel_check, cancel_flag
from .context import ExecContext, ProgressFn
from .engine_config import EngineConfig
from .errors import EmsqrtError
from .explain import render_explain
from .kernel import KERNEL_FLOOR_BYTES, StreamBroken, Unsupported, compile_plan, run_fragment
from .manifest import Manifest, OperatorReport, operator_reports
from .memstats import MemoryProbe
from .optimizer import optimize as optimize_plan
from .physical.base import PhysicalOp
from .physical_planner import Lowerer
from .plan_json import plan_hash
from .resolve import SchemaResolver, bind_scan_schemas
from .schedule import BLOCKING, schedule
from .signals import sigterm_raises
from .spill import SpillManager

__all__ = ["RunResult", "explain", "run", "run_batches", "run_parallel"]

Batches = Mapping[str, pa.Table | pa.RecordBatch | Sequence[pa.RecordBatch]]


@dataclass
class RunResult:
    manifest: Manifest
    table: pa.Table | None

    def explain(self) -> str:
        """The plan tree with estimated and actual rows, bytes and spill."""
        return render_explain(self.manifest.operators, actual=True)


def _as_batches(inputs: Batches | None) -> dict[str, list[pa.RecordBatch]]:
    out: dict[str, list[pa.RecordBatch]] = {}
    for name, value in (inputs or {}).items():
        if isinstance(value, pa.Table):
            out[name] = value.to_batches()
        elif isinstance(value, pa.RecordBatch):
            out[name] = [value]
        else:
            out[name] = list(value)
    return out


def _count(node: lp.Node) -> int:
    """Operators whose batches can be in flight at once (the head-room is a batch each): a
    union runs its inputs one after another, so only its largest input counts."""
    kids = [_count(c) for c in lp.children(node)]
    if isinstance(node, lp.Union):
        return 1 + max(kids, default=0)
    return 1 + sum(kids)


def _sinks(op: PhysicalOp) -> list[PhysicalOp]:
    found = [op] if op.name == "sink" else []
    for c in op.children:
        found += _sinks(c)
    return found


def _blocking(op: PhysicalOp) -> list[PhysicalOp]:
    found = [op] if op.name in BLOCKING else []
    for c in op.children:
        found += _blocking(c)
    return found


def _concurrent(op: PhysicalOp) -> int:
    """Accumulating operators that can hold memory at once under ``op``: a union's inputs run
    one after another (an input's operators have released everything when it is exhausted),
    so a union of 24 aggregates holds one aggregate's state at a time, not 24."""
    kids = [_concurrent(c) for c in op.children]
    own = 1 if op.name in BLOCKING else 0
    if op.name == "union":
        return own + max(kids, default=0)
    return own + sum(kids)


def _assign_shares(root: PhysicalOp, ctx: ExecContext) -> None:
    """Each accumulating operator gets an equal share of the cap (less the head-room), split
    between those that can hold memory at the same time (see :func:`_concurrent`)."""
    ops = _blocking(root)
    n = _concurrent(root)
    for op in ops:
        op.mem = ctx.share(n)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def explain(
    plan: lp.Node, config: EngineConfig | None = None, inputs: Batches | None = None
) -> str:
    """The optimized plan tree with estimates, without running it."""
    config = config or EngineConfig()
    resolver = SchemaResolver()
    resolver.schema(plan)
    optimized = optimize_plan(bind_scan_schemas(plan), resolver)
    budget = MemoryBudget(config.mem_cap_bytes)
    with SpillManager(config.spill_dir, config.spill_codec) as spill:
        ctx = ExecContext.for_cap(budget, spill, _count(optimized))
        root = Lowerer(ctx, SchemaResolver(), _as_batches(inputs)).lower(optimized)
        return render_explain(operator_reports(root), actual=False)


def run(
    plan: lp.Node,
    config: EngineConfig | None = None,
    *,
    inputs: Batches | None = None,
    optimize: bool = True,
    progress: ProgressFn | None = None,
    budget: MemoryBudget | None = None,
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
    cancel: Cancel | None = None,
) -> RunResult:
    """Execute ``plan`` under ``config.mem_cap_bytes`` (or a given budget: one task's share
    of a parent's cap, see ``run_parallel``) and report what it did. With ``on_batch``, each
    result batch goes to it as it is made and none is collected (``table`` is None): the
    caller streams a result of any size (to a file, a socket) under the cap, from the DuckDB
    kernel as it makes them, or from the operators. With ``cancel`` (a ``threading.Event``
    or a function returning True to stop), the run checks it once per batch in every
    operator loop and raises ``CancelledError`` once it is set, its spill files removed."""
    config = config or EngineConfig()
    resolver = SchemaResolver()
    resolver.schema(plan)  # unknown columns and type errors fail before anything runs
    phash = plan_hash(plan, config.output_affecting())
    bound = bind_scan_schemas(plan)
    optimized = optimize_plan(bound, SchemaResolver()) if optimize else bound
    began = _now(), time.perf_counter()
    budget = budget or MemoryBudget(config.mem_cap_bytes)
    if config.kernel not in ("auto", "off"):
        raise ValueError(f"kernel is 'auto' or 'off', not {config.kernel!r}")
    if config.kernel == "auto" and not isinstance(optimized, lp.Sink):
        done = _on_kernel(plan, optimized, config, inputs, budget, phash, began, on_batch, cancel)
        if done is not None:
            return done
    return _on_operators(
        optimized, config, inputs, budget, phash, began, progress, on_batch, cancel
    )


def _on_kernel(
    plan: lp.Node,
    optimized: lp.Node,
    config: EngineConfig,
    inputs: Batches | None,
    budget: MemoryBudget,
    phash: str,
    began: tuple[str, float],
    on_batch: Callable[[pa.RecordBatch], None] | None,
    cancel: Cancel | None = None,
) -> RunResult | None:
    """``optimized`` run as one DuckDB statement, or None (the operators run it); a stream
    broken after rows went out is emsqrt's error once the operators found none."""
    try:
        return _run_kernel(optimized, config, inputs, budget, phash, began, on_batch, cancel)
    except StreamBroken as broken:
        cancel_check(cancel)()  # DuckDB interrupted by the cancel: nothing more to find
        # Rows already went out, so the operators cannot answer instead; they run once,
        # their rows dropped, so the error the user sees is emsqrt's own.
        run(
            plan,
            replace(config, kernel="off"),
            inputs=inputs,
            on_batch=lambda _: None,
            cancel=cancel,
        )
        raise EmsqrtError(
            f"the query failed after {broken.rows} rows of its result were sent on "
            f"({broken.cause} in DuckDB), where emsqrt's operators find no error; run it "
            "with the kernel off (EngineConfig(kernel='off'))"
        ) from None


def _on_operators(
    optimized: lp.Node,
    config: EngineConfig,
    inputs: Batches | None,
    budget: MemoryBudget,
    phash: str,
    began: tuple[str, float],
    progress: ProgressFn | None,
    on_batch: Callable[[pa.RecordBatch], None] | None,
    cancel: Cancel | None = None,
) -> RunResult:
    """``optimized`` lowered to emsqrt's operators and run under ``budget``, spilling."""
    streamed = on_batch is not None or isinstance(optimized, lp.Sink)
    probe = MemoryProbe.start()
    table: pa.Table | None = None
    with (
        sigterm_raises(),
        SpillManager(Path(config.spill_dir), config.spill_codec, cancel) as spill,
    ):
        ctx = ExecContext.for_cap(budget, spill, _count(optimized), progress)
        ctx.max_partitions = config.max_partitions
        ctx.max_fan_in = config.max_fan_in
        ctx.max_depth = config.max_depth
        root = Lowerer(ctx, SchemaResolver(), _as_batches(inputs)).lower(optimized)
        _assign_shares(root, ctx)
        parent_cap = budget.parent.cap_bytes if budget.parent else budget.cap_bytes
        sched = schedule(root, parent_cap, config.max_parallel_tasks)
        collected, streamed_rows = _drain(root, on_batch, keep=not isinstance(optimized, lp.Sink))
        if not streamed:
            table = pa.Table.from_batches(collected, schema=root.schema)
        spill_stats = spill.stats
    memory = {
        "cap_bytes": budget.cap_bytes,
        "reserved_peak_bytes": budget.peak,
        "reserved_peak_by_operator": dict(sorted(budget.peak_by_label.items())),
        "batch_bytes": ctx.batch_bytes,
        "headroom_bytes": ctx.headroom,
        **probe.finish(),
    }
    outputs = _sink_outputs(root)
    manifest = _manifest(
        phash,
        config,
        began,
        operator_reports(root),
        memory,
        spill={
            "bytes_written": spill_stats.bytes_written,
            "bytes_read": spill_stats.bytes_read,
            "arrow_bytes_written": spill_stats.arrow_bytes_written,
            "arrow_bytes_read": spill_stats.arrow_bytes_read,
            "segments_written": spill_stats.segments_written,
            "files": spill_stats.files,
        },
        schedule=sched.to_dict(),
        outputs=outputs,
        rows_out=table.num_rows
        if table is not None
        else streamed_rows + sum(o["rows"] for o in outputs),
    )
    return RunResult(manifest, table)


def _drain(
    root: PhysicalOp, on_batch: Callable[[pa.RecordBatch], None] | None, *, keep: bool
) -> tuple[list[pa.RecordBatch], int]:
    """Run ``root`` to its end: its batches (kept if ``keep`` and none go to ``on_batch``)
    and the rows sent to ``on_batch``."""
    collected: list[pa.RecordBatch] = []
    streamed_rows = 0
    root.open()
    try:
        while (batch := root.next_batch()) is not None:
            if on_batch is not None:
                on_batch(batch)
                streamed_rows += batch.num_rows
            elif keep:
                collected.append(batch)
    finally:
        root.close()
    return collected, streamed_rows


def _sink_outputs(root: PhysicalOp) -> list[dict[str, Any]]:
    """The files the plan's sinks wrote: path, format, rows, bytes and SHA-256."""
    outputs = []
    for sink in _sinks(root):
        path = Path(sink.node.path)  # type: ignore[attr-defined]
        outputs.append(
            {
                "path": str(path),
                "format": sink.node.format,  # type: ignore[attr-defined]
                "rows": sink.rows_written,  # type: ignore[attr-defined]
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
        )
    return outputs


def _manifest(
    phash: str,
    config: EngineConfig,
    began: tuple[str, float],
    operators: list[OperatorReport],
    memory: dict[str, Any],
    spill: dict[str, Any],
    schedule: dict[str, Any],
    outputs: list[dict[str, Any]],
    rows_out: int,
) -> Manifest:
    """The run's manifest (operators or the kernel alike); ``began``: start time, clock."""
    return Manifest(
        plan_hash=phash,
        config=config.output_affecting() | {"spill_codec": config.spill_codec},
        started_at=began[0],
        finished_at=_now(),
        seconds=time.perf_counter() - began[1],
        operators=operators,
        memory=memory,
        spill=spill,
        schedule=schedule,
        outputs=outputs,
        rows_out=rows_out,
    )


def _run_kernel(
    plan: lp.Node,
    config: EngineConfig,
    inputs: Batches | None,
    budget: MemoryBudget,
    phash: str,
    began: tuple[str, float],
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
    cancel: Cancel | None = None,
) -> RunResult | None:
    """The plan as one DuckDB statement under the budget's cap, or ``None`` (operators run);
    with ``on_batch`` its rows stream out as DuckDB makes them. A cancel interrupts DuckDB
    and raises ``CancelledError`` here rather than hand the plan to the operators."""
    if budget.cap_bytes < KERNEL_FLOOR_BYTES:
        return None
    try:
        fragment = compile_plan(plan, _as_batches(inputs))
    except Unsupported:
        return None
    check = cancel_check(cancel)
    check()
    done = run_fragment(
        fragment,
        budget.cap_bytes,
        config.spill_dir,
        config.kernel_threads,
        on_batch,
        cancel_flag(cancel),
    )
    check()  # DuckDB interrupted (its error read as "let the operators run"), or it finished
    if done is None:
        return None
    table = done.table
    rows = table.num_rows if table is not None else done.rows
    report = OperatorReport(
        id=0,
        op="kernel",
        detail=f"duckdb, {len(fragment.files)} file(s), memory_limit {done.memory_limit}",
        depth=0,
        estimated_rows=None,
        estimated_bytes=None,
        rows=rows,
        bytes=table.nbytes if table is not None else 0,
        spilled_bytes=done.spilled_bytes,
        spill_files=0,
        runs=0,
        merge_passes=0,
        partitions=0,
        repartition_depth=0,
        peak_reserved_bytes=done.memory_limit,
    )
    memory = {
        "cap_bytes": budget.cap_bytes,
        "reserved_peak_bytes": done.memory_limit,
        "kernel_memory_limit_bytes": done.memory_limit,
    }
    spill = {"bytes_written": done.spilled_bytes, "bytes_read": 0, "files": 0}
    schedule = {"kernel": "duckdb", "sql_bytes": len(fragment.sql)}
    manifest = _manifest(phash, config, began, [report], memory, spill, schedule, [], rows)
    return RunResult(manifest, table)


def run_parallel(
    plans: Sequence[lp.Node],
    config: EngineConfig | None = None,
    *,
    inputs: Sequence[Batches | None] | None = None,
) -> list[RunResult]:
    """Run independent plans (elytra's tasks) ``config.max_parallel_tasks`` at a time, each on
    an equal share of the one cap (``MemoryBudget.split``), so together they stay under it.
    Results come back in the order of ``plans``; the first error is raised after all stop."""
    from concurrent.futures import ThreadPoolExecutor

    config = config or EngineConfig()
    workers = max(1, min(config.max_parallel_tasks, len(plans)))
    parent = MemoryBudget(config.mem_cap_bytes)
    shares = parent.split(config.max_parallel_tasks)
    free = list(shares[:workers])
    lock = threading.Lock()

    def task(i: int) -> RunResult:
        with lock:
            share = free.pop()
        try:
            given = inputs[i] if inputs is not None else None
            return run(plans[i], config, inputs=given, budget=share)
        finally:
            with lock:
                free.append(share)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emsqrt-task") as pool:
        futures = [pool.submit(task, i) for i in range(len(plans))]
    results = [f.result() for f in futures]
    for r in results:
        r.manifest.memory["parallel_reserved_peak_bytes"] = parent.peak
        r.manifest.memory["parallel_cap_bytes"] = parent.cap_bytes
    return results


def run_batches(
    plan: lp.Node,
    inputs: Batches,
    cap_bytes: int,
    spill_dir: str | Path = ".platform/spill",
    **config: int | str,
) -> RunResult:
    """Arrow in, Arrow out: run ``plan`` over the given batches under ``cap_bytes``."""
    cfg = EngineConfig(mem_cap_bytes=cap_bytes, spill_dir=str(spill_dir), **config)  # type: ignore[arg-type]
    return run(plan, cfg, inputs=inputs)
