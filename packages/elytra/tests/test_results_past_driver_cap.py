"""Task results past the driver's cap are held or spilled and still equal DuckDB (break-tests
of round 4 of task results past the driver's cap (``elytra/results.py``),
checked against DuckDB on the same files."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from emsqrt.errors import CapTooSmallError


def _skewed(directory: Path, small: int, big: int, width: int) -> str:
    """Two files, each ``small`` one-byte strings followed by ``big`` random strings of
    ``width`` bytes (the wide rows together, as a sorted or appended file has them)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = 0
    for i in range(2):
        s = ["x"] * small + [os.urandom(width // 2).hex() for _ in range(big)]
        n = len(s)
        ids = list(range(rng, rng + n))
        rng += n
        pq.write_table(pa.table({"id": ids, "s": s}), directory / f"p{i}.parquet")
    return f"{directory}/*.parquet"


def test_skewed_row_widths_union_past_the_driver_cap(tmp_path: Path) -> None:
    glob = _skewed(tmp_path / "data", small=200_000, big=100, width=100_000)
    with elytra.connect(
        home=tmp_path / "home",
        backend="inline",
        worker_mem_cap="256MB",
        driver_mem_cap="16MB",
        progress=False,
    ) as s:
        p = s.read_parquet(glob)
        got = p.union(p).agg("count(*) AS n", "max(length(s)) AS m", "sum(id) AS si").collect()
    want = duckdb.sql(
        f"SELECT count(*), max(length(s)), sum(id) FROM "
        f"(SELECT * FROM '{glob}' UNION ALL SELECT * FROM '{glob}')"
    ).fetchall()
    assert [tuple(r.values()) for r in got.to_pylist()] == want


def test_uniform_wide_rows_ten_times_the_driver_cap_match_duckdb(tmp_path: Path) -> None:
    # held: 60 rows of 100 KB random strings per file, unions and sorts of ~6x-12x the cap
    d = tmp_path / "data"
    d.mkdir()
    for i in range(2):
        s = [os.urandom(50_000).hex() for _ in range(60)]
        pq.write_table(
            pa.table(
                {"id": list(range(i * 60, (i + 1) * 60)), "k": [j % 3 for j in range(60)], "s": s}
            ),
            d / f"p{i}.parquet",
        )
    glob = f"{d}/*.parquet"
    with elytra.connect(
        home=tmp_path / "home",
        backend="inline",
        worker_mem_cap="256MB",
        driver_mem_cap="4MB",
        progress=False,
    ) as s:
        p = s.read_parquet(glob)
        ordered = p.sort("s").select("id").collect()
        # a union's rows come to the driver as they are (an aggregate above it runs per
        # branch on the workers, below)
        rows = p.union(p).select("id", "k", "s").collect()  # the wide column travels
        assert s.driver.last is not None
        assert s.driver.last.results_spilled_bytes > 4 * (4 << 20)
        grouped = p.union(p).group_by("k").agg("count(*) AS n", "max(s) AS ms").sort("k").collect()
    assert sorted(rows["id"].to_pylist()) == sorted(list(range(120)) * 2)
    assert [r["id"] for r in ordered.to_pylist()] == [
        r[0] for r in duckdb.sql(f"SELECT id FROM '{glob}' ORDER BY s").fetchall()
    ]
    want = duckdb.sql(
        f"SELECT k, count(*), max(s) FROM (SELECT * FROM '{glob}' UNION ALL "
        f"SELECT * FROM '{glob}') GROUP BY k ORDER BY k"
    ).fetchall()
    assert [tuple(r.values()) for r in grouped.to_pylist()] == want
    assert not list((tmp_path / "home" / "spill").rglob("*.parquet"))


def test_a_driver_side_cap_error_names_the_driver_cap(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    for i in range(2):
        s = [os.urandom(1_500_000).hex() for _ in range(2)]
        pq.write_table(pa.table({"id": [2 * i, 2 * i + 1], "s": s}), d / f"p{i}.parquet")
    with (
        elytra.connect(
            home=tmp_path / "home",
            backend="inline",
            worker_mem_cap="256MB",
            driver_mem_cap="4MB",
            progress=False,
        ) as s,
        pytest.raises(CapTooSmallError) as info,
    ):
        s.read_parquet(f"{d}/*.parquet").sort("s").collect()
    message = info.value.message
    assert "driver_mem_cap=" in message
    assert "worker_mem_cap=" not in message
    assert "EMSQRT_MEM_CAP_BYTES" not in message


def test_spill_files_are_not_reused_after_a_group_by_moves_to_the_exchange(
    tmp_path: Path,
) -> None:
    d = tmp_path / "data"
    d.mkdir()
    for i in range(4):
        duckdb.sql(
            f"COPY (SELECT r AS id, md5(r::VARCHAR) AS h FROM range({i * 50000}, "
            f"{(i + 1) * 50000}) t(r)) TO '{d}/p{i}.parquet' (FORMAT parquet, ROW_GROUP_SIZE 10000)"
        )
    glob = f"{d}/*.parquet"

    def slow(batch: pa.RecordBatch) -> pa.RecordBatch:
        # the group-by's last task ends after the other stages' first results are spilled
        import time

        if batch.num_rows:
            time.sleep(1.0 if batch.column("id")[0].as_py() >= 150000 else 0.05)
        return batch

    with elytra.connect(
        home=tmp_path / "home",
        backend="local",
        workers=2,
        worker_mem_cap="64MB",
        driver_mem_cap="4MB",
        exchange_min_bytes="7MB",
        task_bytes="1MB",
        progress=False,
    ) as s:
        p = s.read_parquet(glob)
        a = p.map_batches(slow).group_by("h").agg("count(*) AS n")
        b = p.select("h", "id AS n")
        c = p.filter("id % 2 = 0").with_columns(n="id * 10").select("h", "n")
        q = a.union(b, c).agg("count(*) AS c", "sum(n) AS s", "count(distinct h) AS dh")
        got = [tuple(r.values()) for r in q.collect().to_pylist()]
    want = duckdb.sql(
        f"SELECT count(*), sum(n), count(DISTINCT h) FROM ("
        f"SELECT h, count(*) AS n FROM '{glob}' GROUP BY h UNION ALL "
        f"SELECT h, id FROM '{glob}' UNION ALL "
        f"SELECT h, id * 10 FROM '{glob}' WHERE id % 2 = 0)"
    ).fetchall()
    assert got == want


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_a_union_with_one_side_spilled_and_one_held(tmp_path: Path, backend: str) -> None:
    d = tmp_path / "data"
    d.mkdir()
    n = 5_000
    for i in range(8):
        pq.write_table(
            pa.table(
                {
                    "id": list(range(i * n, (i + 1) * n)),
                    "k": [j % 5 for j in range(n)],
                    "s": [f"str{j:07d}" for j in range(n)],
                }
            ),
            d / f"p{i}.parquet",
        )
    glob = f"{d}/*.parquet"
    # each side's results are ~1.2 MB: past half of a 3 MB cap together, not alone; each
    # task's (~150 KB) below an eighth of it, so the tasks send their rows (a larger result
    # would be a file its task wrote, which the merge reads as it is)
    # (the union's rows come to the driver as they are; a group-by above it would run per
    # branch on the workers, and only its states would come)
    with elytra.connect(
        home=tmp_path / "home", backend=backend, workers=1, driver_mem_cap="3MB", progress=False
    ) as s:
        p = s.read_parquet(glob)
        rows = p.union(p).collect()
        assert s.driver.last is not None
        assert 0 < s.driver.last.results_spilled_bytes < rows.nbytes
        got = p.union(p).group_by("k").agg("count(*) AS n").sort("k").collect()
    want = duckdb.sql(
        f"SELECT k, count(*) FROM (SELECT * FROM '{glob}' UNION ALL SELECT * FROM '{glob}') "
        "GROUP BY k ORDER BY k"
    ).fetchall()
    assert [tuple(r.values()) for r in got.to_pylist()] == want
    union = duckdb.sql(f"SELECT * FROM '{glob}' UNION ALL SELECT * FROM '{glob}'").fetchall()
    assert sorted(tuple(r.values()) for r in rows.to_pylist()) == sorted(union)
