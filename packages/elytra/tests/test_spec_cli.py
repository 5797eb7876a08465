"""The JSON pipeline form and the ``elytra`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import PipelineError
from elytra.spec import MAX_DEPTH, build

from .conftest import rows_of


def test_a_spec_builds_the_pipeline_it_describes(session: elytra.Session, parts_dir: Path) -> None:
    spec = {
        "source": {"parquet": f"{parts_dir}/*.parquet"},
        "steps": [
            {"filter": "v > 100"},
            {"with_columns": {"w": "v * 2"}},
            {"group_by": ["k"], "agg": ["count(*) AS n", "max(w) AS mw"]},
            {
                "join": {
                    "source": {"parquet": f"{parts_dir}/part0.parquet"},
                    "steps": [{"group_by": "k", "agg": "min(s) AS ms"}],
                },
                "on": "k",
                "how": "left",
            },
            {"top_k": 3, "by": ["n DESC", "k"]},
        ],
    }
    got = build(spec, session, files=True).collect()
    want = duckdb.sql(
        f"""SELECT a.k, n, mw, ms FROM
              (SELECT k, count(*) n, max(v * 2) mw FROM '{parts_dir}/*.parquet' WHERE v > 100
               GROUP BY k) a
              LEFT JOIN (SELECT k, min(s) ms FROM '{parts_dir}/part0.parquet' GROUP BY k) b
              ON a.k = b.k ORDER BY n DESC, a.k LIMIT 3"""
    ).fetchall()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)


def test_top_n_per_group_in_a_spec(session: elytra.Session, parts_dir: Path) -> None:
    spec = {
        "source": {"parquet": f"{parts_dir}/*.parquet"},
        "steps": [{"top_k": 2, "by": ["v DESC", "d", "k"], "per": "s"}],
    }
    got = build(spec, session, files=True).collect()
    want = duckdb.sql(
        f"""SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY s ORDER BY
              v DESC NULLS LAST, d, k) rn FROM '{parts_dir}/*.parquet') WHERE rn <= 2"""
    ).fetchall()
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"source": {}}, "one dataset"),
        ({"source": {"dataset": "a", "csv": "b"}}, "one dataset"),
        ({"source": {"csv": "/etc/passwd"}}, "server paths"),
        ({"source": {"dataset": "x"}, "extra": 1}, "not a pipeline"),
        ({"source": {"parquet": "P"}, "steps": [{"filter": "v > 1", "sort": "v"}]}, "exactly one"),
        ({"source": {"parquet": "P"}, "steps": [{"filter": 5}]}, "expression string"),
        ({"source": {"parquet": "P"}, "steps": [{"limit": 2, "by": "v"}]}, "unknown keys"),
        ({"source": {"parquet": "P"}, "steps": [{"union": []}]}, "list of pipelines"),
        ({"source": {"parquet": "P"}, "steps": [{"limit": -1}]}, ">= 0"),
    ],
)
def test_bad_specs_are_refused_with_what_was_wrong(
    session: elytra.Session, parts_dir: Path, spec: dict[str, object], message: str
) -> None:
    text = json.dumps(spec).replace('"P"', json.dumps(f"{parts_dir}/*.parquet"))
    files = "server paths" not in message
    with pytest.raises(PipelineError, match=message):
        build(json.loads(text), session, files=files)


def test_nesting_is_bounded(session: elytra.Session, parts_dir: Path) -> None:
    spec: dict[str, object] = {"source": {"parquet": f"{parts_dir}/part0.parquet"}}
    for _ in range(MAX_DEPTH + 2):
        spec = {"source": {"parquet": f"{parts_dir}/part0.parquet"}, "steps": [{"union": [spec]}]}
    with pytest.raises(PipelineError, match="nest"):
        build(spec, session, files=True)


def test_the_cli_runs_a_pipeline_file(parts_dir: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        f"source: {{parquet: '{parts_dir}/*.parquet'}}\n"
        "steps:\n  - group_by: [k]\n    agg: ['count(*) AS n']\n  - sort: [k]\n"
    )
    exe = Path(sys.executable).parent / "elytra"
    env = {"PLATFORM_HOME": str(tmp_path / "home"), "ELYTRA_BACKEND": "inline", "PATH": ""}
    out = tmp_path / "out.parquet"
    done = subprocess.run(
        [str(exe), "run", str(pipeline), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert pq.read_table(out).column("n").to_pylist() == [
        n
        for (n,) in duckdb.sql(
            f"SELECT count(*) FROM '{parts_dir}/*.parquet' GROUP BY k ORDER BY k"
        ).fetchall()
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: {dataset: nope}\n")
    failed = subprocess.run(
        [str(exe), "run", str(bad)], capture_output=True, text=True, timeout=120, env=env
    )
    assert failed.returncode == 2
    assert "no dataset 'nope'" in failed.stderr
