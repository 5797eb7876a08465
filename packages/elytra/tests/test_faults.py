"""Faults at the job level: a worker SIGKILLed mid-task, data larger than every cap, a cap too
small to make progress."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import duckdb
import pytest

import elytra
from emsqrt.errors import CapTooSmallError

from .conftest import rows_of, write_parts


@pytest.fixture(scope="module")
def big_parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parts(tmp_path_factory.mktemp("big"), parts=8, rows=40_000, seed=9)


def test_a_worker_killed_mid_task_does_not_change_the_answer(
    big_parts: Path, tmp_path: Path
) -> None:
    pool = elytra.LocalPool(2, ring_bytes=4 << 20)
    try:
        with elytra.connect(home=tmp_path, backend=pool, worker_mem_cap="2MB") as s:
            p = s.read_parquet(f"{big_parts}/*.parquet").sort("f", "s", "v", "k", "d")
            job = p.select("f", "v").limit(1000).submit()
            killed = 0
            deadline = time.monotonic() + 30
            while not killed and time.monotonic() < deadline and not job.done():
                running = pool.running_tasks()
                if running:
                    os.kill(next(iter(running.values())), signal.SIGKILL)
                    killed += 1
                time.sleep(0.01)
            assert killed, "no task was seen running"
            assert job.wait(120) == "succeeded", job.status().get("error")
            got = job.result()
    finally:
        pool.close()
    want = duckdb.sql(
        f"SELECT f, v FROM '{big_parts}/*.parquet' ORDER BY f NULLS LAST, s, v NULLS LAST, k, d "
        "LIMIT 1000"
    ).fetchall()
    assert [tuple(r.values()) for r in got.to_pylist()] == want


def test_task_results_past_the_driver_budget_go_to_disk(
    big_parts: Path, tmp_path: Path, pool: elytra.LocalPool
) -> None:
    # a union of two scans: every row comes back to the driver; past half its cap the
    # results go to Parquet files read by the merge, not to memory (an aggregate above the
    # union runs per branch on the workers: its states come to the driver, not the rows)
    caps = {"worker_mem_cap": 4 << 20, "driver_mem_cap": 4 << 20}
    with elytra.connect(home=tmp_path, backend=pool, **caps) as s:
        p = s.read_parquet(f"{big_parts}/*.parquet")
        both = p.select("s", "v").union(p.filter("v > 500").select("s", "v"))
        rows = both.collect()
        assert s.driver.last is not None
        written = s.driver.last.results_spilled_bytes
        got = both.group_by("s").agg("count(*) AS n", "sum(v) AS sv").collect()
    data = duckdb.sql(f"SELECT s, v FROM '{big_parts}/*.parquet'").to_arrow_table().nbytes
    assert data > caps["driver_mem_cap"]
    assert written >= data - caps["driver_mem_cap"] // 2
    want = duckdb.sql(
        f"SELECT s, count(*), sum(v) FROM (SELECT s, v FROM '{big_parts}/*.parquet' UNION ALL "
        f"SELECT s, v FROM '{big_parts}/*.parquet' WHERE v > 500) GROUP BY s"
    ).fetchall()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)
    union = duckdb.sql(
        f"SELECT s, v FROM '{big_parts}/*.parquet' UNION ALL "
        f"SELECT s, v FROM '{big_parts}/*.parquet' WHERE v > 500"
    ).fetchall()
    assert rows_of([tuple(r.values()) for r in rows.to_pylist()]) == rows_of(union)
    assert not list((tmp_path / "spill").rglob("*.parquet"))  # the job's files are gone


def test_task_results_wider_than_the_driver_cap_are_read_back_under_it(
    tmp_path: Path, pool: elytra.LocalPool
) -> None:
    # Each task's result (random floats and hashes, which Parquet cannot shrink) is several
    # times the driver's cap. Written as one row group it could not be decoded by the merge's
    # scan under that cap; the results file is written in row groups of a merge batch.
    data = tmp_path / "wide"
    data.mkdir()
    for i in range(2):
        duckdb.sql(
            f"COPY (SELECT r AS id, random() AS x, md5(r::VARCHAR) AS h "
            f"FROM range({i * 120_000}, {(i + 1) * 120_000}) t(r)) "
            f"TO '{data}/p{i}.parquet' (FORMAT parquet)"
        )
    caps = {"worker_mem_cap": 256 << 20, "driver_mem_cap": 4 << 20}
    with elytra.connect(home=tmp_path / "home", backend=pool, **caps) as s:
        p = s.read_parquet(f"{data}/*.parquet")
        ordered = p.sort("x", "id").collect()
        assert s.driver.last is not None
        assert s.driver.last.results_spilled_bytes > 2 * caps["driver_mem_cap"]
        n = p.union(p).group_by("h").agg("count(*) AS n").filter("n = 2").count()
    want = duckdb.sql(f"SELECT id, x, h FROM '{data}/*.parquet' ORDER BY x, id").to_arrow_table()
    assert ordered.equals(want)
    assert n == 240_000


def test_data_larger_than_every_cap_spills_and_stays_right(
    big_parts: Path, tmp_path: Path, pool: elytra.LocalPool
) -> None:
    caps = {"worker_mem_cap": 2 << 20, "driver_mem_cap": 4 << 20}
    with elytra.connect(home=tmp_path, backend=pool, **caps) as s:
        p = s.read_parquet(f"{big_parts}/*.parquet")
        data = duckdb.sql(f"SELECT * FROM '{big_parts}/*.parquet'").to_arrow_table().nbytes
        got = p.group_by("s", "d").agg("count(*) AS n", "sum(v) AS sv").collect()
        ordered = p.sort("v", "f", "s", "k", "d").select("v").collect()
        assert s.driver.last is not None
        spilled = s.driver.last.spilled_bytes  # the sort's runs and merge spill past the caps
    want = duckdb.sql(
        f"SELECT s, d, count(*), sum(v) FROM '{big_parts}/*.parquet' GROUP BY s, d"
    ).fetchall()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)
    assert data > 2 * caps["worker_mem_cap"] + caps["driver_mem_cap"]  # two workers + driver
    assert spilled > 0
    want_v = duckdb.sql(
        f"SELECT v FROM '{big_parts}/*.parquet' ORDER BY v NULLS LAST, f NULLS LAST, s, k, d"
    ).fetchall()
    assert ordered.column("v").to_pylist() == [v for (v,) in want_v]


def test_a_cap_too_small_fails_with_emsqrts_error_naming_a_cap_that_works(
    big_parts: Path, tmp_path: Path, pool: elytra.LocalPool
) -> None:
    with (
        elytra.connect(home=tmp_path, backend=pool, worker_mem_cap="8KB") as s,
        pytest.raises(CapTooSmallError, match=r"at least .* ELYTRA_WORKER_MEM_CAP"),
    ):
        s.read_parquet(f"{big_parts}/*.parquet").sort("s").collect()
