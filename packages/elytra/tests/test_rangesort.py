"""A global sort by range partitioning on the workers gives emsqrt's Sort order row for row.

The oracle is DuckDB's ``ORDER BY keys, rid`` over the same Parquet files (``rid`` is each
row's position in the input, which a tie keeps): DuckDB orders NaN above every number and
-0.0 equal to 0.0, as emsqrt's Sort does (both kernels and operators; checked below on the
placement function itself against emsqrt's SortSpec). The thresholds force the range path
(``range_sort_bytes=0``, a task per file); caps below the kernel's floor make the partition
sorts run emsqrt's external sort, spilling.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elytra
from elytra.rangesort import ORDINAL, partition_of
from emsqrt import plan as lp
from emsqrt.physical.sortkeys import SortSpec


def _write(
    directory: Path, parts: int, rows: int, seed: int, skew: bool = False, pad: int = 0
) -> str:
    """``parts`` files of seeded rows: floats with NULL, NaN, -0.0, 0.0 and ties; small ints
    with NULLs; strings; dates; ``rid`` the row's input position. With ``pad``, a column of
    strings that long, of a few values: Parquet's dictionary makes the files small, so the
    partitions, sized from the files, come out larger than a small cap and their sorts spill."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for p in range(parts):
        n = rows
        f = np.round(rng.normal(0, 10, n), 0)
        f[rng.random(n) < 0.05] = np.nan
        f[rng.random(n) < 0.05] = -0.0
        f[rng.random(n) < 0.05] = 0.0
        if skew:
            f[rng.random(n) < 0.9] = 3.0
        f_null = rng.random(n) < 0.07
        k = rng.integers(0, 5, n)
        k_null = rng.random(n) < 0.1
        s = np.array([f"s{v}" for v in rng.integers(0, 30, n)], dtype=object)
        s[rng.random(n) < 0.05] = "é" + s[0]
        table = pa.table(
            {
                "rid": pa.array(np.arange(p * n, (p + 1) * n), pa.int64()),
                "f": pa.array(f, pa.float64(), mask=f_null),
                "k": pa.array(k, pa.int32(), mask=k_null),
                "s": pa.array(s, pa.string(), mask=rng.random(n) < 0.03),
                "d": pa.array(
                    (np.datetime64("2024-01-01") + rng.integers(0, 40, n)).astype("datetime64[D]")
                ),
            }
        )
        if pad:
            fill = np.array([c * pad for c in "abcdefgh"], dtype=object)
            table = table.append_column("pad", pa.array(fill[rng.integers(0, 8, n)]))
        pq.write_table(table, directory / f"p{p:03d}.parquet", row_group_size=max(n // 3, 1))
    return f"{directory}/*.parquet"


def _sql_order(keys: list[str]) -> str:
    """A pipeline's sort keys as DuckDB's ORDER BY, NULLS LAST unless given (emsqrt's
    default), then the row's input position."""
    out = []
    for key in keys:
        words = key.split()
        if not any(w.upper() == "NULLS" for w in words):
            words += ["NULLS", "LAST"]
        out.append(" ".join(words))
    return ", ".join([*out, "rid"])


def _want(glob: str, keys: list[str], where: str = "") -> list[int]:
    cond = f" WHERE {where}" if where else ""
    sql = f"SELECT rid FROM '{glob}'{cond} ORDER BY {_sql_order(keys)}"
    return [r[0] for r in duckdb.sql(sql).fetchall()]


KEYS = [
    ["f"],
    ["f DESC", "k"],
    ["k DESC NULLS FIRST", "f NULLS FIRST", "s"],
    ["s DESC", "d"],
    ["d", "k NULLS FIRST", "f DESC"],
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _write(tmp_path_factory.mktemp("rs"), parts=5, rows=4000, seed=33)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _write(tmp_path_factory.mktemp("wide"), parts=5, rows=4000, seed=34, pad=1000)


def _connect(home: Path, backend: Any, **more: Any) -> elytra.Session:
    opts: dict[str, Any] = {"range_sort_bytes": 0, "task_bytes": 1, "progress": False}
    return elytra.connect(home=home, backend=backend, **(opts | more))


@pytest.mark.parametrize("keys", KEYS, ids=lambda k: ",".join(k))
@pytest.mark.parametrize("cap", ["256MB", "4MB"])
def test_a_range_sort_equals_duckdb_row_for_row_inline(
    data: str, wide: str, tmp_path: Path, keys: list[str], cap: str
) -> None:
    if cap == "4MB":
        data = wide  # 20 MB of rows in 100 KB of Parquet: partitions past the cap
    with _connect(tmp_path, "inline", worker_mem_cap=cap) as s:
        got = s.read_parquet(data).sort(*keys).collect()
        last = s.driver.last
    assert last is not None
    (sort,) = last.range_sort.values()
    assert sort["parts"] > 1
    assert sum(sort["rows"]) == 20_000
    if cap == "4MB":  # below the kernel's floor: emsqrt's external sort, spilling
        assert last.spilled_bytes > 0
        assert got.column("pad").to_pylist() == [
            r[0]
            for r in duckdb.sql(f"SELECT pad FROM '{data}' ORDER BY {_sql_order(keys)}").fetchall()
        ]
    assert got.column("rid").to_pylist() == _want(data, keys)


@pytest.mark.parametrize("keys", KEYS[1:3], ids=lambda k: ",".join(k))
def test_a_range_sort_equals_duckdb_on_the_local_pool(
    data: str, tmp_path: Path, pool: elytra.LocalPool, keys: list[str]
) -> None:
    with _connect(tmp_path, pool, worker_mem_cap="4MB") as s:
        p = s.read_parquet(data).filter("rid % 5 <> 1").sort(*keys)
        got = p.select("rid", "f").collect()
        assert "range partitioning on the workers" in p.explain()
        assert s.driver.last is not None
        assert s.driver.last.range_sort
    assert got.column("rid").to_pylist() == _want(data, keys, "rid % 5 <> 1")
    assert got.column_names == ["rid", "f"]
    assert not list((tmp_path / "spill").rglob("*.parquet"))  # the job's files are gone


@pytest.mark.parametrize("files", [1, 3])
def test_a_range_sort_over_parts_cut_by_row_groups_reads_each_row_once(
    tmp_path: Path, pool: elytra.LocalPool, files: int
) -> None:
    """One file (or three, which two workers cannot share evenly) cut by row groups into a
    task per worker: the range sort's later rounds read the same row groups as the first,
    not the whole files (every row once, in DuckDB's order, ties by input position)."""
    glob = _write(tmp_path / "cut", parts=files, rows=12_000 // files, seed=36)
    keys = ["f DESC", "k"]
    with _connect(tmp_path / "home", pool, task_bytes=64 << 20, split_bytes=0, workers=2) as s:
        got = s.read_parquet(glob).sort(*keys).select("rid").collect()
        assert s.driver.last is not None
        assert s.driver.last.range_sort
    assert got.column("rid").to_pylist() == _want(glob, keys)


def test_skewed_keys_are_split_by_ordinal_between_balanced_partitions(tmp_path: Path) -> None:
    glob = _write(tmp_path / "skew", parts=4, rows=10_000, seed=7, skew=True)
    with _connect(tmp_path / "home", "inline", worker_mem_cap="4MB") as s:
        got = s.read_parquet(glob).sort("f DESC").collect()
        assert s.driver.last is not None
        (sort,) = s.driver.last.range_sort.values()
    # nine rows in ten hold one value: it is split between partitions by input position
    rows = sort["rows"]
    assert len(rows) >= 4
    assert max(rows) <= 1.6 * sum(rows) / len(rows), rows
    assert got.column("rid").to_pylist() == _want(glob, ["f DESC"])


def test_a_union_is_sorted_globally_across_its_branches(data: str, tmp_path: Path) -> None:
    with _connect(tmp_path, "inline") as s:
        p = s.read_parquet(data)
        both = p.filter("k = 1").union(p.filter("k <> 1 OR k IS NULL"), p.filter("f > 5"))
        got = both.sort("s", "f DESC").collect()
        assert s.driver.last is not None
        assert s.driver.last.range_sort
    want = duckdb.sql(
        f"SELECT rid FROM (SELECT *, 0 AS b FROM '{data}' WHERE k = 1 UNION ALL "
        f"SELECT *, 1 FROM '{data}' WHERE k <> 1 OR k IS NULL UNION ALL "
        f"SELECT *, 2 FROM '{data}' WHERE f > 5) ORDER BY s NULLS LAST, f DESC NULLS LAST, b, rid"
    ).fetchall()
    assert got.column("rid").to_pylist() == [r[0] for r in want]


def test_a_sort_of_nothing_is_empty_with_its_columns(data: str, tmp_path: Path) -> None:
    with _connect(tmp_path, "inline") as s:
        got = s.read_parquet(data).filter("rid < 0").sort("f").collect()
    assert got.num_rows == 0
    assert got.column_names == ["rid", "f", "k", "s", "d"]


def test_below_the_threshold_the_driver_merges_sorted_runs(data: str, tmp_path: Path) -> None:
    with _connect(tmp_path, "inline", range_sort_bytes="1GB") as s:
        p = s.read_parquet(data).sort("f", "rid")
        got = p.collect()
        assert "range partitioning" not in p.explain()
        assert s.driver.last is not None
        assert not s.driver.last.range_sort
    assert got.column("rid").to_pylist() == _want(data, ["f"])


def test_a_worker_killed_mid_sort_leaves_the_answer_and_no_files(tmp_path: Path) -> None:
    glob = _write(tmp_path / "big", parts=6, rows=60_000, seed=5)
    pool = elytra.LocalPool(2, ring_bytes=4 << 20)
    try:
        with _connect(tmp_path / "home", pool, worker_mem_cap="4MB") as s:
            job = s.read_parquet(glob).sort("s DESC", "f").select("rid").submit()
            killed: list[str] = []
            deadline = time.monotonic() + 60
            while len(killed) < 3 and time.monotonic() < deadline and not job.done():
                running = pool.running_tasks()
                for task_id, pid in running.items():
                    stage = int(task_id.rsplit("-s", 1)[1].split("-t", 1)[0])
                    # one kill in each round: sample (s1), partition (s0), sort (s2)
                    if stage in (1, 0, 2)[len(killed) :][:1] and task_id not in killed:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(task_id)
                        break
                time.sleep(0.005)
            assert job.wait(300) == "succeeded", job.status().get("error")
            got = job.result()
    finally:
        pool.close()
    rounds = [int(t.rsplit("-s", 1)[1].split("-t", 1)[0]) for t in killed]
    assert rounds == [1, 0, 2], killed  # a task of each round was killed, and retried
    assert got.column("rid").to_pylist() == _want(glob, ["s DESC", "f"])
    assert not list((tmp_path / "home" / "spill").rglob("*.parquet"))


# --- the placement of a row among the splitters, against emsqrt's own order -----------------

_floats = st.one_of(
    st.none(),
    st.sampled_from([float("nan"), -0.0, 0.0, 1.5, -1.5, float("inf"), float("-inf")]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    f=st.lists(_floats, min_size=1, max_size=60),
    data=st.data(),
    desc=st.booleans(),
    nulls_first=st.booleans(),
    s_desc=st.booleans(),
)
def test_a_row_lands_between_the_splitters_emsqrt_sorts_it_between(
    f: list[float | None], data: st.DataObject, desc: bool, nulls_first: bool, s_desc: bool
) -> None:
    n = len(f)
    s = data.draw(st.lists(st.sampled_from([None, "a", "b", "é"]), min_size=n, max_size=n))
    table = pa.table(
        {
            "f": pa.array(f, pa.float64()),
            "s": pa.array(s, pa.string()),
            ORDINAL: pa.array(data.draw(st.permutations(range(n))), pa.int64()),
        }
    )
    keys = (("f", desc, nulls_first), ("s", s_desc, False))
    spec = SortSpec(
        [lp.SortKey(c, d, nf) for c, d, nf in keys] + [lp.SortKey(ORDINAL)], table.schema
    )
    order = spec.indices(spec.augment(table)).to_numpy()
    chosen = sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=min(n, 6))))
    splitters = table.take(pa.array(order[chosen], pa.int64()))
    got = partition_of(table, splitters, keys)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    # a row's partition: how many splitters sort at or before it in emsqrt's order
    want = np.searchsorted(np.array(chosen, dtype=np.int64), position, side="right")
    assert got.tolist() == want.tolist()
