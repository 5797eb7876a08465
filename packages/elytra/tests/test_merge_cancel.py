"""A timeout or a cancel stops the driver's merge inside its spilling loops, not after it.

Found from outside: a query's merge (count(DISTINCT s) over 1.5M strings at a 64 KiB driver
cap) ran minutes past its 45 s timeout, the cancel seen only when a batch came out. Here the
cancel comes once the merge has written its first spill segment (watched from outside
emsqrt's checks, so where it comes does not depend on them), the way the job's timer or
``POST /jobs/{id}/cancel`` does it, and the merge must not read or write another segment.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import JobCancelledError, JobTimeoutError
from elytra.driver import Driver
from elytra.jobs import Job
from emsqrt import SpillFile


@pytest.fixture
def strings(tmp_path: Path) -> str:
    """200k distinct strings in 4 groups, in two files: the driver's merge of the tasks'
    distinct (g, s) pairs holds them all, far past a 64 KiB cap."""
    d = tmp_path / "data"
    d.mkdir()
    for i in range(2):
        ids = range(i * 100_000, (i + 1) * 100_000)
        pq.write_table(
            pa.table({"g": [j % 4 for j in ids], "s": [f"string-{j:08d}" for j in ids]}),
            d / f"p{i}.parquet",
        )
    return f"{d}/*.parquet"


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_a_timeout_or_cancel_stops_a_spilling_merge(
    strings: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    jobs: list[Job] = []
    submitted = threading.Event()
    seen = {"before": 0, "after": 0}
    stopped = threading.Event()
    append, read = SpillFile.append, SpillFile.read

    def counted(f: SpillFile) -> None:
        if "merge" not in f.path.parts:  # the tasks' own spill (inline: this process)
            return
        if stopped.is_set():
            seen["after"] += 1
            return
        seen["before"] += 1
        if f.segments:  # the merge spilled: what the job's timer or a cancel does now
            assert submitted.wait(30)
            job = jobs[0]
            Driver._time_out(job) if how == "timeout" else job.cancel()
            stopped.set()

    def appended(f: SpillFile, batch: pa.RecordBatch | pa.Table) -> None:
        append(f, batch)
        counted(f)

    def was_read(f: SpillFile, index: int) -> pa.RecordBatch:
        batch = read(f, index)
        counted(f)
        return batch

    monkeypatch.setattr(SpillFile, "append", appended)
    monkeypatch.setattr(SpillFile, "read", was_read)
    home = tmp_path / "home"
    with elytra.connect(
        home=home,
        backend="inline",
        worker_mem_cap="64MB",
        driver_mem_cap="64KiB",
        progress=False,
    ) as s:
        p = s.read_parquet(strings).group_by("g").agg("count(DISTINCT s) AS ds")
        job = p.submit(owner="alice", timeout=600)
        jobs.append(job)  # type: ignore[arg-type]
        submitted.set()
        assert job.wait(120) == "cancelled"
        with pytest.raises(JobTimeoutError if how == "timeout" else JobCancelledError):
            job.result()
    assert stopped.is_set(), "the merge never spilled"
    assert seen["after"] == 0, f"the merge read or wrote {seen['after']} segments after the stop"
    spill = home / "spill" / "elytra"
    assert not spill.exists() or not any(spill.iterdir())
