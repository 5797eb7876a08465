"""Dataset names in SQL match as DuckDB's identifiers do: case-insensitively (issue 13, item 5).

Each spelling is checked against DuckDB itself, on a table created with the same mixed-case
name: whatever DuckDB finds, the lake finds, with the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from lake import LakeNode, SQLError, check_read_only

SPELLINGS = ["SalesData", "salesdata", "SALESDATA", '"salesdata"', '"SalesData"', "sAlEsDaTa"]


@pytest.fixture
def sales(node: LakeNode, tmp_path: Path, ingest_file: Callable[..., None]) -> Path:
    path = tmp_path / "sales.csv"
    path.write_text("id,amount\n1,10\n2,20\n3,\n")
    ingest_file(node, path, "SalesData")
    return path


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_spelling_duckdb_accepts_reads_the_dataset(
    node: LakeNode, sales: Path, spelling: str
) -> None:
    sql = f"SELECT id, amount FROM {spelling} ORDER BY id"
    db = duckdb.connect()
    db.execute(f"CREATE TABLE \"SalesData\" AS SELECT * FROM read_csv('{sales}')")
    expected = db.execute(sql).fetchall()  # DuckDB itself finds the mixed-case table
    assert node.engine.run(sql).table.to_pylist() == [{"id": i, "amount": a} for i, a in expected]
    assert check_read_only(sql, ["SalesData"]).tables == {"SalesData"}


def test_describe_finds_the_dataset_in_any_case(node: LakeNode, sales: Path) -> None:
    result = node.engine.run("DESCRIBE salesdata").table
    assert result.column("column_name").to_pylist() == ["id", "amount"]


def test_names_differing_only_in_case_need_the_exact_spelling() -> None:
    known = ["sales", "Sales"]
    assert check_read_only("SELECT * FROM sales", known).tables == {"sales"}
    assert check_read_only("SELECT * FROM Sales", known).tables == {"Sales"}
    with pytest.raises(SQLError, match="differ only in case"):
        check_read_only("SELECT * FROM SALES", known)


def test_an_unknown_name_still_says_which_datasets_exist() -> None:
    with pytest.raises(SQLError, match=r"no dataset named 'nope' \(datasets: sales\)"):
        check_read_only("SELECT * FROM nope", ["sales"])
