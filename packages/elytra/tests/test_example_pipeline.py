"""The README's `elytra run pipeline.yaml` is a real file: `examples/pipeline.yaml` runs with
the installed command and gives DuckDB's answer on the same CSV; the README shows the file as
it is."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
README = EXAMPLES.parent / "README.md"


def test_the_example_pipeline_runs_and_matches_duckdb(tmp_path: Path) -> None:
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)  # the embedded home (.platform) is made beside the file
    out = subprocess.run(
        [str(Path(sys.executable).with_name("elytra")), "run", "pipeline.yaml", "--json"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert [c["name"] for c in got["columns"]] == ["customer", "revenue", "orders"]
    want = duckdb.sql(
        f"""SELECT customer, sum(quantity * price) AS revenue, count(*) AS orders
            FROM read_csv('{work / "sales.csv"}') WHERE quantity > 1
            GROUP BY customer ORDER BY revenue DESC, customer"""
    ).fetchall()
    assert [tuple(r) for r in got["rows"]] == [tuple(r) for r in want]
    assert [r[0] for r in want] == ["ada", "cy", "dee"]  # what the README says it prints


def test_the_readme_shows_the_example_file() -> None:
    text = README.read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == yaml.safe_load((EXAMPLES / "pipeline.yaml").read_text())


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("elytra")), "run", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_pipeline_file_reads_its_local_paths_from_beside_it(tmp_path: Path) -> None:
    """`elytra run packages/elytra/examples/pipeline.yaml` from the checkout's root found no
    `sales.csv` (relative paths were read from the current directory only); they are read from
    the file's directory when something matches there, else from the current directory."""
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = _run([str(work / "pipeline.yaml")], elsewhere)
    assert out.returncode == 0, out.stderr
    assert [r[0] for r in json.loads(out.stdout)["rows"]] == ["ada", "cy", "dee"]
    # a path that matches only from the current directory still reads from there
    doc = yaml.safe_load((work / "pipeline.yaml").read_text())
    doc["source"] = {"csv": "data/*.csv"}
    (work / "cwd.yaml").write_text(yaml.safe_dump(doc))
    (elsewhere / "data").mkdir()
    shutil.copy(work / "sales.csv", elsewhere / "data" / "a.csv")
    out = _run([str(work / "cwd.yaml")], elsewhere)
    assert out.returncode == 0, out.stderr
    assert [r[0] for r in json.loads(out.stdout)["rows"]] == ["ada", "cy", "dee"]
