"""hash_columns (numpy over Arrow buffers) against DuckDB's hash() and polars' hash_rows.

Each engine hashes the same key columns of the same in-memory Arrow table into one uint64 per
row. The check (untimed) is the number of hashes made, which must equal the row count for every
engine, so none can skip rows; the number of distinct hashes is printed beside it (collisions).

With ``--quick`` (CI: so the script never rots) only the four-column workload runs: its key
columns are the other two workloads' and more, so every engine and every column type's hashing
still runs once, in a third of the children (each child's start costs seconds).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _harness import Benchmark

bench = Benchmark("core_hash", "platform_core.hash_columns vs DuckDB hash() and polars hash_rows")
bench.quick_scale = 0.02

QUICK = "--quick" in sys.argv
ROWS_AT_SCALE_1 = 4_000_000
WORKLOADS = {
    "i64": ["id"],
    "utf8": ["name"],
    "i64+utf8+f64+date": ["id", "name", "price", "day"],
}


@bench.data
def generate(scale: float, cache: Path) -> dict[str, Any]:
    """A seeded table: unique ids, short unique-ish strings, floats, dates."""
    rows = max(1000, int(ROWS_AT_SCALE_1 * scale))
    path = cache / "table.parquet"
    if not path.exists():
        rng = np.random.default_rng(42)
        ids = rng.permutation(rows).astype(np.int64) * 7919 - rows
        suffix = pc.cast(pa.array(rng.integers(0, 1 << 40, rows)), pa.string())
        names = pc.binary_join_element_wise(pa.array(np.repeat("user-", rows)), suffix, "")
        table = pa.table(
            {
                "id": ids,
                "name": names,
                "price": np.round(rng.gamma(2.0, 40.0, rows), 2),
                "day": pa.array(rng.integers(18000, 20000, rows).astype(np.int32)).cast(
                    pa.date32()
                ),
            }
        )
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp)
        tmp.rename(path)
    return {"path": str(path), "rows": rows}


def _load(params: dict[str, Any]) -> pa.Table:
    return pq.read_table(params["path"]).combine_chunks()


@bench.engine("ours")
def ours(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    from platform_core import hash_columns

    table, keys = _load(params), WORKLOADS[workload]
    hash_columns(table.slice(0, 100), keys)  # warm up: first-call costs are not the workload
    return lambda: hash_columns(table, keys)


@bench.engine("duckdb", peer=True)
def duckdb_hash(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import duckdb

    table, keys = _load(params), WORKLOADS[workload]
    con = duckdb.connect()
    con.register("t", table)
    sql = f"SELECT hash({', '.join(keys)}) AS h FROM t"
    con.sql(sql + " LIMIT 100").to_arrow_table()
    return lambda: con.sql(sql).to_arrow_table().column("h")


@bench.engine("duckdb-1t", peer=True)
def duckdb_one_thread(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import duckdb

    table, keys = _load(params), WORKLOADS[workload]
    con = duckdb.connect(config={"threads": 1})
    con.register("t", table)
    sql = f"SELECT hash({', '.join(keys)}) AS h FROM t"
    con.sql(sql + " LIMIT 100").to_arrow_table()
    return lambda: con.sql(sql).to_arrow_table().column("h")


@bench.engine("polars", peer=True)
def polars_hash(workload: str, params: dict[str, Any]) -> Callable[[], Any]:
    import polars as pl

    frame, keys = pl.from_arrow(_load(params)), WORKLOADS[workload]
    assert isinstance(frame, pl.DataFrame)
    frame.head(100).select(keys).hash_rows(seed=0)
    return lambda: frame.select(keys).hash_rows(seed=0).to_arrow()


@bench.check
def rows_hashed(workload: str, output: Any) -> int:
    print(f"    distinct hashes: {pc.count_distinct(output).as_py()}", file=sys.stderr)
    return len(output)


if __name__ == "__main__":
    bench.main(["i64+utf8+f64+date"] if QUICK else list(WORKLOADS))
