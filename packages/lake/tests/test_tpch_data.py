"""lake.sql.tpch: generated TPC-H data and the 22 query texts, checked against DuckDB."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from lake.errors import LakeError
from lake.sql.tpch import QUERIES, TABLES, generate


def test_generates_every_table_once_and_every_query_runs(tmp_path: Path) -> None:
    files = generate(0.01, tmp_path / "sf")
    assert sorted(files) == sorted(TABLES)
    con = duckdb.connect()
    rows = {t: con.execute(f"SELECT count(*) FROM '{p}'").fetchone()[0] for t, p in files.items()}
    # TPC-H's cardinalities: fixed tables, and the scaled ones at SF 0.01.
    expected = {"region": 5, "nation": 25, "supplier": 100, "customer": 1500, "orders": 15000}
    assert {t: rows[t] for t in expected} == expected
    mtime = files["lineitem"].stat().st_mtime_ns
    assert generate(0.01, tmp_path / "sf")["lineitem"].stat().st_mtime_ns == mtime
    for t, p in files.items():
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{p}')")
    assert sorted(QUERIES) == list(range(1, 23))
    answered = {n: con.execute(q).fetchall() for n, q in QUERIES.items()}
    assert all(answered[n] for n in QUERIES), "every query answers something at SF 0.01"


def test_bad_scale_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="above 0"):
        generate(0, tmp_path)
