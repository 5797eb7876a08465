"""What every backend does alike: retries of a failing task, the same error types, cancel;
and Ray at an address nobody answers on."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

import elytra
from elytra import BackendUnavailableError, JobCancelledError, TaskFailedError


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
    job.cancel()
    assert job.wait(30) == "cancelled"
    assert time.monotonic() - started < 10
    with pytest.raises(JobCancelledError):
        job.result()


def test_ray_at_an_address_nobody_answers_on_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="no Ray cluster answers"):
        elytra.RayBackend("ray://127.0.0.1:1", connect_timeout=5)
    with pytest.raises(BackendUnavailableError, match="not host:port"):
        elytra.RayBackend("nonsense", connect_timeout=5)
    assert time.monotonic() - started < 15
