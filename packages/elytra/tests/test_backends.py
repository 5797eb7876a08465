"""What every backend does alike: retries of a failing task, the same error types, cancel;
and Ray at an address nobody answers on."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

import elytra
from elytra import BackendUnavailableError, JobCancelledError, TaskFailedError
from emsqrt.physical.pymap import UserFunctionError


def test_a_task_failing_once_is_retried_and_one_failing_always_fails_the_job(
    any_session: elytra.Session, parts_dir: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()

    def flaky(batch: pa.RecordBatch) -> pa.RecordBatch:
        mark = marks / f"{batch.num_rows}-{batch.column('k')[0].as_py() if batch.num_rows else 0}"
        if not mark.exists():  # the first attempt of each batch fails
            mark.touch()
            raise RuntimeError("a transient failure")
        return batch

    p = any_session.read_parquet(f"{parts_dir}/*.parquet").select("k", "v")
    assert p.map_batches(flaky, schema=p.schema).count() == p.count()

    def always(batch: pa.RecordBatch) -> pa.RecordBatch:
        raise RuntimeError("never works")

    with pytest.raises(TaskFailedError, match="never works") as failed:
        p.map_batches(always, schema=p.schema).collect()
    assert failed.value.attempts == 3


def test_cancel_stops_a_running_job(any_session: elytra.Session, parts_dir: Path) -> None:
    def slow(batch: pa.RecordBatch) -> pa.RecordBatch:
        time.sleep(2)
        return batch

    p = any_session.read_parquet(f"{parts_dir}/*.parquet")
    job = p.map_batches(slow, schema=p.schema).submit()
    time.sleep(0.5)
    started = time.monotonic()
    assert job.status()["tasks"]["running"] > 0
    job.cancel()
    assert job.wait(30) == "cancelled"
    assert time.monotonic() - started < 10
    assert job.status()["tasks"]["running"] == 0  # the record says they were stopped
    with pytest.raises(JobCancelledError):
        job.result()


def test_ray_at_an_address_nobody_answers_on_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="no Ray cluster answers"):
        elytra.RayBackend("ray://127.0.0.1:1", connect_timeout=5)
    with pytest.raises(BackendUnavailableError, match="not host:port"):
        elytra.RayBackend("nonsense", connect_timeout=5)
    assert time.monotonic() - started < 15


def test_ray_tasks_run_on_the_drivers_node(
    ray_backend: elytra.RayBackend, parts_dir: Path, tmp_path: Path
) -> None:
    # each task reports the Ray node it ran on: the driver's (its files are there)
    import ray

    def where(batch: pa.RecordBatch) -> pa.RecordBatch:
        node = ray.get_runtime_context().get_node_id()
        return pa.record_batch({"node": pa.array([node] * batch.num_rows, pa.string())})

    with elytra.connect(home=tmp_path, backend=ray_backend, progress=False) as s:
        p = s.read_parquet(f"{parts_dir}/*.parquet").select("k")
        nodes = set(
            p.map_batches(where, schema=pa.schema([("node", pa.string())]))
            .collect()["node"]
            .to_pylist()
        )
    assert nodes == {ray_backend.node_id}
    assert nodes == {ray.get_runtime_context().get_node_id()}


def test_ray_workers_this_backend_started_run_at_the_local_pools_priority(
    ray_backend: elytra.RayBackend, parts_dir: Path, tmp_path: Path
) -> None:
    """Ray's default ``worker_niceness`` of 15 made its tasks 2-3x slower than the local
    pool's (nice 0) for the same CPU seconds on a loaded machine (issue 33, q10 on Ray)."""
    import os

    def nice(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.record_batch({"nice": pa.array([os.nice(0)] * batch.num_rows, pa.int64())})

    with elytra.connect(home=tmp_path, backend=ray_backend, progress=False) as s:
        p = s.read_parquet(f"{parts_dir}/*.parquet").select("k")
        got = p.map_batches(nice, schema=pa.schema([("nice", pa.int64())])).collect()
    assert set(got["nice"].to_pylist()) == {os.nice(0)}


def test_an_error_the_same_on_every_attempt_is_not_retried(
    any_session: elytra.Session, parts_dir: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "calls"
    marks.mkdir()

    def narrow(batch: pa.RecordBatch) -> pa.RecordBatch:
        import hashlib
        import uuid

        import pyarrow.compute as pc

        if batch.num_rows:  # one mark per call, named by a digest of the batch it got
            digest = hashlib.sha256(str(batch.column("v").to_pylist()).encode()).hexdigest()
            (marks / f"{batch.num_rows}-{digest[:16]}-{uuid.uuid4().hex}").touch()
        return pa.record_batch({"v": pc.cast(batch.column("v"), pa.int8())})  # 999 > 127

    p = any_session.read_parquet(f"{parts_dir}/*.parquet").select("v")
    with pytest.raises(UserFunctionError, match="ArrowInvalid"):
        p.map_batches(narrow, schema=pa.schema([("v", pa.int8())])).collect()
    calls = [m.name.rsplit("-", 1)[0] for m in marks.iterdir()]
    assert calls
    assert len(calls) == len(set(calls))  # no batch was tried twice


def test_a_right_join_of_narrow_and_wide_integer_keys_matches_duckdb(
    any_session: elytra.Session,
) -> None:
    import duckdb

    lt = pa.table({"k": pa.array([1, 2, None, 100], pa.int8()), "a": [1, 2, 3, 4]})
    rt = pa.table({"k": pa.array([2, 2**40, None, 1], pa.int64()), "b": [5, 6, 7, 8]})
    for how in ("inner", "left", "right", "full"):
        got = any_session.from_arrow(lt).join(any_session.from_arrow(rt), "k", how=how)
        want = duckdb.sql(
            f"SELECT coalesce(l.k, r.k) AS k, a, b FROM lt l {how.upper()} JOIN rt r ON l.k = r.k"
        ).fetchall()
        rows = [(r["k"], r["a"], r["b"]) for r in got.collect().to_pylist()]
        key = lambda r: tuple((v is None, v or 0) for v in r)  # noqa: E731
        assert sorted(rows, key=key) == sorted(want, key=key), how
