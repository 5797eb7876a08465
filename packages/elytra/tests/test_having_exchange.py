"""A group-by under a HAVING finishes on its partitions (``elytra.having``): its tasks
partition their states from ``HAVING_EXCHANGE_BYTES``, the partitions' tasks run the final
aggregate and the HAVING above it, and the driver gets only the rows the HAVING keeps (TPC-H
q18's IN subquery: 57 of 1.5 M orders, whose 35 MiB of states went to the coordinator).
Answers equal DuckDB's."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import having

from .conftest import rows_of


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300,000 lines of 60,000 orders over 4 files; a few orders far above the rest."""
    where = tmp_path_factory.mktemp("having")
    rng = np.random.default_rng(35)
    n = 300_000
    order = rng.integers(0, 60_000, n)
    qty = rng.integers(1, 50, n)
    qty[order % 7919 == 0] += 400  # the orders the HAVING keeps
    table = pa.table(
        {
            "orderkey": pa.array(order, pa.int64()),
            "qty": pa.array(qty, pa.int64()),
            "tag": pa.array(np.where(order % 3 == 0, None, order % 20_000).tolist(), pa.int64()),
        }
    )
    for i in range(4):
        pq.write_table(table.slice(i * n // 4, n // 4), where / f"l{i}.parquet")
    return where


QUERIES = {
    "having": "SELECT orderkey, sum(qty) AS q FROM lines GROUP BY orderkey HAVING sum(qty) > 600",
    "having under a projection": "SELECT orderkey * 2 AS k2, q + 1 AS q1 FROM (SELECT orderkey, "
    "sum(qty) AS q FROM lines GROUP BY orderkey HAVING sum(qty) > 600 AND count(*) > 1)",
    "q18's IN": "SELECT count(*) AS n, sum(qty) AS s FROM lines WHERE orderkey IN "
    "(SELECT orderkey FROM lines GROUP BY orderkey HAVING sum(qty) > 600)",
    "NULL keys, then a sort and a limit": "SELECT tag, count(*) AS n FROM lines GROUP BY tag "
    "HAVING count(*) > 1 ORDER BY tag NULLS FIRST LIMIT 3",
}


def _duckdb(lines: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW lines AS SELECT * FROM read_parquet('{lines}/*.parquet')")
    return rows_of(con.execute(sql).fetchall())


@pytest.mark.parametrize("backend", ["inline", "local"])
@pytest.mark.parametrize("name", list(QUERIES))
def test_a_having_finishes_on_the_partitions_and_gives_duckdbs_answer(
    lines: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, name: str
) -> None:
    monkeypatch.setattr(having, "HAVING_EXCHANGE_BYTES", 64 << 10)
    sql = QUERIES[name]
    with elytra.connect(home=tmp_path / "home", backend=backend, workers=2) as s:
        table = s.sql(sql, {"lines": s.read_parquet(str(lines / "*.parquet"))}).collect()
        ran = s.driver.last
    assert ran is not None
    assert rows_of([tuple(r.values()) for r in table.to_pylist()]) == _duckdb(lines, sql)
    exchanged = [k for k in ran.stage_seconds if k.endswith("exchange")]
    assert exchanged, ran.stage_seconds  # finished on the partitions
    if name != "NULL keys, then a sort and a limit":
        # the HAVING ran in the partitions' tasks: the driver got its few rows (and, for
        # the IN, the outer side's per-task counts), not 60,000 groups
        assert ran.driver_rows_in < 1_000, ran.driver_rows_in


def test_a_group_by_without_a_having_keeps_the_usual_threshold(
    lines: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(having, "HAVING_EXCHANGE_BYTES", 64 << 10)
    sql = "SELECT orderkey, sum(qty) AS q FROM lines GROUP BY orderkey"
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        table = s.sql(sql, {"lines": s.read_parquet(str(lines / "*.parquet"))}).collect()
        ran = s.driver.last
    assert ran is not None
    assert rows_of([tuple(r.values()) for r in table.to_pylist()]) == _duckdb(lines, sql)
    assert not [k for k in ran.stage_seconds if k.endswith("exchange")], ran.stage_seconds
    assert ran.driver_rows_in > 50_000  # the states came to the driver
