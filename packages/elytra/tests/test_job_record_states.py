"""What a job's record says on a shared local pool while the job waits for its turn (not
running) and after a task failed (a failed task counted). (Break-tests of round 4.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import Task
from elytra.backends.local import LocalPool
from emsqrt import plan as lp
from emsqrt.plan_json import plan_to_json
from platform_core import Schema


@pytest.fixture(scope="module")
def pool(one_worker_pool: LocalPool) -> LocalPool:
    return one_worker_pool


@pytest.fixture
def data(tmp_path: Path) -> str:
    d = tmp_path / "data"
    d.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"id": list(range(i * 100, (i + 1) * 100))}), d / f"p{i}.parquet")
    return f"{d}/*.parquet"


def _hold(pool: LocalPool, tmp: Path) -> Iterator[object]:
    """A run that holds the pool's turn while suspended (one of its two tasks done)."""
    path = tmp / "hold.parquet"
    pq.write_table(pa.table({"v": list(range(10))}), path)
    scan = lp.Scan(str(path), "parquet", Schema.from_arrow(pq.read_schema(path)))
    plan = plan_to_json(scan)
    tasks = [Task(f"hold-s0-t{i}", 0, plan, 64 << 20, str(tmp / "spill")) for i in range(2)]
    run = pool.run(tasks, threading.Event())
    next(run)
    return run


def test_a_job_waiting_for_its_turn_is_not_shown_running(
    pool: LocalPool, tmp_path: Path, data: str
) -> None:
    held = _hold(pool, tmp_path)
    try:
        with elytra.connect(home=tmp_path / "home", backend=pool, progress=False) as s:
            job = s.read_parquet(data).agg("sum(id) AS t").submit()
            time.sleep(0.5)
            record = job.status()
            assert not job.done()
            waiting = (record["state"], record["tasks"]["running"])
            for _ in held:  # let the holder finish: the job gets its turn
                pass
            assert job.wait(60) == "succeeded"
            assert job.result().to_pylist() == [
                {"t": duckdb.sql(f"SELECT sum(id) FROM '{data}'").fetchall()[0][0]}
            ]
    finally:
        for _ in held:
            pass
    assert waiting == ("queued", 0)


def _boom(batch: pa.RecordBatch) -> pa.RecordBatch:
    if batch.num_rows:
        raise ValueError("boom")
    return batch


def test_a_failed_tasks_job_counts_a_failed_task(tmp_path: Path, data: str) -> None:
    with elytra.connect(
        home=tmp_path / "home", backend="inline", max_attempts=1, progress=False
    ) as s:
        job = s.read_parquet(data).map_batches(_boom).agg("count(*) AS n").submit()
        assert job.wait(60) == "failed"
        tasks = job.status()["tasks"]
    assert tasks["running"] == 0
    assert tasks["failed"] >= 1
