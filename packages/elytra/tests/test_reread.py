"""Group-bys exchanged by rereading (``reread.py``): one task per key partition, each reading
the whole input; medians, quantiles and one-group-per-row aggregates give DuckDB's answer, in
DuckDB's statement and through emsqrt's operators (a cap below the kernel's floor), and the
driver only concatenates their rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import elytra
from elytra.reread import KeyPartition

from .conftest import rows_of

FILES = 3
ROWS = 4000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Parquet files whose keys hold NULLs, -0.0 beside 0.0, NaN and strings."""
    where = tmp_path_factory.mktemp("reread")
    for i in range(FILES):
        duckdb.sql(
            f"""COPY (SELECT
                    CASE WHEN r % 17 = 0 THEN NULL ELSE (r % 23)::INTEGER END AS g,
                    CASE WHEN r % 5 = 0 THEN -0.0 WHEN r % 5 = 1 THEN 0.0
                         WHEN r % 5 = 2 THEN 'nan'::DOUBLE ELSE (r % 3)::DOUBLE END AS f,
                    's' || (r % 11) AS s,
                    r AS u,
                    CASE WHEN r % 13 = 0 THEN NULL ELSE (r * 7919 % 1000) / 10.0 END AS x
                FROM range({i * ROWS}, {(i + 1) * ROWS}) t(r))
                TO '{where}/p{i}.parquet' (FORMAT parquet)"""
        )
    return f"{where}/p*.parquet"


@pytest.fixture(scope="module")
def pool2() -> Iterator[elytra.LocalPool]:
    p = elytra.LocalPool(2, ring_bytes=4 << 20)
    yield p
    p.close()


def _session(pool: elytra.LocalPool, tmp_path: Path, **more: Any) -> elytra.Session:
    # split_bytes=1: the rule's size floor, which keeps small inputs off this path, is passed
    return elytra.connect(
        home=tmp_path / "home", backend=pool, workers=2, split_bytes=1, progress=False, **more
    )


CASES = [
    (
        ("g", "f"),
        ["median(x) AS m", "quantile_cont(x, 0.9) AS q9", "stddev(x) AS sd", "count(*) AS n"],
        "median(x) AS m, quantile_cont(x, 0.9) AS q9, stddev_samp(x) AS sd, count(*) AS n",
    ),
    (
        ("s",),
        ["quantile_disc(x, 0.25) AS q", "sum(x) AS t"],
        "quantile_disc(x, 0.25) AS q, sum(x) AS t",
    ),
    # one group per row: partitioned rows, not partial states (exchange_min_bytes below)
    (("u", "s"), ["sum(x) AS t", "count(x) AS n"], "sum(x) AS t, count(x) AS n"),
]


@pytest.mark.parametrize("cap", [256 << 20, 8 << 20])
@pytest.mark.parametrize(("keys", "aggs", "sql"), CASES)
def test_a_reread_group_by_gives_duckdbs_answer(
    data: str,
    pool2: elytra.LocalPool,
    tmp_path: Path,
    keys: tuple[str, ...],
    aggs: list[str],
    sql: str,
    cap: int,
) -> None:
    # 8 MiB is below the kernel's floor: each task streams its partition's rows to a file
    # and emsqrt's operators aggregate them (spilling under the cap)
    with _session(pool2, tmp_path, exchange_min_bytes=1, worker_mem_cap=cap) as s:
        p = s.read_parquet(data).filter("x IS NULL OR x < 90").group_by(*keys).agg(*aggs)
        _, tasks = s.driver.plan(p, "j", tmp_path / "spill", None, True)
        wheres = [KeyPartition.from_json(t.partition) for t in tasks]
        assert wheres  # the path is taken
        assert all(w.parts == len(tasks) for w in wheres)
        assert sorted(w.part for w in wheres) == list(range(len(tasks)))
        assert all(len(t.files) == FILES for t in tasks)  # each reads every file
        got = p.collect()
        stats = s.driver.last
        assert stats is not None
        assert "exchange" not in stats.stage_seconds  # one round of tasks
    cols = ", ".join(keys)
    want = duckdb.sql(
        f"SELECT {cols}, {sql} FROM '{data}' WHERE x IS NULL OR x < 90 GROUP BY {cols}"
    ).fetchall()
    assert got.num_rows == len(want)
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)


def test_a_stored_result_streams_the_tasks_rows_and_reread_can_be_off(
    data: str, pool2: elytra.LocalPool, tmp_path: Path
) -> None:
    # the merge only concatenates: with a result store its rows stream there batch by batch
    # (here from the files the tasks wrote: past an eighth of a 1 MiB driver cap)
    want = duckdb.sql(f"SELECT g, median(x) AS m FROM '{data}' GROUP BY g").fetchall()
    store = elytra.ResultStore(
        tmp_path / "results", max_bytes=64 << 20, quota_bytes=64 << 20, ttl_seconds=60.0
    )
    with _session(pool2, tmp_path, driver_mem_cap="1MiB") as s:
        p = s.read_parquet(data).group_by("g").agg("median(x) AS m")
        job = s.driver.submit(p, owner="alice", store=store)
        assert job.wait(120) == "succeeded", job.error
        stats = s.driver.last
        assert stats is not None
        assert stats.tasks_total == 4  # twice the workers, for a median
    stored = store.open(job.id)
    table = pa.Table.from_batches(list(stored.batches()), schema=stored.schema())
    assert stored.num_rows == len(want) == job.record["result"]["rows"]
    assert rows_of([tuple(r.values()) for r in table.to_pylist()]) == rows_of(want)
    with _session(pool2, tmp_path, reread_workers=0) as s:
        p = s.read_parquet(data).group_by("g").agg("median(x) AS m")
        _, tasks = s.driver.plan(p, "j", tmp_path / "spill", None, True)
        assert not any(t.partition for t in tasks)
        got = p.collect()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)


def test_a_task_names_its_partition_in_its_json_only_when_it_has_one() -> None:
    plain = elytra.Task("t", 0, "{}", 1 << 20, "/tmp/x")
    assert "partition" not in json.loads(plain.to_json())
    where = KeyPartition.make(("a", "b"), [pa.int64(), pa.string()], 4, 3)
    task = elytra.Task("t", 0, "{}", 1 << 20, "/tmp/x", partition=where.to_json())
    back = elytra.Task.from_json(task.to_json())
    assert KeyPartition.from_json(back.partition) == where
    assert where.sql() == '(hash(CAST("a" AS BIGINT), CAST("b" AS VARCHAR)) % 4)'


@pytest.mark.parametrize("cap", [256 << 20, 8 << 20])
def test_reread_results_past_the_driver_share_are_mapped_arrow_files(
    data: str, pool2: elytra.LocalPool, tmp_path: Path, cap: int
) -> None:
    """The merge only concatenates: a task's rows past an eighth of the driver's cap go to an
    Arrow IPC file that the driver memory-maps (no Parquet written or decoded), also when the
    task's own aggregate spills (8 MiB: emsqrt's operators under the cap); DuckDB's answer."""
    with _session(
        pool2, tmp_path, exchange_min_bytes=1, worker_mem_cap=cap, driver_mem_cap="1MiB"
    ) as s:
        p = s.read_parquet(data).group_by("u", "s").agg("sum(x) AS t", "count(*) AS n")
        _, tasks = s.driver.plan(p, "j", tmp_path / "spill", None, True)
        assert tasks
        assert all(t.partition for t in tasks)
        got = p.collect()
        stats = s.driver.last
        assert stats is not None
        assert stats.results_spilled_bytes > 0  # the rows came as the tasks' files
    want = duckdb.sql(
        f"SELECT u, s, sum(x) AS t, count(*) AS n FROM '{data}' GROUP BY u, s"
    ).fetchall()
    assert got.num_rows == len(want)
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)


def test_a_spooled_arrow_result_is_read_back_mapped_after_its_file_is_gone(
    tmp_path: Path,
) -> None:
    from elytra.taskfile import ResultSpool, read_mapped

    table = pa.table({"k": list(range(50_000)), "s": [f"v{i % 977}" for i in range(50_000)]})
    spool = ResultSpool(str(tmp_path / "r.arrow"), 1024, 1 << 20, "arrow")
    for batch in table.to_batches(max_chunksize=7000):
        spool.add(batch)
    spool.close()
    assert spool.path is not None
    assert spool.rows == table.num_rows
    assert spool.held(table.schema).num_rows == 0  # every row went to the file
    mapped = read_mapped(spool.path)
    Path(spool.path).unlink()  # the job's directory goes; the mapping stays valid
    assert mapped.equals(table)
