"""Jobs: background runs with a handle, recorded in Elkyn at /jobs/{id} under reserved rules."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

import elytra
from elkyn import PermissionDeniedError, Store
from elytra import JOBS_RULES, JobCancelledError, JobTimeoutError, StoreRecorder
from platform_core.auth import TokenSigner

from .conftest import write_parts


@pytest.fixture
def store() -> Iterator[Store]:
    db = Store(memory=True, signer=TokenSigner("k" * 40))
    db.reserve("jobs", JOBS_RULES)
    yield db
    db.close()


@pytest.fixture
def many_parts(tmp_path: Path) -> Path:
    return write_parts(tmp_path / "many", parts=40, rows=3000, seed=5)


def _states(store: Store) -> list[str]:
    seen: list[str] = []

    def listen(entries: list[Any]) -> None:
        for e in entries:
            data = e.data if isinstance(e.data, dict) else {}
            if "state" in data and (not seen or seen[-1] != data["state"]):
                seen.append(data["state"])

    store.on_commit(listen)
    return seen


def test_a_job_is_recorded_from_queued_to_succeeded(
    store: Store, parts_dir: Path, tmp_path: Path
) -> None:
    states = _states(store)
    with elytra.connect(home=tmp_path, backend="inline", recorder=StoreRecorder(store)) as s:
        p = s.read_parquet(f"{parts_dir}/*.parquet").group_by("k").agg("count(*) AS n")
        job = p.submit(owner="alice")
        assert job.wait(60) == "succeeded"
        assert job.result().num_rows == 7
    record = store.get(f"/jobs/{job.id}")
    assert record["owner"] == "alice"
    assert record["state"] == "succeeded"
    assert record["tasks"]["done"] == record["tasks"]["total"] == 5
    assert record["rows_out"] == 7
    files = f"{parts_dir}/*.parquet"
    assert [(record["rows_in"],)] == duckdb.sql(f"SELECT count(*) FROM '{files}'").fetchall()
    assert "Aggregate" in record["plan"]
    assert states == ["queued", "running", "succeeded"]
    alice, bob = store.issue_token("alice"), store.issue_token("bob")
    assert store.get(f"/jobs/{job.id}/state", token=alice) == "succeeded"
    with pytest.raises(PermissionDeniedError):
        store.get(f"/jobs/{job.id}", token=bob)


def test_cancel_and_timeout_stop_a_job_and_leave_no_spill(
    store: Store, many_parts: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with elytra.connect(
        home=home, backend="inline", recorder=StoreRecorder(store), worker_mem_cap="1MB"
    ) as s:
        slow = s.read_parquet(f"{many_parts}/*.parquet").sort("f", "s", "v")
        job = slow.submit(owner="alice")
        job.cancel()
        assert job.wait(60) == "cancelled"
        with pytest.raises(JobCancelledError):
            job.result()
        timed = slow.submit(owner="alice", timeout=0.05)
        assert timed.wait(60) == "cancelled"
        with pytest.raises(JobTimeoutError, match="timeout"):
            timed.result()
        assert store.get(f"/jobs/{timed.id}/error/type") == "timeout"
    spill = home / "spill" / "elytra"
    assert not spill.exists() or not any(spill.iterdir())


def test_a_cancel_during_the_drivers_merge_ends_the_job_cancelled(
    store: Store, parts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every task is done, the driver is merging: a cancel then is honoured, not dropped."""
    import elytra.driver as driver_module

    real_run = driver_module.run
    jobs: list[elytra.Job] = []
    submitted = threading.Event()

    def merge_then_cancelled(*args: Any, **kwargs: Any) -> Any:
        assert submitted.wait(30)
        jobs[0].cancel()  # what POST /api/jobs/{id}/cancel does while the merge runs
        return real_run(*args, **kwargs)

    monkeypatch.setattr(driver_module, "run", merge_then_cancelled)
    with elytra.connect(home=tmp_path, backend="inline", recorder=StoreRecorder(store)) as s:
        p = s.read_parquet(f"{parts_dir}/*.parquet").group_by("k").agg("count(*) AS n")
        job = p.submit(owner="alice")
        jobs.append(job)
        submitted.set()
        assert job.wait(60) == "cancelled"
    assert store.get(f"/jobs/{job.id}/state") == "cancelled"


def test_a_task_that_fails_fails_the_job_with_its_error(store: Store, tmp_path: Path) -> None:
    good, bad = tmp_path / "a.csv", tmp_path / "b.csv"
    good.write_text("x,y\n1,2\n3,4\n")
    bad.write_text("x,y\n5,6\n7,8,9,10\n")
    with elytra.connect(home=tmp_path, backend="inline", recorder=StoreRecorder(store)) as s:
        job = s.read_csv(f"{tmp_path}/*.csv").agg("sum(x) AS sx").submit(owner="alice")
        assert job.wait(60) == "failed"
    record = store.get(f"/jobs/{job.id}")
    assert record["state"] == "failed"
    assert "b.csv" in record["error"]["message"]


def test_records_a_killed_platform_left_running_are_marked_failed_at_start(store: Store) -> None:
    from elytra.jobs import reconcile

    store.set("/jobs/a", {"owner": "x", "state": "running"})
    store.set("/jobs/b", {"owner": "x", "state": "queued"})
    store.set("/jobs/c", {"owner": "x", "state": "succeeded"})
    assert len(reconcile(store)) == 2
    assert store.get("/jobs/a/state") == "failed"
    assert "stopped" in store.get("/jobs/b/error/message")
    assert store.get("/jobs/c/state") == "succeeded"
    assert reconcile(store) == []


def test_an_embedded_sessions_job_is_recorded_in_its_homes_database(
    parts_dir: Path, tmp_path: Path
) -> None:
    """Issue 33 item 6: ``submit()`` with no platform records the job where its docstring
    says, the home's Elkyn ``/jobs/{id}``, which a platform started there later serves."""
    home = tmp_path / "home"
    with elytra.connect(home=home, backend="inline") as s:
        job = s.read_parquet(f"{parts_dir}/*.parquet").group_by("k").agg("count(*) AS n").submit()
        assert job.wait(60) == "succeeded"
    with Store(home / "elkyn") as db:
        record = db.get(f"/jobs/{job.id}")
    assert record["state"] == "succeeded"
    assert record["rows_out"] == 7
    assert record["tasks"]["done"] == record["tasks"]["total"] == 5


def test_a_script_that_submits_a_job_exits_cleanly(parts_dir: Path, tmp_path: Path) -> None:
    """A job thread's DuckDB connection was a thread-local, destroyed while the thread was
    torn down: a script ending right after ``submit().wait()`` aborted (C++ terminate, exit
    134) whenever that teardown was still running at exit."""
    script = tmp_path / "job.py"
    script.write_text(
        "import elytra\n"
        f"with elytra.connect(home={str(tmp_path / 'home')!r}, backend='inline') as s:\n"
        f"    p = s.read_parquet({str(parts_dir)!r} + '/*.parquet')\n"
        "    job = p.group_by('k').agg('sum(v) AS s').submit()\n"
        "    assert job.wait(60) == 'succeeded'\n"
    )
    for _ in range(3):  # the abort needed the exit to overlap the teardown: it did every time
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
