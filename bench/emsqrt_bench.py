"""EM-√ (emsqrt) against DuckDB (threads=2, same memory_limit) and GNU sort, under hard caps.

Workloads (full scale 1): sort a ~2 GB CSV (20M rows) under 64 MB; group-by 20M rows into 1M
groups under 32 MB; join two ~1 GB CSVs under 64 MB; TPC-H Q1, Q3, Q6 at SF 1 (``tpchgen-cli``,
CSV) under 64 MB. ``--scale`` multiplies every data size; caps are the full-scale caps from
scale 0.1 up and shrink below it (floor 1 MiB) so small runs still spill.

Every engine reads the same CSV files and writes its result as Parquet; the check (untimed)
reduces the output to a digest (row count and rounded sums or first/last keys) that must agree
across engines. DuckDB runs at our cap first; when it runs out of memory the failure is
recorded and it retries up the ladder 2x, 4x, ... 32x the cap (64 MB -> 2 GB); the time of the
first successful attempt is reported. Our reserved peak, spilled bytes, merge passes and sort
I/O (counted by our spill layer), and each DuckDB attempt, go to
``bench/results/emsqrt_bench_extra.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import RESULTS, Benchmark

bench = Benchmark("emsqrt_bench", "emsqrt vs DuckDB and GNU sort under memory caps")
bench.quick_scale = 0.002

MB = 1 << 20
CAPS = {
    "sort": 64 * MB,
    "groupby": 32 * MB,
    "join": 64 * MB,
    "q1": 64 * MB,
    "q3": 64 * MB,
    "q6": 64 * MB,
}
WORKLOADS = list(CAPS)
EXTRA = RESULTS / "emsqrt_bench_extra.json"
DUCK_TYPES = {"i64": "BIGINT", "i32": "INTEGER", "f64": "DOUBLE", "utf8": "VARCHAR", "date": "DATE"}


def cap_for(workload: str, scale: float) -> int:
    return max(MB, int(CAPS[workload] * min(1.0, scale * 10)))


# ----------------------------------------------------------------------------- data
def _write_csv_chunks(path: Path, rows: int, make: Callable[[Any, int, int], Any]) -> None:
    """Write ``rows`` rows made by ``make(rng, start, n)`` a million at a time (seeded)."""
    import numpy as np
    import pyarrow.csv as pcsv

    if path.exists():
        return
    tmp = path.with_suffix(".tmp")
    rng = np.random.default_rng(7)
    writer = None
    for start in range(0, rows, 1_000_000):
        table = make(rng, start, min(1_000_000, rows - start))
        if writer is None:
            writer = pcsv.CSVWriter(tmp, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    tmp.rename(path)


def _sort_rows(rng: Any, start: int, n: int) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    key = pc.binary_join_element_wise(
        "k", pc.cast(pa.array(rng.integers(0, 10**11, n)), pa.string()), ""
    )
    pad = pa.array(np.repeat("x" * 40, n))
    payload = pc.binary_join_element_wise(
        pad, pc.cast(pa.array(rng.integers(0, 10**9, n)), pa.string()), ""
    )
    return pa.table(
        {
            "id": np.arange(start, start + n, dtype=np.int64),
            "key": key,
            "value": rng.normal(size=n).round(6),
            "payload": payload,
        }
    )


def _group_rows(groups: int) -> Callable[[Any, int, int], Any]:
    def make(rng: Any, start: int, n: int) -> Any:
        import pyarrow as pa

        return pa.table(
            {
                "g": rng.integers(0, groups, n),
                "x": rng.normal(size=n).round(4),
                "y": rng.integers(0, 1000, n),
            }
        )

    return make


def _join_rows(prefix: str, domain: int) -> Callable[[Any, int, int], Any]:
    def make(rng: Any, start: int, n: int) -> Any:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        pad = pa.array(np.repeat(prefix * 60, n))
        text = pc.binary_join_element_wise(
            pad, pc.cast(pa.array(rng.integers(0, 10**9, n)), pa.string()), ""
        )
        return pa.table(
            {
                f"{prefix}key": rng.integers(0, domain, n),
                f"{prefix}val": rng.normal(size=n).round(4),
                f"{prefix}text": text,
            }
        )

    return make


@bench.data
def generate(scale: float, cache: Path) -> dict[str, Any]:
    """Seeded CSVs and TPC-H tables; schemas inferred here, in the parent, once."""
    from emsqrt import Pipeline
    from emsqrt.resolve import bind_scan_schemas

    sort_rows = max(20_000, int(20_000_000 * scale))
    group_rows = max(20_000, int(20_000_000 * scale))
    groups = max(1_000, int(1_000_000 * scale))
    join_rows = max(10_000, int(10_000_000 * scale))
    files = {
        "sort": cache / "sort.csv",
        "groupby": cache / "groupby.csv",
        "left": cache / "left.csv",
        "right": cache / "right.csv",
    }
    _write_csv_chunks(files["sort"], sort_rows, _sort_rows)
    _write_csv_chunks(files["groupby"], group_rows, _group_rows(groups))
    _write_csv_chunks(files["left"], join_rows, _join_rows("l", join_rows))
    _write_csv_chunks(files["right"], join_rows, _join_rows("r", join_rows))
    tpch = cache / "tpch"
    if not (tpch / "lineitem.csv").exists():
        tpch.mkdir(exist_ok=True)
        exe = Path(sys.executable).parent / "tpchgen-cli"
        subprocess.run(
            [
                str(exe),
                "csv",
                "-s",
                f"{scale:g}",
                "--tables=lineitem,orders,customer",
                f"--output-dir={tpch}",
            ],
            check=True,
        )
    for t in ("lineitem", "orders", "customer"):
        files[t] = tpch / f"{t}.csv"
    schemas = {}
    for name, path in files.items():
        scan = bind_scan_schemas(Pipeline.scan(path).node)
        schemas[name] = scan.schema.to_dict()  # type: ignore[attr-defined]
    return {
        "scale": scale,
        "files": {k: str(v) for k, v in files.items()},
        "schemas": schemas,
        "bytes": {k: v.stat().st_size for k, v in files.items()},
        "out": str(cache / "out"),
    }


# ----------------------------------------------------------------------------- ours
def _pipelines(params: dict[str, Any]) -> dict[str, Any]:
    from emsqrt import Pipeline
    from emsqrt.plan import Scan
    from platform_core import Schema

    def scan(name: str) -> Pipeline:
        f = params["files"][name]
        return Pipeline(Scan(f, "csv", Schema.from_dict(params["schemas"][name])))

    li = scan("lineitem")
    rev = "l_extendedprice * (1 - l_discount)"
    q1 = (
        li.filter("l_shipdate <= DATE '1998-09-02'")
        .aggregate(
            ["l_returnflag", "l_linestatus"],
            [
                "SUM(l_quantity) AS sum_qty",
                "SUM(l_extendedprice) AS sum_base_price",
                f"SUM({rev}) AS sum_disc_price",
                f"SUM({rev} * (1 + l_tax)) AS sum_charge",
                "AVG(l_quantity) AS avg_qty",
                "AVG(l_extendedprice) AS avg_price",
                "AVG(l_discount) AS avg_disc",
                "COUNT(*) AS count_order",
            ],
        )
        .sort(["l_returnflag", "l_linestatus"])
    )
    q6 = li.filter(
        "l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' "
        "AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24"
    ).aggregate([], ["SUM(l_extendedprice * l_discount) AS revenue"])
    orders = (
        scan("orders")
        .filter("o_orderdate < DATE '1995-03-15'")
        .join(
            scan("customer").filter("c_mktsegment = 'BUILDING'"),
            left_on=["o_custkey"],
            right_on=["c_custkey"],
            how="semi",
        )
    )
    q3 = (
        li.filter("l_shipdate > DATE '1995-03-15'")
        .join(orders, left_on=["l_orderkey"], right_on=["o_orderkey"])
        .aggregate(["l_orderkey", "o_orderdate", "o_shippriority"], [f"SUM({rev}) AS revenue"])
        .sort(["revenue DESC", "o_orderdate"])
        .limit(10)
    )
    return {
        "sort": scan("sort").sort(["key"]),
        "groupby": scan("groupby").aggregate(
            ["g"], ["COUNT(*) AS n", "SUM(x) AS sx", "MAX(y) AS my"]
        ),
        "join": scan("left").join(scan("right"), left_on=["lkey"], right_on=["rkey"]),
        "q1": q1,
        "q3": q3,
        "q6": q6,
    }


def _record(key: str, value: dict[str, Any]) -> None:
    """Add one record to the side file (children run one at a time)."""
    EXTRA.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(EXTRA.read_text()) if EXTRA.exists() else {}
    rows[key] = value
    tmp = EXTRA.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1, sort_keys=True))
    os.replace(tmp, EXTRA)


@bench.engine("ours")
def ours(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    from emsqrt import EngineConfig, run

    cap = cap_for(workload, params["scale"])
    out = Path(params["out"]) / f"{workload}-ours.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    plan = _pipelines(params)[workload].sink(out).node
    spill = Path(params["out"]) / "spill"
    cfg = EngineConfig(mem_cap_bytes=cap, spill_dir=str(spill))

    def call() -> Any:
        m = run(plan, cfg).manifest
        ops = {o.op: o for o in reversed(m.operators)}
        _record(
            f"{workload}|ours|{params['scale']:g}|{time.time_ns()}",
            {
                "cap": cap,
                "seconds": m.seconds,
                "reserved_peak": m.memory["reserved_peak_bytes"],
                "arrow_peak_in_run": m.memory["arrow_pool_peak_bytes"],
                "spill_written": m.spill["bytes_written"],
                "spill_read": m.spill["bytes_read"],
                "spill_arrow_written": m.spill["arrow_bytes_written"],
                "merge_passes": ops["sort"].merge_passes if "sort" in ops else None,
                "sort_runs": ops["sort"].runs if "sort" in ops else None,
                "sort_input_arrow_bytes": ops["scan"].bytes if workload == "sort" else None,
                "repartition_depth": max(o.repartition_depth for o in m.operators),
                "output_bytes": m.outputs[0]["bytes"] if m.outputs else 0,
                "rss_above_baseline_in_run": m.memory["rss_peak_above_baseline_bytes"],
            },
        )
        return str(out)

    return call


# ----------------------------------------------------------------------------- peers
def _duck_scan(params: dict[str, Any], name: str) -> str:
    cols = ", ".join(
        f"'{f['name']}': '{DUCK_TYPES[f['type']]}'" for f in params["schemas"][name]["fields"]
    )
    return f"read_csv('{params['files'][name]}', header=true, columns={{{cols}}})"


def _duck_sql(workload: str, params: dict[str, Any]) -> str:
    s = lambda n: _duck_scan(params, n)  # noqa: E731
    rev = "l_extendedprice * (1 - l_discount)"
    return {
        "sort": f"SELECT * FROM {s('sort')} ORDER BY key",
        "groupby": f"SELECT g, count(*) AS n, sum(x) AS sx, max(y) AS my FROM {s('groupby')} GROUP BY g",
        "join": f"SELECT l.*, r.rval, r.rtext FROM {s('left')} l JOIN {s('right')} r ON l.lkey = r.rkey",
        "q1": f"""SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty,
            sum(l_extendedprice) AS sum_base_price, sum({rev}) AS sum_disc_price,
            sum({rev} * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty,
            avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order
            FROM {s("lineitem")} WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL 90 DAY
            GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus""",
        "q3": f"""SELECT l_orderkey, sum({rev}) AS revenue, o_orderdate, o_shippriority
            FROM {s("customer")}, {s("orders")}, {s("lineitem")}
            WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
              AND o_orderdate < DATE '1995-03-15' AND l_shipdate > DATE '1995-03-15'
            GROUP BY l_orderkey, o_orderdate, o_shippriority
            ORDER BY revenue DESC, o_orderdate LIMIT 10""",
        "q6": f"""SELECT sum(l_extendedprice * l_discount) AS revenue FROM {s("lineitem")}
            WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01'
              AND l_discount BETWEEN 0.06 - 0.01 AND 0.06 + 0.01 AND l_quantity < 24""",
    }[workload]


@bench.engine("duckdb", peer=True)
def duck(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import duckdb

    cap = cap_for(workload, params["scale"])
    out = Path(params["out"]) / f"{workload}-duckdb.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    sql = _duck_sql(workload, params)
    tmpdir = Path(params["out"]) / "duck-tmp"

    def call() -> Any:
        limit = cap
        while True:
            con = duckdb.connect(
                config={
                    "threads": 2,
                    "memory_limit": f"{limit // MB}MB",
                    "temp_directory": str(tmpdir),
                }
            )
            t0 = time.perf_counter()
            try:
                con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
                ok, err = True, None
            except duckdb.OutOfMemoryException as exc:
                ok, err = False, str(exc).splitlines()[0][:200]
            finally:
                con.close()
            _record(
                f"{workload}|duckdb|{params['scale']:g}|{limit // MB}MB|{time.time_ns()}",
                {
                    "cap": cap,
                    "limit": limit,
                    "ok": ok,
                    "seconds": time.perf_counter() - t0,
                    "error": err,
                },
            )
            if ok:
                return str(out)
            if limit >= 32 * cap:
                raise RuntimeError(f"DuckDB ran out of memory up to {limit // MB} MB: {err}")
            limit *= 2

    return call


@bench.engine("gnu-sort", peer=True, workloads=["sort"])
def gnu_sort(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    cap = cap_for(workload, params["scale"])
    src = params["files"]["sort"]
    out = Path(params["out"]) / "sort-gnu.csv"
    tmpdir = Path(params["out"]) / "gnu-tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    # Rows sorted by the second field (key) as bytes; the header line stays first.
    cmd = (
        f"(head -n 1 {src}; tail -n +2 {src} | LC_ALL=C sort -t, -k2,2 -S {cap // MB}M "
        f"--parallel=2 -T {tmpdir}) > {out}"
    )

    def call() -> Any:
        subprocess.run(["bash", "-c", cmd], check=True)
        return str(out)

    return call


# ----------------------------------------------------------------------------- check
def _fuzzy(x: float) -> str:
    """``x`` to 7 significant digits on a grid shifted by an irrational fraction of a unit, so
    sums of decimal data (which sit exactly on decimal rounding boundaries) do not round one
    way in one engine and the other way in the next."""
    import math

    if x == 0 or not math.isfinite(x):
        return repr(x)
    unit = 10.0 ** (math.floor(math.log10(abs(x))) - 6)
    return f"{math.floor(x / unit + 0.5 + (math.pi - 3)):d}e{math.floor(math.log10(unit)):d}"


def _column_sum(col: Any) -> str:
    """An exact sum of the output (math.fsum for floats, so the digest's own summation order
    cannot matter), fuzzily rounded for floats: engines' results differ in the last bits."""
    import math

    import pyarrow as pa
    import pyarrow.compute as pc

    values = pc.drop_null(col)
    t = values.type
    if pa.types.is_floating(t) or (pa.types.is_decimal(t) and t.scale > 0):
        floats = values.cast(pa.float64())
        if len(floats) and pc.all(pc.equal(pc.round(floats), floats)).as_py():
            return str(int(math.fsum(floats.to_numpy())))  # integral (DuckDB's HUGEINT sums)
        return _fuzzy(math.fsum(floats.to_numpy()))
    return str(int(pc.sum(values.cast(pa.int64())).as_py() or 0))


@bench.check
def digest(workload: str, output: Any) -> Any:
    """Row count plus first/last keys (sort) or rounded column sums (the rest)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    path = str(output)
    if path.endswith(".csv"):
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(include_columns=["key"]))
    else:
        table = pq.read_table(path)
    if workload == "sort":
        keys = table.column("key")
        ordered = pc.all(pc.less_equal(keys.slice(0, len(keys) - 1), keys.slice(1))).as_py()
        return f"{table.num_rows} rows, {keys[0].as_py()}..{keys[-1].as_py()}, sorted={ordered}"
    sums = []
    for name in sorted(table.column_names):
        col = table.column(name)
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            sums.append(f"{name}={_column_sum(col)}")
    return f"{table.num_rows} rows; " + " ".join(sums)


if __name__ == "__main__":
    bench.main(WORKLOADS)
