"""Dictionary-encoded (categorical) columns group and sort as DuckDB does (break-tests of
round 4): Parquet files with a dictionary-encoded (categorical) column, as
pandas writes a ``category`` column, through the merge of task results; DuckDB is the oracle."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra


@pytest.fixture
def cats(tmp_path: Path) -> str:
    d = tmp_path / "cats"
    d.mkdir()
    n = 2000
    for i in range(2):  # each file has its own dictionary (values in another order)
        c = pa.array([f"cat{(j * 7 + i) % 50:03d}" for j in range(n)]).dictionary_encode()
        pq.write_table(
            pa.table({"id": list(range(i * n, (i + 1) * n)), "c": c}), d / f"p{i}.parquet"
        )
    return f"{d}/*.parquet"


def test_group_by_a_categorical_column_across_files(tmp_path: Path, cats: str) -> None:
    with elytra.connect(home=tmp_path / "home", backend="inline", progress=False) as s:
        got = s.read_parquet(cats).group_by("c").agg("count(*) AS n").collect()
    rows = sorted((str(r["c"]), r["n"]) for r in got.to_pylist())
    assert rows == duckdb.sql(f"SELECT c, count(*) FROM '{cats}' GROUP BY c ORDER BY c").fetchall()


def test_sort_by_a_categorical_column(tmp_path: Path, cats: str) -> None:
    with elytra.connect(home=tmp_path / "home", backend="inline", progress=False) as s:
        got = s.read_parquet(cats).sort("c", "id").select("id").collect()
    want = duckdb.sql(f"SELECT id FROM '{cats}' ORDER BY c, id").fetchall()
    assert [(r["id"],) for r in got.to_pylist()] == want
