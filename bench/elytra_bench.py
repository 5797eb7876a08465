"""Elytra: db-benchmark's group-by questions over a lake dataset, beside DuckDB, Polars and Ray.

The table is db-benchmark's G1 (id1..id6, v1..v3; K = 100 groups; 1e7 rows at scale 1),
generated here with a seed, written as Parquet and uploaded into a lake home, whose chunk
files every engine reads:

- ``elytra`` (ours): ``elytra.connect(home, backend="local")`` — a pool of two worker
  processes, one task per chunk group, partial aggregates merged in the driver;
- ``elytra-ray``: the same pipelines on the Ray backend (``ray.init`` on this machine);
- ``duckdb``, ``polars``: the same questions over ``read_parquet``/``scan_parquet`` of the chunk
  files; ``ray-data``: Ray Data's ``groupby().aggregate`` over them.

Questions (db-benchmark groupby): q1 sum v1 by id1; q2 sum v1 by id1, id2; q3 sum v1, mean v3
by id3; q4 mean v1, v2, v3 by id4; q5 sum v1, v2, v3 by id6; q7 max v1 - min v2 by id3;
q6 median and standard deviation of v3 by id4, id5; q8 the largest two v3 by id6; q9 squared
correlation of v1 and v2 by id2, id4; q10 sum v3, count by id1..id6; and ``filter_count``:
rows with v3 > 50. ``join``: a large x large join (not db-benchmark's): two generated tables
``x`` and ``y`` of 4e6 rows each at scale 1 (keys drawn from as many values, so most keys
match about once), joined on ``k`` and returned whole; neither side is small enough to
broadcast, so Elytra's tasks partition both sides themselves and join partition by partition.
With ``--quick`` (CI: so the script never rots) only q1 and filter_count run, without the Ray
engines: a Ray start costs seconds, and a Ray Data query about a minute on this machine even
at 1e5 rows (the Ray backend itself is tested in tests-elytra).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import Benchmark

bench = Benchmark("elytra_bench", "elytra group-by questions against DuckDB, Polars, Ray Data")
bench.quick_scale = 0.01

QUICK = "--quick" in sys.argv
ROWS_AT_SCALE_1 = 10_000_000
K = 100
SECRET = "elytra-bench-secret-" + "x" * 32
QUESTIONS = ["q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "filter_count", "join"]
JOIN_ROWS_AT_SCALE_1 = 4_000_000
RAY_QUESTIONS = [] if QUICK else QUESTIONS
# Ray Data starts its executor per query: slow; and it has no join of two datasets to time here
RAY_DATA_QUESTIONS = [] if QUICK else QUESTIONS[:-1]

SQL = {
    "q1": "SELECT id1, sum(v1) AS v1 FROM g1 GROUP BY id1",
    "q2": "SELECT id1, id2, sum(v1) AS v1 FROM g1 GROUP BY id1, id2",
    "q3": "SELECT id3, sum(v1) AS v1, avg(v3) AS v3 FROM g1 GROUP BY id3",
    "q4": "SELECT id4, avg(v1) AS v1, avg(v2) AS v2, avg(v3) AS v3 FROM g1 GROUP BY id4",
    "q5": "SELECT id6, sum(v1) AS v1, sum(v2) AS v2, sum(v3) AS v3 FROM g1 GROUP BY id6",
    "q6": "SELECT id4, id5, median(v3) AS median_v3, stddev(v3) AS sd_v3 FROM g1 GROUP BY id4, id5",
    "q7": "SELECT id3, max(v1) - min(v2) AS range_v1_v2 FROM g1 GROUP BY id3",
    "q8": "SELECT id6, largest2_v3 FROM (SELECT id6, v3 AS largest2_v3, row_number() OVER "
    "(PARTITION BY id6 ORDER BY v3 DESC) AS order_v3 FROM g1 WHERE v3 IS NOT NULL) "
    "WHERE order_v3 <= 2",
    "q9": "SELECT id2, id4, pow(corr(v1, v2), 2) AS r2 FROM g1 GROUP BY id2, id4",
    "q10": "SELECT id1, id2, id3, id4, id5, id6, sum(v3) AS v3, count(*) AS count FROM g1 "
    "GROUP BY id1, id2, id3, id4, id5, id6",
    "filter_count": "SELECT count(*) AS n FROM g1 WHERE v3 > 50",
    "join": "SELECT x.k, x.a, x.c, y.b FROM x JOIN y ON x.k = y.k",
}


@bench.data
def generate(scale: float, cache: Path) -> dict[str, Any]:
    """G1 as Parquet, uploaded once per scale into a lake home with 32 MiB chunks."""
    import duckdb

    rows = max(20_000, int(ROWS_AT_SCALE_1 * scale))
    home = cache / "home"
    done = cache / "loaded"
    if not done.exists():
        src = cache / "g1.parquet"
        duckdb.sql("SELECT setseed(0.17)")
        n3 = max(1, rows // K)
        duckdb.sql(
            f"""COPY (SELECT
                    'id' || lpad((floor(random() * {K}) + 1)::INT::VARCHAR, 3, '0') AS id1,
                    'id' || lpad((floor(random() * {K}) + 1)::INT::VARCHAR, 3, '0') AS id2,
                    'id' || lpad((floor(random() * {n3}) + 1)::INT::VARCHAR, 10, '0') AS id3,
                    (floor(random() * {K}) + 1)::INTEGER AS id4,
                    (floor(random() * {K}) + 1)::INTEGER AS id5,
                    (floor(random() * {n3}) + 1)::INTEGER AS id6,
                    (floor(random() * 5) + 1)::INTEGER AS v1,
                    (floor(random() * 15) + 1)::INTEGER AS v2,
                    round(random() * 100, 6) AS v3
                 FROM range({rows})) TO '{src}' (FORMAT parquet)"""
        )
        os.environ["PLATFORM_SECRET"] = SECRET
        from lake import LakeNode, lake_settings

        node = LakeNode(lake_settings(None, home=home, chunk_bytes=32 << 20))
        try:
            node.ingest(src, "g1")
        finally:
            node.stop()
        src.unlink()
        done.write_text("ok")
    joined = cache / "loaded-join"
    if not joined.exists():
        _join_tables(cache, home, max(10_000, int(JOIN_ROWS_AT_SCALE_1 * scale)))
        joined.write_text("ok")
    import elytra

    os.environ["PLATFORM_SECRET"] = SECRET
    chunks: dict[str, list[str]] = {}
    with elytra.connect(home=home, backend="inline", progress=False) as s:
        for name in ("g1", "x", "y"):
            (src,) = s.dataset(name).sources.values()
            chunks[name] = [path for _, path, _ in src.chunks]
    return {"rows": rows, "home": str(home), "files": chunks["g1"], **{n: chunks[n] for n in "xy"}}


def _join_tables(cache: Path, home: Path, rows: int) -> None:
    """``x`` (k, a, c) and ``y`` (k, b) of ``rows`` rows each, keys drawn from ``rows``
    values, uploaded into the lake home beside G1."""
    import duckdb

    from lake import LakeNode, lake_settings

    os.environ["PLATFORM_SECRET"] = SECRET
    duckdb.sql("SELECT setseed(0.29)")
    src = {name: cache / f"{name}.parquet" for name in ("x", "y")}
    duckdb.sql(
        f"""COPY (SELECT (floor(random() * {rows}))::BIGINT AS k, round(random() * 100, 6) AS a,
                'c' || (floor(random() * 1000))::INT::VARCHAR AS c
             FROM range({rows})) TO '{src["x"]}' (FORMAT parquet)"""
    )
    duckdb.sql(
        f"""COPY (SELECT (floor(random() * {rows}))::BIGINT AS k, round(random() * 100, 6) AS b
             FROM range({rows})) TO '{src["y"]}' (FORMAT parquet)"""
    )
    node = LakeNode(lake_settings(None, home=home, chunk_bytes=32 << 20))
    try:
        for name, path in src.items():
            node.ingest(path, name)
    finally:
        node.stop()
    for path in src.values():
        path.unlink()


def _pipeline(s: Any, q: str) -> Any:
    g1 = s.dataset("g1")
    if q == "q1":
        return g1.group_by("id1").agg("sum(v1) AS v1")
    if q == "q2":
        return g1.group_by("id1", "id2").agg("sum(v1) AS v1")
    if q == "q3":
        return g1.group_by("id3").agg("sum(v1) AS v1", "avg(v3) AS v3")
    if q == "q4":
        return g1.group_by("id4").agg("avg(v1) AS v1", "avg(v2) AS v2", "avg(v3) AS v3")
    if q == "q5":
        return g1.group_by("id6").agg("sum(v1) AS v1", "sum(v2) AS v2", "sum(v3) AS v3")
    if q == "q6":
        return g1.group_by("id4", "id5").agg("median(v3) AS median_v3", "stddev(v3) AS sd_v3")
    if q == "q8":
        return (
            g1.filter("v3 IS NOT NULL")
            .group_by("id6")
            .top_k(2, "v3 DESC")
            .select("id6", "v3")
            .rename(v3="largest2_v3")
        )
    if q == "q9":
        return g1.group_by("id2", "id4").agg("pow(corr(v1, v2), 2) AS r2")
    if q == "q7":
        return g1.group_by("id3").agg("max(v1) - min(v2) AS range_v1_v2")
    if q == "q10":
        keys = ("id1", "id2", "id3", "id4", "id5", "id6")
        return g1.group_by(*keys).agg("sum(v3) AS v3", "count(*) AS count")
    if q == "join":
        return s.dataset("x").join(s.dataset("y"), on="k").select("k", "a", "c", "b")
    return g1.filter("v3 > 50").agg("count(*) AS n")


def _elytra(backend: str) -> Callable[[str, dict[str, Any]], Callable[[], Any]]:
    def factory(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
        import elytra

        os.environ["PLATFORM_SECRET"] = SECRET
        s = elytra.connect(home=params["home"], backend=backend, workers=2, progress=False)
        p = _pipeline(s, workload)
        p.collect()  # warm: workers started, ring made; not the workload
        return p.collect

    return factory


bench.engine("elytra")(_elytra("local"))
bench.engine("elytra-ray", peer=True, workloads=RAY_QUESTIONS)(_elytra("ray"))


@bench.engine("duckdb", peer=True)
def duck(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE VIEW g1 AS SELECT * FROM read_parquet({params['files']})")
    con.execute(f"CREATE VIEW x AS SELECT * FROM read_parquet({params['x']})")
    con.execute(f"CREATE VIEW y AS SELECT * FROM read_parquet({params['y']})")
    con.sql(SQL[workload]).to_arrow_table()
    return lambda: con.sql(SQL[workload]).to_arrow_table()


@bench.engine("polars", peer=True)
def polars_engine(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import polars as pl

    g1 = pl.scan_parquet(params["files"])
    c = pl.col
    queries = {
        "q1": lambda: g1.group_by("id1").agg(c("v1").sum()),
        "q2": lambda: g1.group_by("id1", "id2").agg(c("v1").sum()),
        "q3": lambda: g1.group_by("id3").agg(c("v1").sum(), c("v3").mean()),
        "q4": lambda: g1.group_by("id4").agg(c("v1").mean(), c("v2").mean(), c("v3").mean()),
        "q5": lambda: g1.group_by("id6").agg(c("v1").sum(), c("v2").sum(), c("v3").sum()),
        "q6": lambda: g1.group_by("id4", "id5").agg(c("v3").median(), c("v3").std().alias("sd")),
        "q7": lambda: g1.group_by("id3").agg((c("v1").max() - c("v2").min()).alias("range")),
        "q8": lambda: (
            g1.drop_nulls("v3")
            .sort("v3", descending=True)
            .group_by("id6")
            .head(2)
            .select("id6", c("v3").alias("largest2_v3"))
        ),
        "q9": lambda: g1.group_by("id2", "id4").agg((pl.corr("v1", "v2") ** 2).alias("r2")),
        "q10": lambda: g1.group_by("id1", "id2", "id3", "id4", "id5", "id6").agg(
            c("v3").sum(), pl.len().alias("count")
        ),
        "filter_count": lambda: g1.filter(c("v3") > 50).select(pl.len().alias("n")),
        "join": lambda: pl.scan_parquet(params["x"]).join(
            pl.scan_parquet(params["y"]), on="k", how="inner"
        ),
    }
    query = queries[workload]
    query().collect()
    return lambda: query().collect().to_arrow()


@bench.engine("ray-data", peer=True, workloads=RAY_DATA_QUESTIONS)
def ray_data(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import ray
    from ray.data.aggregate import Count, Max, Mean, Min, Quantile, Std, Sum

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    import pyarrow.fs

    # a local filesystem given, or Ray resolves paths through fsspec's HTTP module
    ds = ray.data.read_parquet(params["files"], filesystem=pyarrow.fs.LocalFileSystem())
    aggs: dict[str, tuple[list[str], list[Any]]] = {
        "q1": (["id1"], [Sum("v1")]),
        "q2": (["id1", "id2"], [Sum("v1")]),
        "q3": (["id3"], [Sum("v1"), Mean("v3")]),
        "q4": (["id4"], [Mean("v1"), Mean("v2"), Mean("v3")]),
        "q5": (["id6"], [Sum("v1"), Sum("v2"), Sum("v3")]),
        "q6": (["id4", "id5"], [Quantile("v3", q=0.5), Std("v3")]),
        "q7": (["id3"], [Max("v1"), Min("v2")]),
        "q10": (["id1", "id2", "id3", "id4", "id5", "id6"], [Sum("v3"), Count()]),
    }

    import pyarrow as pa
    import pyarrow.compute as pc

    def top2(batch: pa.Table) -> pa.Table:
        batch = batch.filter(pc.is_valid(batch["v3"]))
        return batch.take(pc.select_k_unstable(batch, 2, [("v3", "descending")])).select(
            ["id6", "v3"]
        )

    def r2(batch: pa.Table) -> pa.Table:
        import numpy as np

        v1 = np.asarray(batch["v1"].to_numpy(zero_copy_only=False), dtype=float)
        v2 = np.asarray(batch["v2"].to_numpy(zero_copy_only=False), dtype=float)
        r = float(np.corrcoef(v1, v2)[0, 1]) if len(v1) > 1 else float("nan")
        return pa.table({"id2": batch["id2"][:1], "id4": batch["id4"][:1], "r2": [r * r]})

    def collect() -> Any:
        if workload in ("q8", "q9"):  # no such aggregate in Ray Data: a function per group
            keys, fn = (["id6"], top2) if workload == "q8" else (["id2", "id4"], r2)
            grouped = ds.groupby(keys).map_groups(fn, batch_format="pyarrow")
            return pa.concat_tables(ray.get(grouped.to_arrow_refs()))
        if workload == "filter_count":
            kept = ds.map_batches(
                lambda b: b.filter(pc.greater(b["v3"], 50)), batch_format="pyarrow"
            )
            return kept.count()
        keys, fns = aggs[workload]
        table = pa.concat_tables(ray.get(ds.groupby(keys).aggregate(*fns).to_arrow_refs()))
        if workload == "q7":
            spread = pc.subtract(table.column("max(v1)"), table.column("min(v2)"))
            table = table.append_column("range_v1_v2", spread)
        return table

    collect()  # warm, as the other engines are
    return collect


@bench.check
def check(workload: str, output: Any) -> Any:
    """Rows, and the sum of the last column to 6 significant digits (float sums add up in
    another order on each engine); NaN counts as NULL (Ray Data's Std is NaN where DuckDB's
    stddev of one value is NULL)."""
    if isinstance(output, int):
        return f"1 {output}"
    last = output.column(output.num_columns - 1).to_pylist()
    total = sum(float(v) for v in last if v is not None and not math.isnan(float(v)))
    if workload == "filter_count":
        return f"1 {int(total)}"
    return f"{output.num_rows} {total:.6g}"


if __name__ == "__main__":
    bench.main(["q1", "filter_count"] if QUICK else QUESTIONS)
