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


def test_the_json_form_of_a_pipeline_builds_the_same_pipeline(home: Path) -> None:
    from elytra.spec import build

    with elytra.connect(home=home, backend="inline") as s:
        sales = s.dataset("sales", version=1)
        other = s.dataset("sales", version=1).filter("grp < 3").select("grp", "who")
        pipelines = [
            sales.filter("amount > 100 AND who IS NOT NULL").with_columns(x="amount * 2"),
            sales.group_by("grp").agg("count(*) AS n", "avg(amount) AS a").sort("grp DESC"),
            sales.top_k(7, "amount DESC", "id").rename(id="key").drop("who"),
            sales.select("grp", "who").distinct().union(other).limit(50, 5),
            sales.join(other.distinct(), on=["grp", "who"], how="semi").agg("count(*) AS n"),
        ]
        for p in pipelines:
            again = build(p.to_spec(), s, files=False)
            assert again.node == p.node or again.collect().equals(p.collect())
            assert again.to_spec() == p.to_spec()
        with pytest.raises(PipelineError, match="only run embedded"):
            sales.map_batches(lambda b: b).to_spec()


def test_write_commits_a_new_dataset_version_or_a_file(home: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    with elytra.connect(home=home, backend="inline") as s:
        totals = s.dataset("sales", version=1).group_by("grp").agg("sum(amount) AS total")
        done = totals.write("totals")
        assert done["dataset"] == "totals"
        assert done["version"] == 1
        assert done["rows"] == 13
        again = s.dataset("totals")
        assert rows_of([tuple(r.values()) for r in again.collect().to_pylist()]) == rows_of(
            [tuple(r.values()) for r in totals.collect().to_pylist()]
        )
        assert totals.write("totals")["version"] == 2
        none = s.dataset("sales", version=1).filter("amount < -1e9").select("grp", "amount")
        empty = none.write("nothing")  # streamed: no batch at all still makes a version
        assert (empty["rows"], empty["version"]) == (0, 1)
        assert s.dataset("nothing").columns == ["grp", "amount"]
        out = totals.write(tmp_path / "t.parquet")
        assert pq.read_table(out["path"]).num_rows == 13
        with pytest.raises(PipelineError, match="parquet or csv"):
            totals.write(tmp_path / "t.json")
