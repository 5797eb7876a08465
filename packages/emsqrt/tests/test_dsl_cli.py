"""The YAML DSL (the source document's example, as written) and the installed CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from oracle import assert_same_rows, duck

from emsqrt import PlanError, compile_pipeline, load_pipeline

SEED_EXAMPLE = """\
steps:
  - scan:
      source: "data/logs.csv"
      schema:
        - { name: "ts", type: "Utf8", nullable: false }
        - { name: "uid", type: "Utf8", nullable: false }
        - { name: "amount", type: "Float64", nullable: true }

  - filter:
      expr: "amount > 1000"

  - aggregate:
      group_by: ["uid"]
      aggs: ["COUNT(*)", "SUM(amount)"]

  - sort:
      by: ["uid", "amount"]

  - sink:
      destination: "results/summary.csv"
      format: "csv"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    n = 20_000
    amount = pa.array(rng.uniform(0, 3000, n).round(2), mask=rng.random(n) < 0.05)
    t = pa.table(
        {
            "ts": pa.array([f"2026-01-01T00:00:{i % 60:02d}" for i in range(n)]),
            "uid": pa.array([f"u{x}" for x in rng.integers(0, 2000, n)]),
            "amount": amount,
        }
    )
    (tmp_path / "data").mkdir()
    pcsv.write_csv(t, tmp_path / "data" / "logs.csv")
    (tmp_path / "pipeline.yaml").write_text(SEED_EXAMPLE)
    return tmp_path


def _expected(project: Path) -> pa.Table:
    return duck(
        f"SELECT uid, count(*) AS count, sum(amount) AS sum_amount "
        f"FROM read_csv('{project / 'data' / 'logs.csv'}') WHERE amount > 1000 "
        "GROUP BY uid ORDER BY uid, sum_amount"
    )


def test_seed_example_runs_as_written_via_the_cli(project: Path, spill_dir: Path) -> None:
    manifest = project / "manifest.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "emsqrt",
            "run",
            "pipeline.yaml",
            "--mem-cap",
            "256KB",
            "--spill-dir",
            str(spill_dir),
            "--explain",
            "--manifest",
            str(manifest),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "aggregate [by uid]" in proc.stdout
    got = pcsv.read_csv(project / "results" / "summary.csv")
    assert got.column_names == ["uid", "count", "sum_amount"]
    assert_same_rows(got, _expected(project), ordered=True)
    m = json.loads(manifest.read_text())
    assert m["memory"]["reserved_peak_bytes"] <= 256 * 1024
    assert m["outputs"][0]["rows"] == got.num_rows
    assert m["operators"][0]["op"] == "sink"


def test_cli_bad_input_is_one_line_and_nonzero(project: Path, spill_dir: Path) -> None:
    (project / "bad.yaml").write_text(SEED_EXAMPLE.replace("amount > 1000", "amout > 1000"))
    proc = subprocess.run(
        [sys.executable, "-m", "emsqrt", "run", "bad.yaml", "--spill-dir", str(spill_dir)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert 'column "amout" not found; did you mean "amount"?' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / "results").exists()


def test_aggregated_column_reference_resolves_or_is_ambiguous(project: Path) -> None:
    p = load_pipeline(project / "pipeline.yaml")
    sort = p.node.input  # type: ignore[attr-defined]
    assert [k.column for k in sort.keys] == ["uid", "sum_amount"]
    doc = {
        "steps": [
            {"scan": {"source": "data/logs.csv"}},
            {"aggregate": {"group_by": ["uid"], "aggs": ["SUM(amount)", "MAX(amount)"]}},
            {"sort": {"by": ["amount"]}},
        ]
    }
    with pytest.raises(
        PlanError, match=r'steps\[2\]\.sort: column "amount" is ambiguous.*sum_amount, max_amount'
    ):
        compile_pipeline(doc, project)


def test_join_map_limit_steps(project: Path, spill_dir: Path) -> None:
    (project / "data" / "users.csv").write_text(
        "uid,region\n" + "".join(f"u{i},{'eu' if i % 3 else 'us'}\n" for i in range(0, 2000, 2))
    )
    doc = {
        "steps": [
            {"scan": {"source": "data/logs.csv"}},
            {"map": {"columns": ["amount * 2 AS double_amount", "uid AS user"]}},
            {
                "join": {
                    "right": [{"scan": {"source": "data/users.csv"}}],
                    "left_on": ["user"],
                    "right_on": ["uid"],
                    "how": "left",
                }
            },
            {
                "aggregate": {
                    "group_by": ["region"],
                    "aggs": ["COUNT(*)", "AVG(double_amount) AS a"],
                }
            },
            {"sort": {"by": ["region"]}},
            {"limit": {"n": 5}},
        ]
    }
    got = compile_pipeline(doc, project).collect("256KB", spill_dir=spill_dir)
    want = duck(
        f"SELECT region, count(*) AS count, avg(amount * 2) AS a FROM read_csv('{project}/data/logs.csv') l "
        f"LEFT JOIN read_csv('{project}/data/users.csv') u ON l.uid = u.uid "
        "GROUP BY region ORDER BY region NULLS LAST LIMIT 5"
    )
    assert_same_rows(got, want, ordered=True)


def test_dsl_errors_name_the_step() -> None:
    with pytest.raises(PlanError, match=r'^steps\[0\]\.pivot: unknown step "pivot"'):
        compile_pipeline({"steps": [{"pivot": {}}]})
    with pytest.raises(PlanError, match=r'^steps\[0\]\.scan\.path: unknown key "path"'):
        compile_pipeline({"steps": [{"scan": {"path": "x.csv"}}]})
    with pytest.raises(PlanError, match=r"^steps: List should have at least 1 item"):
        compile_pipeline({"steps": []})


def test_sigterm_mid_sort_cleans_spill_and_output(tmp_path: Path, spill_dir: Path) -> None:
    import os
    import signal
    import time

    rng = np.random.default_rng(0)
    n = 1_000_000
    pcsv.write_csv(
        pa.table({"k": rng.integers(0, 10**9, n), "v": rng.random(n)}), tmp_path / "big.csv"
    )
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "p.yaml").write_text(
        'steps:\n  - scan: { source: "big.csv" }\n  - sort: { by: ["k"] }\n'
        '  - sink: { destination: "out/sorted.csv", format: "csv" }\n'
    )
    cmd = [sys.executable, "-m", "emsqrt", "run", "p.yaml", "--mem-cap", "4MB"]
    proc = subprocess.Popen(
        [*cmd, "--spill-dir", str(spill_dir)], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        # Wait until the sort has spilled (segments in the run's directory), then stop it.
        while not any(p.is_file() for p in spill_dir.rglob("*")):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the sort never spilled"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(spill_dir.iterdir()) == []
    assert list(out.iterdir()) == []


def test_explain_shows_the_filter_pushed_into_the_scan_and_counts_one_row(
    tmp_path: Path, spill_dir: Path
) -> None:
    """The optimizer moves the filter into the scan: --explain says so on the scan's line
    (the filter is no node of its own any more), and one row is "1 row", not "1 rows"."""
    pcsv.write_csv(pa.table({"id": [1, 2, 3], "amount": [5, 2000, 7]}), tmp_path / "t.csv")
    (tmp_path / "job.yaml").write_text(
        'steps:\n  - scan: { source: "t.csv" }\n  - filter: { expr: "amount > 1000" }\n'
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "emsqrt",
            "run",
            "job.yaml",
            "--explain",
            "--spill-dir",
            str(spill_dir),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    scan = next(line for line in proc.stdout.splitlines() if line.lstrip().startswith("scan ["))
    assert 'where ("amount" > 1000)' in scan, proc.stdout
    assert "actual 1 row /" in scan, proc.stdout
    assert "\n1 row in " in f"\n{proc.stdout}", proc.stdout
    assert "1 rows" not in proc.stdout
    got = duck(f"SELECT * FROM read_csv('{tmp_path / 't.csv'}') WHERE amount > 1000")
    assert got.num_rows == 1
