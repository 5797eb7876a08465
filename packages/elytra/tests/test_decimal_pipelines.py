"""Pipelines of decimal arithmetic over DECIMAL(15, 2) Parquet (TPC-H's money columns) equal
DuckDB's SQL over the same files: schema and rows, decimals exactly.

``with_columns(x="l_extendedprice * (1 - l_discount)")`` then ``group_by(k).agg(s="sum(x)")``,
and ``agg("sum(a * b)")`` straight over the columns, run across several tasks (one per part,
so partial states merge) on the inline backend and the local pool, once on the DuckDB
kernel (default caps) and once with the operators forced: caps below the kernel's floor
(``KERNEL_FLOOR_BYTES``), where emsqrt's own operators evaluate the expressions on Arrow.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import elytra
from emsqrt.kernel import KERNEL_FLOOR_BYTES

BELOW_FLOOR = "16MB"
assert KERNEL_FLOOR_BYTES > 16 * 10**6  # the operators' run really is below the floor


@pytest.fixture(scope="module")
def lineitem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four parts of lineitem-like rows: prices with NULLs, discounts and taxes in
    [0, 0.10], quantities; ``k`` and ``flag`` to group by."""
    d = tmp_path_factory.mktemp("lineitem")
    con = duckdb.connect()
    for p in range(4):
        lo = p * 2500
        con.execute(
            f"""COPY (SELECT (i % 5)::INTEGER AS k, 'f' || (i % 3) AS flag,
                CASE WHEN i % 19 = 0 THEN NULL
                     ELSE ((i * 7919 % 10000000) / 100.0)::DECIMAL(15, 2) END AS l_extendedprice,
                ((i % 11) / 100.0)::DECIMAL(15, 2) AS l_discount,
                ((i % 9) / 100.0)::DECIMAL(15, 2) AS l_tax,
                (i % 50 + 1)::DECIMAL(15, 2) AS a,
                ((i * 31 % 99999) / 100.0)::DECIMAL(15, 2) AS b,
                (i % 9999 + 1)::INTEGER AS qty
            FROM range({lo}, {lo + 2500}) t(i)) TO '{d}/part{p}.parquet' (FORMAT parquet)"""
        )
    return d


@pytest.fixture(
    params=["inline-kernel", "inline-operators", "local-kernel", "local-operators"],
)
def session(
    request: pytest.FixtureRequest, tmp_path: Path, pool: elytra.LocalPool
) -> Iterator[elytra.Session]:
    backend: Any = "inline" if request.param.startswith("inline") else pool
    caps: dict[str, Any] = (
        {"worker_mem_cap": BELOW_FLOOR, "driver_mem_cap": BELOW_FLOOR}
        if request.param.endswith("operators")
        else {}
    )
    with elytra.connect(home=tmp_path / "home", backend=backend, **caps) as s:
        yield s


def _same(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema, (got.schema, want.schema)
    names = ("k", "flag", "l_returnflag", "l_linestatus")
    keys = [(c, "ascending") for c in names if c in got.column_names]
    if keys:
        got, want = got.sort_by(keys), want.sort_by(keys)
    assert got.num_rows == want.num_rows
    for name in got.column_names:
        for u, v in zip(got[name].to_pylist(), want[name].to_pylist(), strict=True):
            if isinstance(u, float) and isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-12), (name, u, v)
            else:
                assert u == v, (name, u, v)


def _duckdb(lineitem: Path, sql: str) -> pa.Table:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{lineitem}/*.parquet')")
    return con.sql(sql).to_arrow_table()


def test_sum_of_a_discounted_price_per_group(session: elytra.Session, lineitem: Path) -> None:
    p = session.read_parquet(f"{lineitem}/*.parquet")
    got = (
        p.with_columns(x="l_extendedprice * (1 - l_discount)")
        .group_by("k")
        .agg(s="sum(x)", c="sum(x * (1 + l_tax))", m="max(x)", av="avg(x)")
        .collect()
    )
    x = "l_extendedprice * (1 - l_discount)"
    want = _duckdb(
        lineitem,
        f"SELECT k, sum({x}) AS s, sum({x} * (1 + l_tax)) AS c, max({x}) AS m, "
        f"avg({x}) AS av FROM t GROUP BY k",
    )
    assert want.schema.field("s").type == pa.decimal128(38, 4)
    assert want.schema.field("c").type == pa.decimal128(38, 6)
    _same(got, want)


def test_sum_of_a_product_of_columns(session: elytra.Session, lineitem: Path) -> None:
    p = session.read_parquet(f"{lineitem}/*.parquet")
    want = _duckdb(lineitem, "SELECT sum(a * b) AS s, sum(b * qty) AS v, sum(a) AS sa FROM t")
    _same(p.agg("sum(a * b) AS s", "sum(b * qty) AS v", "sum(a) AS sa").collect(), want)
    grouped = p.filter("l_discount BETWEEN 0.05 AND 0.07").group_by("flag", "k")
    want2 = _duckdb(
        lineitem,
        "SELECT flag, k, sum(a * b) AS s, sum(a) - sum(b) AS d FROM t "
        "WHERE l_discount BETWEEN 0.05 AND 0.07 GROUP BY flag, k",
    )
    _same(grouped.agg("sum(a * b) AS s", "sum(a) - sum(b) AS d").collect(), want2)


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TPC-H at scale 0.01 from tpchgen-cli (DECIMAL(15, 2) money columns)."""
    from lake.sql.tpch import generate

    out = tmp_path_factory.mktemp("tpch") / "sf0.01"
    return generate(0.01, out)["lineitem"]


def test_tpch_q1_and_q6_equal_duckdb(session: elytra.Session, tpch: Path) -> None:
    """TPC-H q1 (sums of discounted prices and charges) and q6 (a revenue over decimal
    BETWEEN bounds, written as SQL writes 0.05: a DECIMAL(3, 2)) as pipelines: DuckDB's
    types and values, on the kernel and on the operators."""
    from lake.sql.tpch import QUERIES

    p = session.read_parquet(str(tpch))
    q1 = (
        p.filter("l_shipdate <= DATE '1998-09-02'")
        .group_by("l_returnflag", "l_linestatus")
        .agg(
            sum_qty="sum(l_quantity)",
            sum_base_price="sum(l_extendedprice)",
            sum_disc_price="sum(l_extendedprice * (1 - l_discount))",
            sum_charge="sum(l_extendedprice * (1 - l_discount) * (1 + l_tax))",
            avg_qty="avg(l_quantity)",
            avg_price="avg(l_extendedprice)",
            avg_disc="avg(l_discount)",
            count_order="count(*)",
        )
    )
    q6 = p.filter(
        "l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' AND l_discount "
        "BETWEEN CAST(0.05 AS DECIMAL(3, 2)) AND CAST(0.07 AS DECIMAL(3, 2)) AND l_quantity < 24"
    ).agg(revenue="sum(l_extendedprice * l_discount)")
    con = duckdb.connect()
    con.execute(f"CREATE VIEW lineitem AS SELECT * FROM read_parquet('{tpch}')")
    for pipeline, number in ((q1, 1), (q6, 6)):
        want, got = con.sql(QUERIES[number]).to_arrow_table(), pipeline.collect()
        # tpchgen's columns are NOT NULL; whether a group key says so is not the point here
        _same(*(t.cast(pa.schema([f.with_nullable(True) for f in t.schema])) for t in (got, want)))
