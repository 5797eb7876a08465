"""Pipelines over a lake dataset of many chunks: one task per chunk group, DuckDB's answer."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import elytra
from elytra import PipelineError
from lake import LakeNode, lake_settings
from lake.testing import ingest

from .conftest import rows_of

SECRET = "s" * 40


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lake home holding ``sales`` (many 128 KiB chunks) in two versions."""
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    home = tmp_path / "home"
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"""COPY (SELECT i AS id, (i % 13)::INTEGER AS grp, round(i * 0.37 % 1000, 2) AS amount,
                   CASE WHEN i % 11 = 0 THEN NULL ELSE 'user' || (i % 97) END AS who
            FROM range(60000) t(i)) TO '{csv}' (HEADER)"""
    )
    node = LakeNode(lake_settings(None, home=home, chunk_bytes=128 * 1024))
    try:
        ingest(node, csv, "sales")
        ingest(node, csv, "sales", append=True)  # version 2: the rows twice
    finally:
        node.stop()
    return home


def test_a_dataset_pipeline_runs_per_chunk_and_equals_duckdb(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    with elytra.connect(home=home, backend="inline", task_bytes=256 * 1024) as s:
        sales = s.dataset("sales")
        source = next(iter(sales.sources.values()))
        assert len(source.chunks) >= 8  # type: ignore[attr-defined]
        q = sales.filter("amount > 100").group_by("grp").agg("count(*) AS n", "avg(amount) AS a")
        plan = q.explain()
        assert "partial aggregate" in plan
        got = rows_of([tuple(r.values()) for r in q.collect().to_pylist()])
        assert s.driver.last is not None
        assert s.driver.last.tasks_total >= 4
        want = rows_of(
            duckdb.sql(
                f"SELECT grp, count(*) AS n, avg(amount) AS a FROM "
                f"(SELECT * FROM '{csv}' UNION ALL SELECT * FROM '{csv}') "
                "WHERE amount > 100 GROUP BY grp"
            ).fetchall()
        )
        assert got == want
        spill = home / "spill" / "elytra"
        assert not spill.exists() or not any(spill.iterdir())  # a job leaves no spill behind
        assert s.dataset("sales", version=1).count() == 60000
        assert sales.count() == 120000
        with pytest.raises(PipelineError, match="did you mean"):
            s.dataset("sale")
        with pytest.raises(PipelineError, match="version 7"):
            s.dataset("sales", version=7)
