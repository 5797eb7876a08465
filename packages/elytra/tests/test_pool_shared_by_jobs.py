"""Jobs take turns on the one shared local pool (a break-test): the platform shares one local
pool between every job, so two jobs that run at the same time must take turns on it —
the second used to fail at once with "this local pool is already running a job"."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import JobCancelledError, Task
from elytra.backends.local import LocalPool
from emsqrt import plan as lp
from emsqrt.plan_json import plan_to_json
from platform_core import Schema
from platform_core.expr import parse


@pytest.fixture(scope="module")
def pool(one_worker_pool: LocalPool) -> LocalPool:
    return one_worker_pool


def _tasks(tmp: Path, prefix: str, n: int) -> list[Task]:
    path = tmp / f"{prefix}.parquet"
    pq.write_table(pa.table({"v": list(range(100))}), path)
    scan = lp.Scan(str(path), "parquet", Schema.from_arrow(pq.read_schema(path)))
    plan = plan_to_json(lp.Filter(scan, parse("v < 10")))
    return [Task(f"{prefix}-s0-t{i}", 0, plan, 64 << 20, str(tmp / "spill")) for i in range(n)]


def test_a_second_run_waits_for_the_first_instead_of_failing(
    pool: LocalPool, tmp_path: Path
) -> None:
    first = pool.run(_tasks(tmp_path, "a", 2), threading.Event())
    got_first = [next(first)]  # the first run is under way (one task of two done)
    second: list[object] = []
    finished = threading.Event()

    def other() -> None:
        try:
            second.extend(pool.run(_tasks(tmp_path, "b", 2), threading.Event()))
        except BaseException as exc:
            second.append(exc)
        finally:
            finished.set()

    t = threading.Thread(target=other)
    t.start()
    assert not finished.wait(0.3), second  # it waits for its turn, it does not fail
    got_first += list(first)
    assert finished.wait(30)
    t.join()
    assert len(got_first) == 2
    assert [r.table.num_rows for r in second] == [10, 10], second  # type: ignore[attr-defined]


def test_a_run_waiting_for_its_turn_can_be_cancelled(pool: LocalPool, tmp_path: Path) -> None:
    first = pool.run(_tasks(tmp_path, "c", 2), threading.Event())
    next(first)
    cancel = threading.Event()
    cancel.set()
    raised: list[BaseException] = []

    def other() -> None:
        try:
            list(pool.run(_tasks(tmp_path, "d", 1), cancel))
        except BaseException as exc:
            raised.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(10)
    assert len(list(first)) == 1
    assert [type(e) for e in raised] == [JobCancelledError]


def test_two_jobs_of_one_session_run_at_once(pool: LocalPool, tmp_path: Path) -> None:
    pq.write_table(pa.table({"k": [1, 2, 3, None], "v": [1, 2, 3, 4]}), tmp_path / "t.parquet")
    with elytra.connect(home=tmp_path / "home", backend=pool, progress=False) as s:
        p = s.read_parquet(tmp_path / "t.parquet").group_by("k").agg("sum(v) AS s").sort("k")
        jobs = [p.submit() for _ in range(3)]
        states = [j.wait(60) for j in jobs]
        assert states == ["succeeded"] * 3, [j.error for j in jobs]
        assert jobs[2].result().column("s").to_pylist() == [1, 2, 3, 4]
