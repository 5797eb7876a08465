"""One run per operator over ~50 MB of Arrow data under a 4 MiB cap, each in a fresh process
so the Arrow pool's peak belongs to the run: reserved and Arrow peaks stay under the cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from oracle import assert_same_rows, duck

from emsqrt import EngineConfig, Pipeline
from emsqrt.measure import run_measured

pytestmark = pytest.mark.slow
CAP = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(99)
    n = 1_500_000
    t = pa.table(
        {
            "k": pa.array(rng.integers(0, 2_000_000, n), mask=rng.random(n) < 0.01),
            "g": rng.integers(0, 1000, n).astype(np.int32),
            "v": rng.normal(size=n).round(4),
            "s": pc.binary_join_element_wise(
                "w", pc.cast(pa.array(rng.integers(0, 10**9, n)), pa.string()), ""
            ),
        }
    )
    assert t.nbytes > 45 * 2**20
    pcsv.write_csv(t, d / "t.csv")
    r = t.slice(0, n // 3).rename_columns(["rk", "rg", "rv", "rs"])
    pcsv.write_csv(r, d / "r.csv")
    return {"t": d / "t.csv", "r": d / "r.csv", "dir": d}


def _check_memory(m: dict) -> None:  # type: ignore[type-arg]
    mem = m["memory"]
    assert mem["reserved_peak_bytes"] <= CAP
    assert mem["arrow_pool_peak_exact"]
    assert mem["arrow_pool_peak_bytes"] <= CAP, mem


def test_sort_50mb_under_4mib(big: dict[str, Path], spill_dir: Path) -> None:
    out = big["dir"] / "sorted.parquet"
    plan = Pipeline.scan(big["t"]).sort(["s", "k DESC"]).sink(out).node
    m = run_measured(plan, EngineConfig(mem_cap_bytes=CAP, spill_dir=str(spill_dir), max_fan_in=8))
    _check_memory(m)
    sort = next(o for o in m["operators"] if o["op"] == "sort")
    assert sort["spilled_bytes"] > 0
    assert sort["merge_passes"] >= 2
    got = pq.read_table(out, columns=["s", "k"])
    want = duck(f"SELECT s, k FROM read_csv('{big['t']}') ORDER BY s, k DESC")
    assert_same_rows(got, want, ordered=True)


def test_aggregate_50mb_under_4mib(big: dict[str, Path], spill_dir: Path) -> None:
    out = big["dir"] / "agg.parquet"
    plan = (
        Pipeline.scan(big["t"])
        .aggregate(["k"], ["COUNT(*)", "SUM(v)", "MAX(s)", "COUNT(DISTINCT g)"])
        .sink(out)
        .node
    )
    m = run_measured(plan, EngineConfig(mem_cap_bytes=CAP, spill_dir=str(spill_dir)))
    _check_memory(m)
    agg = next(o for o in m["operators"] if o["op"] == "aggregate")
    assert agg["spilled_bytes"] > 0
    assert agg["repartition_depth"] >= 1
    want = duck(
        f"SELECT k, count(*) AS count, sum(v) AS sum_v, max(s) AS max_s, "
        f"count(DISTINCT g) AS count_distinct_g FROM read_csv('{big['t']}') GROUP BY k"
    )
    assert_same_rows(pq.read_table(out), want)


def test_join_50mb_under_4mib(big: dict[str, Path], spill_dir: Path) -> None:
    out = big["dir"] / "join.parquet"
    plan = (
        Pipeline.scan(big["t"])
        .join(Pipeline.scan(big["r"]), left_on=["k"], right_on=["rk"], how="inner")
        .sink(out)
        .node
    )
    m = run_measured(plan, EngineConfig(mem_cap_bytes=CAP, spill_dir=str(spill_dir)))
    _check_memory(m)
    join = next(o for o in m["operators"] if o["op"] == "join")
    assert join["spilled_bytes"] > 0
    assert join["repartition_depth"] >= 1
    want = duck(
        f"SELECT l.k, l.g, l.v, l.s, r.rg, r.rv, r.rs FROM read_csv('{big['t']}') l "
        f"JOIN read_csv('{big['r']}') r ON l.k = r.rk"
    )
    assert_same_rows(pq.read_table(out), want)


def test_join_with_repeated_build_keys_stays_under_the_cap(tmp_path: Path) -> None:
    # 20k build rows over 200 keys: each probe row matches ~100 of them, so the join's output
    # is ~100 times its probe input; the probe groups must be sized to the output.
    rng = np.random.default_rng(0)
    right = pa.table({"rk": rng.integers(0, 200, 20_000), "rv": rng.random(20_000)})
    left = pa.table({"k": rng.integers(0, 200, 50_000), "v": rng.random(50_000)})
    pq.write_table(right, tmp_path / "R.parquet", row_group_size=4096)
    pq.write_table(left, tmp_path / "L.parquet", row_group_size=4096)
    out = tmp_path / "out.parquet"
    plan = (
        Pipeline.scan(tmp_path / "L.parquet")
        .join(Pipeline.scan(tmp_path / "R.parquet"), left_on=["k"], right_on=["rk"])
        .sink(out)
        .node
    )
    spill = tmp_path / "spill"
    spill.mkdir()
    m = run_measured(plan, EngineConfig(mem_cap_bytes=CAP, spill_dir=str(spill)))
    assert m["memory"]["arrow_pool_peak_bytes"] <= CAP, m["memory"]
    want = duck(
        "SELECT count(*) AS n, sum(v) AS sv, sum(rv) AS srv FROM l JOIN r ON l.k = r.rk",
        l=left,
        r=right,
    )
    got = duck(f"SELECT count(*) AS n, sum(v) AS sv, sum(rv) AS srv FROM read_parquet('{out}')")
    assert_same_rows(got, want)
