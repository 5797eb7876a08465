"""Elytra: db-benchmark's group-by questions over a lake dataset, beside DuckDB, Polars and Ray.

The table is db-benchmark's G1 (id1..id6, v1..v3; K = 100 groups; 1e7 rows at scale 1),
generated here with a seed, written as Parquet and uploaded into a lake home, whose chunk
files every engine reads:

- ``elytra`` (ours): ``elytra.connect(home, backend="local")`` — a pool of two worker
  processes, one task per chunk group, partial aggregates merged in the driver;
- ``elytra-ray``: the same pipelines on the Ray backend (``ray.init`` on this machine);
- ``duckdb``, ``polars``: the same questions over ``read_parquet``/``scan_parquet`` of the chunk
  files; ``ray-data``: Ray Data's ``groupby().aggregate`` over them;
- ``daft``: Daft's native runner, DataFrame API over ``daft.read_parquet`` of the chunk files
  (``daft_query``). Daft needs ``pyarrow<26``, so it runs in its own virtual environment as a
  server started once per bench run (``bench/_peers.py``, pinned in ``bench/peers/daft.txt``):
  its time is the server's own clock around the query and ``.to_arrow()``, its peak RSS the
  server's; the result comes back as an Arrow IPC file (untimed) and is checked like the others'.
  Daft answers every question but **q9**: Daft 0.7.26 has no correlation aggregate
  (``pearson_correlation`` is between two embeddings, not over a group), and a hand-written
  one-pass formula would not be Daft's answer, so q9 has no Daft entry. q6's median is Daft's
  exact ``median()`` (``stddev()`` is the sample deviation, as DuckDB's).

Questions (db-benchmark groupby): q1 sum v1 by id1; q2 sum v1 by id1, id2; q3 sum v1, mean v3
by id3; q4 mean v1, v2, v3 by id4; q5 sum v1, v2, v3 by id6; q7 max v1 - min v2 by id3;
q6 median and standard deviation of v3 by id4, id5; q8 the largest two v3 by id6; q9 squared
correlation of v1 and v2 by id2, id4; q10 sum v3, count by id1..id6; ``filter_count``:
rows with v3 > 50; and ``sort``: every row ordered by v3 descending, then id1, returned to
the caller as one Arrow table (elytra: a global sort by range partitioning on the workers,
``rangesort.py``, forced with ``range_sort_bytes=0``: G1 is below the default threshold; not
on the Ray engines, which answer the group-by questions). ``join``: a large x large join (not
db-benchmark's): two generated tables ``x`` and ``y`` of 4e6 rows each at scale 1 (keys drawn
from as many values, so most keys match about once), joined on ``k`` and returned whole;
neither side is small enough to broadcast, so Elytra's tasks partition both sides themselves
and join partition by partition.
Pipelines beyond one question's kernel, over ``g1m`` (the first 1e6 rows' worth: G1 at
min(rows, 1e6)) and ``dim`` (100 rows: ``id4`` -> ``name``, ``weight``): ``join_dim`` joins
g1m with dim then groups by ``name``; ``sort_limit`` is filter + with_columns + sort + limit 25.
Two sections follow the table (ours only; skip them with ``--workload`` naming others):
``memory`` runs q1 and q3 (``--quick``: q1) on a fresh two-worker pool with a 64 MiB task cap and
prints each worker's and the driver's peak RSS above its start (``/proc/<pid>/status``
VmHWM after resetting it, against VmRSS at the start) beside cap + 64 MiB; ``min_cap`` halves
``worker_mem_cap`` from 256 MiB for a group-by (q3; ``--quick``: q1 from 4 MiB) until a run fails or
differs from DuckDB's answer, and prints the smallest cap that worked.
With ``--quick`` (CI: so the script never rots) only q1, filter_count, join_dim and
sort_limit run, without the Ray engines: a Ray start costs seconds, and a Ray Data query about a minute on this machine even
at 1e5 rows (the Ray backend itself is tested in tests-elytra).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import Benchmark
from _procstat import reset_peak_rss, status_kib

bench = Benchmark(
    "elytra_bench", "elytra group-by questions against DuckDB, Polars, Daft, Ray Data"
)
bench.quick_scale = 0.01

QUICK = "--quick" in sys.argv
ROWS_AT_SCALE_1 = 10_000_000
K = 100
SECRET = "elytra-bench-secret-" + "x" * 32
GROUP_BY = ["q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "filter_count"]
QUESTIONS = [*GROUP_BY, "sort", "join"]
JOIN_ROWS_AT_SCALE_1 = 4_000_000
PIPELINES = ["join_dim", "sort_limit"]
SECTIONS = ["memory", "min_cap"]
"""Run after the table, on ours only (not harness workloads: no peers, no child per run)."""
RAY_QUESTIONS = [] if QUICK else [*GROUP_BY, "join"]
# Ray Data starts its executor per query: slow; and it has no join of two datasets to time here
RAY_DATA_QUESTIONS = [] if QUICK else GROUP_BY
DAFT_QUESTIONS = [q for q in [*QUESTIONS, *PIPELINES] if q != "q9"]  # q9: no corr in Daft
SMALL_ROWS = 1_000_000

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
    "join_dim": "SELECT name, sum(v1 * weight) AS v1w, avg(v3) AS v3 FROM g1m "
    "JOIN dim USING (id4) GROUP BY name",
    "sort_limit": "SELECT id6, v3 * v2 AS x FROM g1m WHERE v1 > 2 ORDER BY x DESC, id6 LIMIT 25",
    "sort": "SELECT * FROM g1 ORDER BY v3 DESC, id1",
    "join": "SELECT x.k, x.a, x.c, y.b FROM x JOIN y ON x.k = y.k",
}


def _g1_sql(rows: int, path: Path) -> str:
    n3 = max(1, rows // K)
    return f"""COPY (SELECT
                'id' || lpad((floor(random() * {K}) + 1)::INT::VARCHAR, 3, '0') AS id1,
                'id' || lpad((floor(random() * {K}) + 1)::INT::VARCHAR, 3, '0') AS id2,
                'id' || lpad((floor(random() * {n3}) + 1)::INT::VARCHAR, 10, '0') AS id3,
                (floor(random() * {K}) + 1)::INTEGER AS id4,
                (floor(random() * {K}) + 1)::INTEGER AS id5,
                (floor(random() * {n3}) + 1)::INTEGER AS id6,
                (floor(random() * 5) + 1)::INTEGER AS v1,
                (floor(random() * 15) + 1)::INTEGER AS v2,
                round(random() * 100, 6) AS v3
             FROM range({rows})) TO '{path}' (FORMAT parquet)"""


@bench.data
def generate(scale: float, cache: Path) -> dict[str, Any]:
    """G1 as Parquet, uploaded once per scale into a lake home with 32 MiB chunks."""
    import duckdb

    rows = max(20_000, int(ROWS_AT_SCALE_1 * scale))
    home = cache / "home"
    os.environ["PLATFORM_SECRET"] = SECRET
    from lake import LakeNode, lake_settings

    def load(name: str, write: Callable[[Path], None], marker: Path) -> None:
        if marker.exists():
            return
        src = cache / f"{name}.parquet"
        write(src)
        node = LakeNode(lake_settings(None, home=home, chunk_bytes=32 << 20))
        try:
            node.ingest(src, name)
        finally:
            node.stop()
        src.unlink()
        marker.write_text("ok")

    def g1(rows: int, seed: float) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            duckdb.sql(f"SELECT setseed({seed})")
            duckdb.sql(_g1_sql(rows, path))

        return write

    def dim(path: Path) -> None:
        duckdb.sql(
            f"""COPY (SELECT i::INTEGER AS id4, 'name' || lpad((i % 37)::VARCHAR, 2, '0') AS name,
                       (i % 9 + 1)::INTEGER AS weight FROM range(1, {K + 1}) t(i))
                TO '{path}' (FORMAT parquet)"""
        )

    load("g1", g1(rows, 0.17), cache / "loaded")
    load("g1m", g1(min(rows, SMALL_ROWS), 0.29), cache / "loaded-g1m")
    load("dim", dim, cache / "loaded-dim")
    joined = cache / "loaded-join"
    if not joined.exists():
        _join_tables(cache, home, max(10_000, int(JOIN_ROWS_AT_SCALE_1 * scale)))
        joined.write_text("ok")
    import elytra

    files: dict[str, list[str]] = {}
    with elytra.connect(home=home, backend="inline", progress=False) as s:
        for name in ("g1", "g1m", "dim", "x", "y"):
            (source,) = s.dataset(name).sources.values()
            files[name] = [path for _, path, _ in source.chunks]  # type: ignore[attr-defined]
    return {"rows": rows, "home": str(home), "files": files["g1"], "tables": files}


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
    if q == "join_dim":
        return (
            s.dataset("g1m")
            .join(s.dataset("dim"), "id4")
            .group_by("name")
            .agg("sum(v1 * weight) AS v1w", "avg(v3) AS v3")
        )
    if q == "sort_limit":
        return (
            s.dataset("g1m")
            .filter("v1 > 2")
            .with_columns(x="v3 * v2")
            .sort("x DESC", "id6")
            .limit(25)
            .select("id6", "x")
        )
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
    if q == "sort":
        return g1.sort("v3 DESC", "id1")
    if q == "join":
        return s.dataset("x").join(s.dataset("y"), on="k").select("k", "a", "c", "b")
    return g1.filter("v3 > 50").agg("count(*) AS n")


def _elytra(backend: str) -> Callable[[str, dict[str, Any]], Callable[[], Any]]:
    def factory(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
        import elytra

        os.environ["PLATFORM_SECRET"] = SECRET
        more = {"range_sort_bytes": 0} if workload == "sort" else {}  # the range path
        s = elytra.connect(home=params["home"], backend=backend, workers=2, progress=False, **more)
        p = _pipeline(s, workload)
        wait = getattr(s.driver.backend, "wait_ready", None)
        if wait is not None:  # every worker up, not only the one the warm run took
            wait()
        for _ in range(3):  # warm: imports done, rings made; not the workload
            p.collect()
        return p.collect

    return factory


bench.engine("elytra")(_elytra("local"))
bench.engine("elytra-ray", peer=True, workloads=RAY_QUESTIONS)(_elytra("ray"))


@bench.engine("duckdb", peer=True)
def duck(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import duckdb

    con = duckdb.connect()
    for name, files in params["tables"].items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files})")
    con.sql(SQL[workload]).to_arrow_table()
    return lambda: con.sql(SQL[workload]).to_arrow_table()


@bench.engine("polars", peer=True)
def polars_engine(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import polars as pl

    g1 = pl.scan_parquet(params["files"])
    g1m = pl.scan_parquet(params["tables"]["g1m"])
    dim = pl.scan_parquet(params["tables"]["dim"])
    c = pl.col
    queries = {
        "join_dim": lambda: (
            g1m.join(dim, on="id4")
            .group_by("name")
            .agg((c("v1") * c("weight")).sum().alias("v1w"), c("v3").mean())
        ),
        "sort_limit": lambda: (
            g1m.filter(c("v1") > 2)
            .select("id6", (c("v3") * c("v2")).alias("x"))
            .sort(["x", "id6"], descending=[True, False])
            .head(25)
        ),
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
        "sort": lambda: g1.sort(["v3", "id1"], descending=[True, False], nulls_last=True),
        "join": lambda: pl.scan_parquet(params["tables"]["x"]).join(
            pl.scan_parquet(params["tables"]["y"]), on="k", how="inner"
        ),
    }
    query = queries[workload]
    query().collect()
    return lambda: query().collect().to_arrow()


def daft_query(daft: Any, tables: dict[str, Any], workload: str) -> Any:
    """The question as a Daft DataFrame over ``tables`` (``daft.read_parquet`` frames); runs in
    the Daft server's environment (``bench/peers/daft_server.py``), which adds ``.to_arrow()``."""
    from daft import Window, col
    from daft.functions import row_number

    g1, g1m, dim = tables["g1"], tables["g1m"], tables["dim"]
    if workload == "join_dim":
        return (
            g1m.join(dim, on="id4")
            .groupby("name")
            .agg((col("v1") * col("weight")).sum().alias("v1w"), col("v3").mean())
        )
    if workload == "sort_limit":
        return (
            g1m.where(col("v1") > 2)
            .select("id6", (col("v3") * col("v2")).alias("x"))
            .sort(["x", "id6"], desc=[True, False])
            .limit(25)
        )
    if workload == "join":
        return tables["x"].join(tables["y"], on="k").select("k", "a", "c", "b")
    if workload == "sort":
        return g1.sort(["v3", "id1"], desc=[True, False])
    if workload == "filter_count":
        return g1.where(col("v3") > 50).count()
    if workload == "q8":
        top = Window().partition_by("id6").order_by("v3", desc=True)
        return (
            g1.where(col("v3").not_null())
            .with_column("order_v3", row_number().over(top))
            .where(col("order_v3") <= 2)
            .select("id6", col("v3").alias("largest2_v3"))
        )
    if workload == "q7":
        return (
            g1.groupby("id3")
            .agg(col("v1").max().alias("max_v1"), col("v2").min().alias("min_v2"))
            .select("id3", (col("max_v1") - col("min_v2")).alias("range_v1_v2"))
        )
    c = col
    groups: dict[str, tuple[list[str], list[Any]]] = {
        "q1": (["id1"], [c("v1").sum()]),
        "q2": (["id1", "id2"], [c("v1").sum()]),
        "q3": (["id3"], [c("v1").sum(), c("v3").mean()]),
        "q4": (["id4"], [c("v1").mean(), c("v2").mean(), c("v3").mean()]),
        "q5": (["id6"], [c("v1").sum(), c("v2").sum(), c("v3").sum()]),
        "q6": (["id4", "id5"], [c("v3").median().alias("median_v3"), c("v3").stddev().alias("sd")]),
        "q10": (
            ["id1", "id2", "id3", "id4", "id5", "id6"],
            [c("v3").sum(), c("v3").count("all").alias("count")],
        ),
    }
    keys, aggs = groups[workload]
    return g1.groupby(*keys).agg(*aggs)


def _daft_service(params: dict[str, Any]) -> Any:
    from _peers import daft_server

    return daft_server(params)


@bench.engine("daft", peer=True, workloads=DAFT_QUESTIONS, service=_daft_service)
def daft_engine(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    from _peers import DaftClient

    client = DaftClient(params["daft_socket"])
    tables = {name: list(files) for name, files in params["tables"].items()}

    def ask() -> Any:
        return client.ask(__file__, "daft_query", tables, workload=workload)

    ask()  # warm, as the other engines are
    return ask


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
    if workload == "sort":  # the order too: the keys of the first, middle and last rows
        at = [0, output.num_rows // 2, output.num_rows - 1] if output.num_rows else []
        keys = [(output["v3"][i].as_py(), output["id1"][i].as_py()) for i in at]
        return f"{output.num_rows} {keys}"
    last = output.column(output.num_columns - 1).to_pylist()
    total = sum(float(v) for v in last if v is not None and not math.isnan(float(v)))
    if workload == "filter_count":
        return f"1 {int(total)}"
    return f"{output.num_rows} {total:.6g}"


def memory_section(params: dict[str, Any], questions: list[str], cap_mib: int = 64) -> None:
    """Each worker's and the driver's peak RSS above its start, per question, on a fresh pool
    under a ``cap_mib`` task cap (the issue's bound: cap + 64 MiB)."""
    import elytra

    os.environ["PLATFORM_SECRET"] = SECRET
    print(f"\n### memory: peak RSS above start, task cap {cap_mib} MiB (bound: cap + 64 MiB)\n")
    print("| question | process | start MiB | peak above start MiB | bound MiB | within |")
    print("|---|---|---:|---:|---:|---|")
    for q in questions:
        with elytra.connect(
            home=params["home"],
            backend="local",
            workers=2,
            progress=False,
            worker_mem_cap=f"{cap_mib}MiB",
        ) as s:
            s.driver.backend.wait_ready()  # type: ignore[attr-defined]
            pids = {f"worker {i}": p for i, p in enumerate(s.driver.backend.worker_pids())}  # type: ignore[attr-defined]
            pids["driver"] = os.getpid()
            start = {}
            for name, pid in pids.items():
                reset_peak_rss(pid)
                start[name] = status_kib("VmRSS", pid)
            _pipeline(s, q).collect()
            caps = {"driver": int(s.driver.settings.driver_mem_cap) >> 20}
            for name, pid in pids.items():
                above = max(0, status_kib("VmHWM", pid) - start[name]) / 1024
                bound = caps.get(name, cap_mib) + 64
                print(
                    f"| {q} | {name} | {start[name] / 1024:.0f} | {above:.0f} | {bound} "
                    f"| {'yes' if above <= bound else 'NO'} |"
                )


MIN_CAP_TOP = (4 if QUICK else 256) << 20
"""min_cap's first cap (--quick: 4 MiB, q1's data at --quick scale answers under 1 MiB, so the
search still halves to a cap that fails; its figures are not kept there)."""


def min_cap_section(params: dict[str, Any], question: str) -> None:
    """The smallest ``worker_mem_cap`` (halving from MIN_CAP_TOP) that still gives DuckDB's answer
    for ``question``; the first cap that fails is printed with its error."""
    import duckdb

    import elytra

    os.environ["PLATFORM_SECRET"] = SECRET
    con = duckdb.connect()
    con.execute(f"CREATE VIEW g1 AS SELECT * FROM read_parquet({params['files']})")
    want = check(question, con.sql(SQL[question]).to_arrow_table())
    top = f"{MIN_CAP_TOP >> 20} MiB"
    print(f"\n### min_cap: the smallest task cap that answers {question} (halving from {top})\n")
    cap, smallest, failure = MIN_CAP_TOP, None, ""
    pool = elytra.LocalPool(2)  # one warm pool: the cap travels with each task
    try:
        pool.wait_ready()
        while cap >= 64 << 10:
            try:
                with elytra.connect(
                    home=params["home"],
                    backend=pool,
                    workers=2,
                    progress=False,
                    worker_mem_cap=cap,
                ) as s:
                    started = time.perf_counter()
                    got = check(question, _pipeline(s, question).collect())
                    took = time.perf_counter() - started
            except Exception as exc:  # the cap that fails, and why
                failure = f"{type(exc).__name__}: {str(exc)[:300]}"
                break
            if got != want:
                failure = f"answer {got!r}, DuckDB's {want!r}"
                break
            print(f"- {cap / 2**20:g} MiB: ok in {took:.2f} s")
            smallest, cap = cap, cap // 2
    finally:
        pool.close()
    print(f"\nsmallest working cap for {question}: {(smallest or 0) / 2**20:g} MiB")
    print(f"at {cap / 2**20:g} MiB: {failure or 'not tried (the search stops at 64 KiB)'}")


if __name__ == "__main__":
    workloads = (["q1", "filter_count"] if QUICK else QUESTIONS) + PIPELINES
    argv, named = [], []
    args = iter(sys.argv[1:])
    for a in args:
        if a == "--workload":
            value = next(args, "")
            named.append(value)
            if value not in SECTIONS:  # the harness runs the rest
                argv += [a, value]
        else:
            argv.append(a)
    status: int | str | None = 0
    if not named or set(named) - set(SECTIONS):
        try:
            bench.main(workloads, argv)
        except SystemExit as exc:  # failures in the table: the sections still run, then exit
            status = exc.code
    if not named or set(named) & set(SECTIONS):
        scale = (
            0.01
            if QUICK
            else float(
                next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--scale"), 1.0)
            )
        )
        from _harness import DATA_CACHE

        data = generate(scale, DATA_CACHE / bench.name / f"scale-{scale:g}")
        if not named or "memory" in named:
            memory_section(data, ["q1"] if QUICK else ["q1", "q3"])
        if not named or "min_cap" in named:
            min_cap_section(data, "q1" if QUICK else "q3")
    sys.exit(status)
