"""The local pool: results identical to the inline backend, streamed over strand rings, and
the faults (a killed worker, a lease past, cancel, a non-retryable error) leave no rings,
processes or spill files behind."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import strand
from elytra import InlineBackend, JobCancelledError, Task, TaskFailedError
from elytra.backends.local import LocalPool
from emsqrt import plan as lp
from emsqrt.errors import CapTooSmallError
from emsqrt.plan_json import plan_to_json
from platform_core import Schema
from platform_core.expr import Aggregate, Column, parse

SEED = 20261122


def _ours() -> list[str]:
    return [n for n in strand.list_segments() if n.startswith(f"elytra-{os.getpid()}-")]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(SEED)
    for i in range(4):  # small parts with a string column
        n = 20_000
        pq.write_table(
            pa.table(
                {
                    "k": rng.integers(0, 50, n),
                    "v": rng.integers(-1000, 1000, n),
                    "x": rng.random(n),
                    "s": pa.array([f"s{j % 97}" for j in rng.integers(0, 1000, n)]),
                }
            ),
            root / f"part{i}.parquet",
        )
    n = 3_300_000  # 52.8 MB of int64 + float64
    pq.write_table(
        pa.table({"k": rng.integers(0, 1 << 40, n), "x": rng.random(n)}), root / "big.parquet"
    )
    n = 1_000_000  # a sort of this under a 4 MiB cap spills and takes ~2 s
    pq.write_table(
        pa.table({"k": rng.integers(0, 1 << 40, n), "x": rng.random(n)}),
        root / "sort.parquet",
        row_group_size=64_000,
    )
    lists = pa.array([[1, None], [3], None, [], [5, 6]] * 200, pa.list_(pa.int32()))
    pq.write_table(pa.table({"k": pa.array(range(1000), pa.int64()), "l": lists}), root / "l.pq")
    return root


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    p = LocalPool(workers=2, ring_bytes=4 << 20, max_attempts=3, lease_seconds=60.0, inline_bytes=0)
    try:
        p.wait_ready()
        yield p
    finally:
        p.close()
    assert _ours() == []


def _scan(path: Path) -> lp.Scan:
    schema = Schema.from_arrow(pq.read_schema(path))
    return lp.Scan(str(path), "parquet", schema)


def _task(tid: str, plan: lp.Node, spill: Path, cap: int = 64 << 20, stage: int = 0) -> Task:
    return Task(tid, stage, plan_to_json(plan), cap, str(spill), files=())


def _small_tasks(data: Path, spill: Path) -> list[Task]:
    tasks = []
    for i in range(4):
        scan = _scan(data / f"part{i}.parquet")
        agg = lp.Aggregate(
            lp.Filter(scan, parse("v % 3 = 0")),
            ("k",),
            (
                lp.AggSpec("n", Aggregate("count", None)),
                lp.AggSpec("s", Aggregate("sum", Column("v"))),
            ),
        )
        tasks.append(_task(f"agg{i}", lp.Sort(agg, (lp.SortKey("k"),)), spill, stage=0))
        sel = lp.Sort(lp.Filter(scan, parse("x < 0.3")), (lp.SortKey("v"), lp.SortKey("x")))
        tasks.append(_task(f"sel{i}", sel, spill, stage=1))
    tasks.append(_task("empty", lp.Filter(_scan(data / "part0.parquet"), parse("v > 5000")), spill))
    return tasks


def _by_id(results: object) -> dict[str, pa.Table]:
    return {r.task_id: r.table for r in results}  # type: ignore[attr-defined]


def test_results_are_identical_to_inline_and_workers_are_reused(
    pool: LocalPool, data: Path, tmp_path: Path
) -> None:
    tasks = _small_tasks(data, tmp_path / "spill")  # 9 tasks, 2 stages, 2 workers
    pids = pool.worker_pids()
    want = _by_id(InlineBackend().run(tasks, threading.Event()))
    for _ in range(2):
        results = list(pool.run(tasks, threading.Event()))
        got = _by_id(results)
        assert got.keys() == want.keys()
        for tid, table in want.items():
            assert got[tid].schema == table.schema, tid
            assert got[tid].equals(table), tid
        assert {r.stats["transport"] for r in results} == {"strand", "empty"}
        assert all(r.stats["attempt"] == 1 for r in results)
    assert pool.worker_pids() == pids  # started once, reused across runs
    assert 0 < len(_ours()) <= 4  # one ring per worker per stage


def test_a_task_alone_runs_duckdb_on_every_worker_s_core(
    pool: LocalPool, data: Path, tmp_path: Path
) -> None:
    """A run of one task gives it the pool's cores (DuckDB threads); a run of several gives
    each one, as each has a worker of its own. The answer is the same either way."""
    tasks = _small_tasks(data, tmp_path / "spill")
    (alone,) = list(pool.run(tasks[:1], threading.Event()))
    assert alone.stats["threads"] == 2
    many = _by_id(pool.run(tasks[:3], threading.Event()))
    assert {r.stats["threads"] for r in pool.run(tasks[:3], threading.Event())} == {1}
    assert alone.table.equals(many[alone.task_id])


def test_a_result_bigger_than_the_ring_streams_through_it(
    pool: LocalPool, data: Path, tmp_path: Path
) -> None:
    task = _task("big", _scan(data / "big.parquet"), tmp_path, cap=256 << 20, stage=7)
    (result,) = pool.run([task], threading.Event())
    assert result.table.nbytes > 12 * pool.ring_bytes  # 52.8 MB through a 4 MiB ring
    assert result.stats["transport"] == "strand"
    assert result.table.equals(pq.read_table(data / "big.parquet"))


def test_a_small_result_comes_over_the_pipe_and_a_larger_one_through_a_ring(
    data: Path, tmp_path: Path
) -> None:
    """A result of at most ``inline_bytes`` comes as IPC bytes over the pipe (no ring made:
    a ring of a new schema cost more than the whole small task); a larger one through a
    ring. Both equal the inline backend's."""
    others = set(_ours())
    small = _small_tasks(data, tmp_path)[0]  # a few hundred bytes of groups
    big = _task("big", _scan(data / "big.parquet"), tmp_path, cap=256 << 20, stage=1)
    p = LocalPool(workers=1, ring_bytes=4 << 20, inline_bytes=1 << 20)
    try:
        (got,) = p.run([small], threading.Event())
        assert got.stats["transport"] == "ipc"
        assert not set(_ours()) - others  # no ring made for it
        (want,) = InlineBackend().run([small], threading.Event())
        assert got.table.equals(want.table)
        (large,) = p.run([big], threading.Event())
        assert large.table.nbytes > p.inline_bytes
        assert large.stats["transport"] == "strand"
        assert large.table.equals(pq.read_table(data / "big.parquet"))
    finally:
        p.close()


def test_a_type_strand_cannot_hold_falls_back_to_ipc(
    pool: LocalPool, data: Path, tmp_path: Path
) -> None:
    # strand's i32_array holds no null elements inside a list: this result goes as Arrow IPC
    task = _task("lists", lp.Filter(_scan(data / "l.pq"), parse("k >= 10")), tmp_path, stage=3)
    (result,) = pool.run([task], threading.Event())
    (want,) = InlineBackend().run([task], threading.Event())
    assert result.stats["transport"] == "ipc"
    assert result.table.equals(want.table)
    assert result.table.column("l").to_pylist()[:2] == [[1, None], [3]]


def _slow(data: Path, spill: Path, tid: str = "slow") -> Task:
    plan = lp.Sort(_scan(data / "sort.parquet"), (lp.SortKey("k"),))
    return _task(tid, plan, spill, cap=4 << 20)


def _spill_left(spill: Path) -> list[str]:
    return [str(p) for p in spill.rglob("*")] if spill.exists() else []


def _spilling(spill: Path) -> bool:
    """Whether a spill file exists below ``spill`` now; the other tasks' directories come and
    go while it looks (a directory removed mid-walk is not an error)."""
    try:
        return spill.exists() and any(spill.rglob("*.arrows"))
    except FileNotFoundError:
        return False


def test_a_worker_killed_mid_task_is_replaced_and_its_task_retried(
    pool: LocalPool, data: Path, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    tasks = [_slow(data, spill), *_small_tasks(data, spill)[:2]]
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pid = pool.running_tasks().get("slow")
            if pid and _spilling(spill):  # mid-spill
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=killer)
    thread.start()
    results = {r.task_id: r for r in pool.run(tasks, threading.Event())}
    thread.join()
    assert killed, "the slow task was never seen spilling"
    assert results["slow"].stats["attempt"] == 2
    assert results["slow"].stats["worker_pid"] != killed[0]
    want = pq.read_table(data / "sort.parquet").sort_by("k")
    assert results["slow"].table.equals(want)
    assert killed[0] not in pool.worker_pids()
    assert _spill_left(spill) == []  # the killed attempt's spill directory was removed


def test_a_worker_dead_between_a_message_and_its_rows_is_lost_not_a_raw_eof(
    pool: LocalPool,
) -> None:
    """A worker killed after it announced its rows over the pipe (``ipc``) or asked for a
    ring (``need_ring``) is a lost worker, which the scheduler retries elsewhere: an outside
    tester's SIGKILL once failed a job with a bare ``EOFError``. Here the worker's end of the
    pipe is closed, as its death closes it."""
    import multiprocessing

    from elytra.backends.local import _Lost, _Slot
    from elytra.worker import encode_schema

    task = Task(id="t", stage=0, plan="{}", mem_cap=1 << 20, spill_dir="")
    schema = encode_schema(pa.schema([("x", pa.int64())]))
    for msg in ({"op": "ipc"}, {"op": "need_ring", "schema": schema}):
        ours, theirs = multiprocessing.Pipe()
        theirs.close()
        slot = _Slot(0, multiprocessing.current_process(), ours, ready=True, task=task)
        try:
            with pytest.raises(_Lost, match="the worker died"):
                pool._on_message(slot, msg, None)
        finally:
            slot.drop_rings()  # the ring made for the dead worker's request
            ours.close()


def test_a_task_past_its_lease_is_killed_retried_then_failed(
    pool: LocalPool, data: Path, tmp_path: Path
) -> None:
    pool.wait_ready()
    spill = tmp_path / "spill"
    pool.lease_seconds, pool.max_attempts = 0.5, 2
    try:
        with pytest.raises(TaskFailedError, match="lease") as info:
            list(pool.run([_slow(data, spill)], threading.Event()))
    finally:
        pool.lease_seconds, pool.max_attempts = 60.0, 3
    assert info.value.attempts == 2
    assert info.value.task_id == "slow"
    assert pool.running_tasks() == {}
    assert _spill_left(spill) == []


def test_cancel_kills_running_tasks_and_raises(pool: LocalPool, data: Path, tmp_path: Path) -> None:
    pool.wait_ready()
    spill = tmp_path / "spill"
    before = set(pool.worker_pids())
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(JobCancelledError):
        list(pool.run([_slow(data, spill, "a"), _slow(data, spill, "b")], cancel))
    assert time.monotonic() - started < 1.5
    assert pool.running_tasks() == {}
    assert not before & set(pool.worker_pids())  # both were running a task: both replaced
    assert _spill_left(spill) == []
    # the pool still works
    (result,) = pool.run(_small_tasks(data, spill)[:1], threading.Event())
    assert result.table.num_rows == 50


def test_a_non_retryable_error_fails_at_once_as_its_own_type(
    pool: LocalPool, data: Path, tmp_path: Path
) -> None:
    task = _task("tiny", _scan(data / "sort.parquet"), tmp_path, cap=64 << 10)
    with pytest.raises(CapTooSmallError) as inline:
        list(InlineBackend().run([task], threading.Event()))
    started = time.monotonic()
    with pytest.raises(CapTooSmallError) as info:
        list(pool.run([task, *_small_tasks(data, tmp_path)[:1]], threading.Event()))
    assert time.monotonic() - started < 5
    # the same error (the operator label before the colon is numbered per run)
    assert info.value.message.split(":", 1)[1] == inline.value.message.split(":", 1)[1]
    assert "Traceback" in info.value.remote_traceback  # type: ignore[attr-defined]
    assert "CapTooSmallError" in info.value.remote_traceback  # type: ignore[attr-defined]


def test_a_later_stage_with_the_same_rows_reuses_a_ring_and_spares_are_bounded(
    data: Path, tmp_path: Path
) -> None:
    """Jobs number their stages from 0, so a job's stage 0 met the last job's ring of another
    schema and made a new one each time; rings of stages done with are kept (two per worker)
    and one of the same schema is written again."""
    others = set(_ours())
    p = LocalPool(workers=1, ring_bytes=1 << 20, inline_bytes=0)
    try:
        agg, sel = _small_tasks(data, tmp_path)[0:2]  # two schemas
        list(p.run([agg], threading.Event()))
        first = set(_ours()) - others
        list(p.run([replace(sel, stage=0)], threading.Event()))  # stage 0, another schema
        (again,) = p.run([agg], threading.Event())  # the first schema again: its ring, kept
        assert first <= set(_ours()), "the first job's ring was made again, not reused"
        # written at the first attempt: the worker's writer of that ring is reused (a second
        # writer of the same ring in one process failed the attempt, and a retry hid it)
        assert (again.stats["attempt"], again.stats["transport"]) == (1, "strand")
        assert len(set(_ours()) - others) == 2
        scans = [
            _task(f"c{i}", lp.Project(_scan(data / "part0.parquet"), ((f"c{i}", "v"),)), tmp_path)
            for i in range(5)
        ]
        for task in scans:  # five more schemas, one after the other, on stage 0
            (result,) = p.run([task], threading.Event())
            assert result.stats["transport"] == "strand"
        assert len(set(_ours()) - others) == 3  # the one in use and two spares
    finally:
        p.close()
    assert not (set(_ours()) - others)


def test_close_stops_every_worker_and_unlinks_every_ring(data: Path, tmp_path: Path) -> None:
    others = set(_ours())  # the module's pool's rings (same pid) stay
    p = LocalPool(workers=1, ring_bytes=1 << 20, inline_bytes=0)
    (result,) = p.run(_small_tasks(data, tmp_path)[1:2], threading.Event())
    assert result.stats["transport"] == "strand"
    rings = set(_ours()) - others
    assert len(rings) == 1
    procs = [s.proc for s in p._slots]
    p.close()
    assert not any(proc.is_alive() for proc in procs)
    assert not rings & set(_ours())
    assert not [n for n in os.listdir("/dev/shm") if any(n.endswith(r) for r in rings)]


def test_a_script_without_a_main_guard_runs_on_the_local_pool_once(tmp_path: Path) -> None:
    """``spawn`` re-runs the driver's script in each worker; a script without
    ``if __name__ == "__main__":`` (as people write them) must still work, and run once."""
    import subprocess
    import sys

    script = tmp_path / "plain.py"
    script.write_text(
        "import os\n"
        "import pyarrow as pa\n"
        "import pyarrow.compute as pc\n"
        "import pyarrow.parquet as pq\n"
        "import elytra\n"
        "with open('runs.txt', 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        "for i in range(3):\n"
        "    pq.write_table(pa.table({'v': list(range(i * 100, i * 100 + 100))}), f'p{i}.parquet')\n"
        "def double(b):\n"
        "    return pa.record_batch({'v': pc.multiply(b.column('v'), 2)})\n"
        "with elytra.connect(home='home', backend='local', workers=2) as s:\n"
        "    p = s.read_parquet('p*.parquet').map_batches(double, schema=pa.schema([('v', pa.int64())]))\n"
        "    print(p.agg('sum(v) AS t').collect().column('t')[0].as_py())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "ELYTRA_"))}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == str(2 * sum(range(300)))
    assert len((tmp_path / "runs.txt").read_text().split()) == 1  # the workers did not run it
