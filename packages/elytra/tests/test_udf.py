"""Python functions in pipelines: map_batches (vectorised), map, flat_map, reduce; a function
that raises fails the job with its error; plans holding one never decode from plain JSON."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import elytra
from elytra import PipelineError
from emsqrt.errors import PlanError
from emsqrt.plan_json import plan_from_json, plan_to_json

from .conftest import rows_of


def test_map_batches_map_flat_map_and_reduce_equal_duckdb(
    session: elytra.Session, parts_dir: Path
) -> None:
    p = session.read_parquet(f"{parts_dir}/*.parquet").filter("v IS NOT NULL")

    def double(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [batch.column("k"), pc.multiply(batch.column("v"), 2)], names=["k", "v2"]
        )

    got = p.map_batches(double).group_by("k").agg("sum(v2) AS s").collect()
    want = duckdb.sql(
        f"SELECT k, sum(v * 2) FROM '{parts_dir}/*.parquet' WHERE v IS NOT NULL GROUP BY k"
    ).fetchall()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)

    rows = p.map(lambda r: {"k": r["k"], "big": r["v"] > 500}).filter("big").count()
    flat = p.filter("v < 50").flat_map(lambda r: [{"x": r["v"]}] * 3, schema={"x": "i64"})
    n_small = duckdb.sql(f"SELECT count(*) FROM '{parts_dir}/*.parquet' WHERE v < 50").fetchall()[
        0
    ][0]
    assert flat.count() == 3 * n_small
    assert (
        rows
        == duckdb.sql(f"SELECT count(*) FROM '{parts_dir}/*.parquet' WHERE v > 500").fetchall()[0][
            0
        ]
    )  # type: ignore[index]
    total = p.select("v").reduce(lambda acc, r: acc + r["v"], 0)
    assert total == duckdb.sql(f"SELECT sum(v) FROM '{parts_dir}/*.parquet'").fetchall()[0][0]


def test_a_function_that_raises_fails_the_job_with_its_error(
    session: elytra.Session, parts_dir: Path
) -> None:
    def boom(batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.num_rows and 13 in batch.column("k").to_pylist():
            raise ValueError("thirteen is unlucky")
        return batch

    p = session.read_parquet(f"{parts_dir}/*.parquet").with_columns(k="k * 13 % 17")
    job = p.map_batches(boom).submit()
    assert job.wait(60) == "failed"
    with pytest.raises(elytra.ElytraError, match="thirteen is unlucky"):
        job.result()
    with pytest.raises(PipelineError, match="schema"):
        p.map_batches(lambda b: b.column("nope"))  # learning its schema fails: say so


def test_wrong_output_is_a_clear_error(session: elytra.Session, parts_dir: Path) -> None:
    p = session.read_parquet(f"{parts_dir}/*.parquet")
    bad = p.map_batches(lambda b: {"k": b.column("k")}, schema={"k": "i32", "extra": "i64"})
    with pytest.raises(elytra.ElytraError, match="does not match the declared schema"):
        bad.collect()


def test_plans_with_functions_decode_only_when_trusted(
    session: elytra.Session, parts_dir: Path
) -> None:
    p = session.read_parquet(f"{parts_dir}/part0.parquet").map(lambda r: r)
    text = plan_to_json(p.node)
    with pytest.raises(PlanError, match="Python function"):
        plan_from_json(text)
    assert plan_from_json(text, trusted=True) == p.node


def test_repartition_sets_the_number_of_tasks(session: elytra.Session, parts_dir: Path) -> None:
    p = session.read_parquet(f"{parts_dir}/*.parquet")
    fewer = p.repartition(2).count()
    assert session.driver.last is not None
    assert session.driver.last.tasks_total <= 3
    assert p.count() == fewer
    assert session.driver.last.tasks_total == 5
    with pytest.raises(PipelineError, match="repartition"):
        p.repartition(0)
