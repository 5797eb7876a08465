"""Unions: what reduces a union's rows runs per branch on the workers, and a union of many
group-bys holds the driver's cap (issue 33, found from outside)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import elytra

from .conftest import rows_of


@pytest.fixture(scope="module")
def k_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("union") / "t.parquet"
    duckdb.sql(
        "COPY (SELECT (i * 7919 % 2000)::BIGINT AS k, (i * 37 % 1000)::BIGINT AS v "
        f"FROM range(300000) t(i)) TO '{path}' (FORMAT parquet)"
    )
    return str(path)


@pytest.mark.parametrize("driver_cap", ["512MiB", "16MiB"])
def test_a_union_of_24_group_bys_is_collected_under_the_drivers_cap(
    k_file: str, tmp_path: Path, driver_cap: str
) -> None:
    # 16 MiB is below the kernel's floor: the driver's merge runs emsqrt's operators, whose
    # shares counted all 24 aggregates at once ("24 bytes of state do not fit in the
    # 536870912-byte cap; raise the cap to at least 947916304 bytes" at 512 MiB with them)
    with elytra.connect(
        home=tmp_path, backend="inline", driver_mem_cap=driver_cap, progress=False
    ) as s:
        branches = [s.read_parquet(k_file).group_by("k").agg("sum(v) AS s") for _ in range(24)]
        got = branches[0].union(*branches[1:]).collect()
    assert got.num_rows == 48_000
    one = duckdb.sql(f"SELECT k, sum(v) FROM '{k_file}' GROUP BY k").fetchall()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(one * 24)


CASES = [
    (
        lambda u: u.group_by("k").agg("sum(v) AS s", "count(*) AS n"),
        "SELECT k, sum(v), count(*) FROM u GROUP BY k",
        "partial aggregate",
    ),
    (
        lambda u: u.agg("count(DISTINCT k) AS dk", "avg(v) AS av"),
        "SELECT count(DISTINCT k), avg(v) FROM u",
        "partial aggregate",
    ),
    (lambda u: u.top_k(5, "v DESC", "k"), "SELECT k, v FROM u ORDER BY v DESC, k LIMIT 5", "top-k"),
    (lambda u: u.limit(7).agg("count(*) AS n"), "SELECT 7", "limit"),
]


@pytest.mark.parametrize(("build", "sql", "kind"), CASES)
def test_what_reduces_a_union_runs_per_branch_on_the_workers(
    k_file: str, tmp_path: Path, pool: elytra.LocalPool, build: object, sql: str, kind: str
) -> None:
    with elytra.connect(home=tmp_path, backend=pool, progress=False, range_sort_bytes="1GB") as s:
        p = s.read_parquet(k_file)
        u = p.filter("k < 100").union(p.filter("v > 900"), p)
        q = build(u)  # type: ignore[operator]
        plan = q.explain()
        got = q.collect()
    assert f"{kind} (union branch 3 of 3)" in plan
    want = duckdb.sql(
        f"WITH u AS (SELECT * FROM '{k_file}' WHERE k < 100 UNION ALL "
        f"SELECT * FROM '{k_file}' WHERE v > 900 UNION ALL SELECT * FROM '{k_file}') {sql}"
    ).fetchall()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)


def test_a_union_of_branches_of_other_types_still_comes_to_the_driver(
    k_file: str, tmp_path: Path
) -> None:
    # an INTEGER branch beside a BIGINT one: their partial states would differ in type, so
    # the union's rows are merged in the driver as before
    with elytra.connect(home=tmp_path, backend="inline", progress=False) as s:
        p = s.read_parquet(k_file)
        narrow = p.with_columns(v="CAST(v AS INTEGER)")
        q = p.union(narrow).group_by("k").agg("sum(v) AS s")
        plan = q.explain()
        got = q.collect()
    assert "union branch" not in plan
    want = duckdb.sql(f"SELECT k, 2 * sum(v) FROM '{k_file}' GROUP BY k").fetchall()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)
