"""Cancelling a run: ``run(..., cancel=)`` stops every spilling operator within a batch.

Each test cancels at a point it can name (a spill segment written, a spill file read back and
removed, a scan's Nth batch), not after a delay, then checks that no spill segment was read or
written after the cancel (nor a scan batch read), that ``CancelledError`` came out, and that the spill directory
is left empty (the ``spill_dir`` fixture asserts it).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oracle import KiB, input_node, make_table

from emsqrt import (
    Aggregate,
    AggSpec,
    CancelledError,
    EmsqrtError,
    EngineConfig,
    Join,
    Scan,
    Sort,
    SortKey,
    SpillFile,
    run,
)
from platform_core import PlatformError
from platform_core.expr import parse


class CancelAt:
    """Sets the run's ``cancel`` event at a spill event it watches for (the first segment
    written, or the first spill file removed: an operator is reading its partitions or runs
    back, its input done), and counts the spill reads and writes that came after the set.
    It watches ``SpillFile`` from outside the checks, so the point where the cancel comes
    does not depend on where the run checks it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, when: str) -> None:
        self.event = threading.Event()
        self.when = when
        self.before = 0
        self.after = 0
        append, read, delete = SpillFile.append, SpillFile.read, SpillFile.delete

        def counted(f: SpillFile) -> None:
            if self.event.is_set():
                self.after += 1
                return
            self.before += 1
            if self.when == "spilled" and f.segments:
                self.event.set()

        def appended(f: SpillFile, batch: pa.RecordBatch | pa.Table) -> None:
            append(f, batch)
            counted(f)

        def was_read(f: SpillFile, index: int) -> pa.RecordBatch:
            batch = read(f, index)
            counted(f)
            return batch

        def removed(f: SpillFile) -> None:
            delete(f)
            if self.when == "read back":
                self.event.set()

        monkeypatch.setattr(SpillFile, "append", appended)
        monkeypatch.setattr(SpillFile, "read", was_read)
        monkeypatch.setattr(SpillFile, "delete", removed)


def _config(spill_dir: Path, **more: int) -> EngineConfig:
    return EngineConfig(mem_cap_bytes=64 * KiB, spill_dir=str(spill_dir), kernel="off", **more)  # type: ignore[arg-type]


def _cancelled(
    monkeypatch: pytest.MonkeyPatch,
    plan: object,
    inputs: dict[str, pa.Table],
    spill_dir: Path,
    when: str,
    **more: int,
) -> CancelAt:
    with monkeypatch.context() as m:
        at = CancelAt(m, when)
        with pytest.raises(CancelledError, match="cancelled") as caught:
            run(plan, _config(spill_dir, **more), inputs=inputs, cancel=at.event)  # type: ignore[arg-type]
    assert isinstance(caught.value, EmsqrtError)
    assert isinstance(caught.value, PlatformError)
    assert at.event.is_set()
    assert at.before > 0, "the run never spilled"
    assert at.after == 0, f"{at.after} spill reads or writes after the cancel"
    return at


def _distinct_plan(t: pa.Table) -> Aggregate:
    aggs = (("n", "count(*)"), ("ds", "count(DISTINCT s)"), ("sv", "sum(v)"))
    return Aggregate(input_node("t", t), ("k",), tuple(AggSpec(n, parse(e)) for n, e in aggs))  # type: ignore[misc]


def _table(rows: int, seed: int, prefix: str = "") -> pa.Table:
    return make_table(
        {"rows": rows, "keys": 50_000, "nulls": 0.0, "skew": False, "seed": seed}, prefix
    )


def test_uncancelled_runs_spill_and_finish(spill_dir: Path) -> None:
    """The runs the tests below cancel do spill, repartition and finish when left alone."""
    t = _table(3000, 3)
    r = run(
        _distinct_plan(t),
        _config(spill_dir, max_partitions=2),
        inputs={"t": t},
        cancel=threading.Event(),
    )
    assert r.manifest.spilled_bytes > 0
    assert max(op.repartition_depth for op in r.manifest.operators) >= 2
    s = run(
        Sort(input_node("t", t), (SortKey("s"),)),
        _config(spill_dir, max_fan_in=2),
        inputs={"t": t},
        cancel=lambda: False,
    )
    assert s.manifest.operator("sort").merge_passes >= 2


def test_aggregate_cancelled_while_it_repartitions(
    spill_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel comes once the aggregate reads its partitions back (a partition file is
    gone): its input is done, only the recursive repartition runs, and it stops there."""
    t = _table(3000, 3)
    _cancelled(monkeypatch, _distinct_plan(t), {"t": t}, spill_dir, "read back", max_partitions=2)


def test_aggregate_cancelled_while_it_spills(
    spill_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _table(3000, 3)
    _cancelled(monkeypatch, _distinct_plan(t), {"t": t}, spill_dir, "spilled", max_partitions=2)


def test_sort_cancelled_while_it_writes_runs_and_merges(
    spill_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _table(6000, 1)
    plan = Sort(input_node("t", t), (SortKey("s"), SortKey("k", descending=True)))
    _cancelled(monkeypatch, plan, {"t": t}, spill_dir, "spilled", max_fan_in=2)
    # the merge: a run was merged away (a file gone) while a pass writes its merged run
    _cancelled(monkeypatch, plan, {"t": t}, spill_dir, "read back", max_fan_in=2)


@pytest.mark.parametrize("how", ["inner", "full"])
def test_join_cancelled_while_it_partitions_and_probes(
    spill_dir: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    lt, rt = _table(3000, 7), _table(3000, 8, "r")
    plan = Join(input_node("l", lt), input_node("r", rt), ("k", "g"), ("rk", "rg"), how)  # type: ignore[arg-type]
    _cancelled(monkeypatch, plan, {"l": lt, "r": rt}, spill_dir, "spilled", max_partitions=2)
    _cancelled(monkeypatch, plan, {"l": lt, "r": rt}, spill_dir, "read back", max_partitions=2)


def test_event_set_from_another_thread_stops_a_scan_fed_aggregate(
    spill_dir: Path, tmp_path: Path
) -> None:
    """The common use: a ``threading.Event`` set by another thread (a job's timeout) while
    the run is busy on its own; here it is set from the scan's 5th progress report, and the
    scan reads no batch after it."""
    path = tmp_path / "t.parquet"
    pq.write_table(_table(20_000, 5), path, row_group_size=200)
    plan = _distinct_plan(_table(1, 0))
    plan = Aggregate(Scan(str(path), "parquet"), plan.group_by, plan.aggregates)
    cancel = threading.Event()
    reports: list[int] = []
    after: list[int] = []
    outcome: list[BaseException | None] = []

    def progress(label: str, rows: int) -> None:
        (after if cancel.is_set() else reports).append(rows)
        if len(reports) == 5:
            cancel.set()

    def go() -> None:
        try:
            run(plan, _config(spill_dir, max_partitions=2), progress=progress, cancel=cancel)
            outcome.append(None)
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=go)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert isinstance(outcome[0], CancelledError)
    assert cancel.is_set()
    assert after == []
