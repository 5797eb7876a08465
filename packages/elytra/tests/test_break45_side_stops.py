"""Break-testing a side run first when the job stops (``Driver._run_side``): a timeout or a
cancel while the side's own tasks run fails the job with that error, and nothing the side
wrote (its ``first<k>.parquet``, its directory) stays in the spill directory."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra.driver import Driver
from elytra.errors import JobCancelledError, JobTimeoutError

SQL = "SELECT count(*) AS n FROM t b WHERE b.k IN (SELECT k FROM t GROUP BY k HAVING count(*) > 0)"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("stops")
    rng = np.random.default_rng(7)
    for i in range(6):
        n = 40_000
        t = pa.table({"k": pa.array(rng.integers(0, 30_000, n), pa.int64())})
        pq.write_table(t, where / f"t{i}.parquet", row_group_size=10_000)
    return where


@pytest.fixture
def side_started(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when a side run first starts; the side's tasks then wait to be stopped."""
    started = threading.Event()
    real = Driver._run_side

    def run_side(self, job, *args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        job.cancel_event.wait(30)  # stopped while the side runs, before any of it is read
        return real(self, job, *args, **kwargs)

    monkeypatch.setattr(Driver, "_run_side", run_side)
    return started


def _left(home: Path) -> list[str]:
    spill = home / "spill"
    return sorted(str(p.relative_to(spill)) for p in spill.rglob("*")) if spill.exists() else []


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_a_timeout_while_a_side_runs_first_leaves_nothing(
    data: Path, tmp_path: Path, backend: str, side_started: threading.Event
) -> None:
    home = tmp_path / "home"
    with elytra.connect(home=home, backend=backend, workers=2, job_timeout_seconds=1.0) as s:
        table = s.sql(SQL, {"t": s.read_parquet(str(data / "t*.parquet"))})
        with pytest.raises(JobTimeoutError, match="timeout"):
            table.collect()
        assert side_started.is_set()
    assert _left(home) in ([], ["elytra"]), _left(home)


def test_a_cancel_once_a_side_began_its_file_leaves_nothing(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled as the side's first rows go into ``first0.parquet``: the file is there."""
    jobs: list[object] = []
    seen: list[Path] = []
    real_run_side = Driver._run_side

    def run_side(self, job, *args, **kwargs):  # type: ignore[no-untyped-def]
        jobs.append(job)
        return real_run_side(self, job, *args, **kwargs)

    class Writer(pq.ParquetWriter):
        def write_batch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().write_batch(*args, **kwargs)
            if jobs and Path(self.where).name.startswith("first"):
                seen.append(Path(self.where))
                jobs[0].cancel()  # type: ignore[attr-defined]

    monkeypatch.setattr(Driver, "_run_side", run_side)
    monkeypatch.setattr(pq, "ParquetWriter", Writer)
    home = tmp_path / "home"
    with elytra.connect(home=home, backend="local", workers=2) as s:
        job = s.sql(SQL, {"t": s.read_parquet(str(data / "t*.parquet"))}).submit()
        assert job.wait(60) == "cancelled"
        with pytest.raises(JobCancelledError):
            job.result()
    assert seen, "the side wrote no rows before the cancel"
    assert _left(home) in ([], ["elytra"]), _left(home)
