"""The query route's choice of engine (``lake.sql.routing``): a plugin's executor answers what
it takes, the lake's planner the rest, and EXPLAIN says which and why.

The executor here is a small model written in the test (it answers from DuckDB over a copy of
the data, or declines), so the lake is tested without elytra installed, as ``nox -s
tests-lake`` installs it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pytest

from lake import LakeNode
from lake.errors import QueryTimeoutError, SQLError
from lake.interfaces import SQLDeclined, SQLRun
from lake.sql.routing import open_query


class ModelExecutor:
    """Answers SELECTs without a window function from its own DuckDB; declines the others."""

    name = "model"

    def __init__(self, csv: Path) -> None:
        self.con = duckdb.connect()
        self.con.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv('{csv}')")
        self.calls: list[tuple[str, str, str]] = []

    def run_sql(
        self,
        sql: str,
        *,
        mode: Literal["run", "explain", "analyze"],
        user: str,
        timeout: float,
        query_id: str,
        cancelled: threading.Event,
    ) -> SQLRun:
        self.calls.append((sql, mode, user))
        if " OVER " in sql.upper():
            raise SQLDeclined("window functions are not planned")
        if "SLEEP" in sql.upper():  # stands for a long run: ends when the caller cancels it
            if not cancelled.wait(30):
                raise AssertionError("never cancelled")
            raise QueryTimeoutError(f"query {query_id} was cancelled", query_id=query_id)
        if mode != "run":
            return SQLRun(pa.table({"stage": [0]}), {"engine": self.name, "stages": [mode]})
        return SQLRun(self.con.sql(sql).to_arrow_table())


@pytest.fixture
def loaded(node: LakeNode, tmp_path: Path) -> tuple[LakeNode, Path]:
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 5 AS grp, i * 1.5 AS amount FROM range(2000) t(i)) "
        f"TO '{csv}' (HEADER)"
    )
    node.ingest(csv, "sales", owner="alice")
    return node, csv


def _open(node: LakeNode, executor: Any, sql: str, **kw: Any) -> Any:
    return open_query(node.engine, executor, sql, user="alice", timeout=30.0, **kw)


def test_the_executor_answers_what_it_takes_and_the_lake_the_rest(
    loaded: tuple[LakeNode, Path],
) -> None:
    node, csv = loaded
    model = ModelExecutor(csv)
    sql = "SELECT grp, sum(amount) AS s FROM sales GROUP BY grp ORDER BY grp"
    stream = _open(node, model, sql)
    assert stream.engine == "model"
    assert (
        stream.read_all().to_pylist()
        == duckdb.sql(sql.replace("FROM sales", f"FROM read_csv('{csv}')"))
        .to_arrow_table()
        .to_pylist()
    )
    assert model.calls == [(sql, "run", "alice")]
    window = "SELECT id, rank() OVER (ORDER BY amount) AS r FROM sales ORDER BY id LIMIT 3"
    stream = _open(node, model, window)
    assert stream.engine == "lake"
    assert stream.read_all().to_pylist() == [{"id": i, "r": i + 1} for i in range(3)]
    for text in ("SHOW TABLES", "DESCRIBE sales"):  # the catalog's: never offered
        assert _open(node, model, text).engine == "lake"
    assert [c[1] for c in model.calls] == ["run", "run"]


def test_explain_names_the_engine_and_why_and_analyze_is_its_own_mode(
    loaded: tuple[LakeNode, Path],
) -> None:
    node, csv = loaded
    model = ModelExecutor(csv)
    plan = _open(node, model, "EXPLAIN SELECT count(*) FROM sales").plan
    assert plan == {"engine": "model", "stages": ["explain"]}
    plan = _open(node, model, "EXPLAIN ANALYZE SELECT count(*) FROM sales").plan
    assert plan == {"engine": "model", "stages": ["analyze"]}
    plan = _open(node, model, "EXPLAIN SELECT rank() OVER (ORDER BY id) FROM sales").plan
    assert plan["engine"] == "lake"
    assert plan["declined_by"] == "model"
    assert plan["why"] == "model declined: window functions are not planned"
    plan = _open(node, None, "EXPLAIN SELECT count(*) FROM sales").plan  # a bare lake node
    assert plan["engine"] == "lake"
    assert "declined_by" not in plan


def test_the_gate_refuses_before_any_executor_sees_the_text(
    loaded: tuple[LakeNode, Path],
) -> None:
    node, csv = loaded
    model = ModelExecutor(csv)
    for bad in ("DELETE FROM sales", "SELECT * FROM read_csv('/etc/passwd')", "SELECT nope FROM"):
        with pytest.raises(SQLError):
            _open(node, model, bad)
    assert model.calls == []


def test_a_cancel_reaches_the_executors_run(loaded: tuple[LakeNode, Path]) -> None:
    node, csv = loaded
    model = ModelExecutor(csv)
    cancelled = threading.Event()
    threading.Timer(0.2, cancelled.set).start()
    with pytest.raises(QueryTimeoutError, match="cancelled"):
        _open(node, model, "SELECT id FROM sales WHERE 'SLEEP' = 'SLEEP'", cancelled=cancelled)
    assert model.calls[-1][1] == "run"
