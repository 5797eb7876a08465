"""The installed ``emsqrt`` as a user runs it: literal output, --json/--csv against DuckDB, cap
units, job-file errors at the user's key path and line, the JSON Schema, no traceback."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
import yaml
from oracle import assert_same_rows, duck

from emsqrt.dsl import _Loader
from emsqrt.job import job_schema, job_schema_text

EMSQRT = Path(sys.executable).parent / "emsqrt"
PACKAGE = Path(__file__).resolve().parents[1]
SCHEMA_FILE = PACKAGE / "emsqrt-job.schema.json"

JOB = """\
steps:
  - scan:
      source: "data/logs.csv"
  - filter:
      expr: "amount > 1000"
  - join:
      right:
        - scan: { source: "data/users.csv" }
      on: [uid]
      how: left
  - aggregate:
      group_by: ["region"]
      aggs: ["COUNT(*)", "SUM(amount)"]
  - sort:
      by: ["region"]
"""
ORACLE = (
    "SELECT region, count(*) AS count, sum(amount) AS sum_amount "
    "FROM read_csv('{d}/logs.csv') l LEFT JOIN read_csv('{d}/users.csv') u ON l.uid = u.uid "
    "WHERE amount > 1000 GROUP BY region ORDER BY region NULLS LAST"
)


def emsqrt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EMSQRT), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The run failed the way bad input should: exit 2, one ``error:`` line, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(13)
    n = 5000
    (d / "data").mkdir()
    logs = pa.table(
        {
            "uid": pa.array([f"u{x}" for x in rng.integers(0, 300, n)]),
            "amount": pa.array(rng.uniform(0, 3000, n).round(2), mask=rng.random(n) < 0.1),
        }
    )
    pcsv.write_csv(logs, d / "data" / "logs.csv")
    regions = ["eu", "us", "[[null, 1]]", "[bold]apac[/bold]"]
    users = pa.table(
        {
            "uid": [f"u{i}" for i in range(0, 300, 2)],
            "region": [regions[i % 4] for i in range(150)],
        }
    )
    pcsv.write_csv(users, d / "data" / "users.csv")
    (d / "job.yaml").write_text(JOB)
    return d


def test_table_prints_values_literally_with_platform_types_and_null(project: Path) -> None:
    proc = emsqrt("run", "job.yaml", "--mem-cap", "64MiB", cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # rich markup would print "[[null, 1]]" as "[]" and "[bold]apac[/bold]" as "apac"
    assert "[[null, 1]]" in out
    assert "[bold]apac[/bold]" in out
    header = out[out.index("region") :].splitlines()
    assert re.search(r"region\s+\S\s+count\s+\S\s+sum_amount", header[0])
    assert re.search(r"utf8\s+\S\s+i64\s+\S\s+f64", header[1])
    # the users without a region (odd uids, left join): the NULL group, shown as NULL
    assert re.search(r"^\s*NULL\s", out, flags=re.MULTILINE)


def _oracle(project: Path) -> pa.Table:
    return duck(ORACLE.format(d=project / "data"))


def test_json_output_is_duckdbs_answer(project: Path) -> None:
    proc = emsqrt("run", "job.yaml", "--mem-cap", "256KiB", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["columns"] == [
        {"name": "region", "type": "utf8"},
        {"name": "count", "type": "i64"},
        {"name": "sum_amount", "type": "f64"},
    ]
    got = pa.table({c["name"]: [r[i] for r in body["rows"]] for i, c in enumerate(body["columns"])})
    want = _oracle(project)
    assert body["row_count"] == want.num_rows == 5
    assert_same_rows(got, want.cast(got.schema), ordered=True)


def _read_csv(source: pa.Buffer | Path) -> pa.Table:
    """CSV as we write it: an empty field is NULL, a quoted empty one the empty string."""
    options = pcsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False)
    return pcsv.read_csv(source, convert_options=options)


def test_csv_output_is_duckdbs_answer(project: Path) -> None:
    proc = emsqrt("run", "job.yaml", "--mem-cap", "256KiB", "--csv", cwd=project)
    assert proc.returncode == 0, proc.stderr
    got = _read_csv(pa.py_buffer(proc.stdout.encode()))
    assert got.column_names == ["region", "count", "sum_amount"]
    want = _oracle(project)
    assert_same_rows(got, want.cast(got.schema), ordered=True)


def test_json_and_csv_together_are_refused(project: Path) -> None:
    line = one_error_line(emsqrt("run", "job.yaml", "--json", "--csv", cwd=project))
    assert "exclusive" in line


SPELLINGS = {
    "64MB": 64 * 10**6,
    "64mb": 64 * 10**6,
    "64 MB": 64 * 10**6,
    "64000KB": 64 * 10**6,
    "64MiB": 64 * 2**20,
    "64 mib": 64 * 2**20,
    "65536KiB": 64 * 2**20,
    "1GB": 10**9,
    "1GiB": 2**30,
    "0.5 GiB": 2**29,
}


def test_every_unit_spelling_sets_the_cap(project: Path) -> None:
    def cap_of(spelling: str) -> int:
        manifest = project / f"m-{spelling.replace(' ', '_')}.json"
        proc = emsqrt(
            "run", "job.yaml", "--mem-cap", spelling, "--manifest", str(manifest), cwd=project
        )
        assert proc.returncode == 0, proc.stderr
        return int(json.loads(manifest.read_text())["memory"]["cap_bytes"])

    with ThreadPoolExecutor(2) as pool:
        got = dict(zip(SPELLINGS, pool.map(cap_of, SPELLINGS), strict=True))
    assert got == SPELLINGS


@pytest.mark.parametrize("cap", ["64", "64M", "64 megs"])
def test_a_cap_without_a_known_unit_is_refused(project: Path, cap: str) -> None:
    line = one_error_line(emsqrt("run", "job.yaml", "--mem-cap", cap, cwd=project))
    assert line.startswith("error: --mem-cap: ")
    assert "64MB = 64,000,000 bytes" in line
    assert "64MiB = 67,108,864 bytes" in line


def test_help_says_which_unit_is_which(project: Path) -> None:
    proc = emsqrt("run", "--help", cwd=project)
    text = " ".join(proc.stdout.replace("│", " ").split())
    assert "KB, MB, GB are powers of 1000 (64MB = 64,000,000 bytes)" in text
    assert "KiB, MiB, GiB powers of 1024 (64MiB = 67,108,864 bytes)" in text


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "group_by:",
            "groupby:",
            'job.yaml, line 12: steps[3].aggregate.groupby: unknown key "groupby"; '
            'did you mean "group_by"?',
        ),
        (
            "on: [uid]",
            "onn: [uid]",
            'line 9: steps[2].join.onn: unknown key "onn"; did you mean "on"?',
        ),
        (
            "- sort:",
            "- sorted:",
            'line 14: steps[4].sorted: unknown step "sorted"; did you mean "sort"?',
        ),
        ("steps:", "step:", 'line 1: step: unknown key "step"; did you mean "steps"?'),
        (
            "source: { source",
            "source: { src",
            'line 8: steps[2].join.right[0].scan.src: unknown key "src"',
        ),
        ("how: left", "how: outer", "line 10: steps[2].join.how: Input should be 'inner', 'left'"),
        (
            "amount > 1000",
            "amout > 1000",
            'line 4: steps[1].filter: column "amout" not found; did you mean "amount"?',
        ),
    ],
)
def test_job_errors_name_the_users_key_path_and_line(
    project: Path, old: str, new: str, expected: str
) -> None:
    text = JOB.replace("- scan: { source", "- scan: { source").replace(old, new, 1)
    if old == "source: { source":
        text = JOB.replace('scan: { source: "data/users.csv" }', 'scan: { src: "data/users.csv" }')
    assert text != JOB
    (project / "bad.yaml").write_text(text)
    line = one_error_line(emsqrt("run", "bad.yaml", cwd=project))
    assert expected in line.replace("bad.yaml", "job.yaml"), line


def test_yaml_syntax_error_says_line_and_column(project: Path) -> None:
    (project / "broken.yaml").write_text(JOB.replace('by: ["region"]', 'by: ["region"'))
    line = one_error_line(emsqrt("run", "broken.yaml", cwd=project))
    assert re.match(r"error: broken\.yaml, line \d+ column \d+: not valid YAML: ", line), line
    (project / "tabs.yaml").write_text("steps:\n\t- scan: x.csv\n")
    line = one_error_line(emsqrt("run", "tabs.yaml", cwd=project))
    assert "tabs.yaml, line 2 column 1: not valid YAML" in line


def test_missing_file_and_unknown_step_and_bad_expression(project: Path) -> None:
    assert "cannot read pipeline file nope.yaml" in one_error_line(
        emsqrt("run", "nope.yaml", cwd=project)
    )
    assert "cannot read pipeline file" in one_error_line(emsqrt("plan", "nope.yaml", cwd=project))
    (project / "expr.yaml").write_text(JOB.replace("amount > 1000", "amount >"))
    line = one_error_line(emsqrt("run", "expr.yaml", cwd=project))
    assert "line 4: steps[1].filter: expected an expression" in line


def test_schema_command_and_file_are_what_the_models_generate(project: Path) -> None:
    assert SCHEMA_FILE.read_text() == job_schema_text(), (
        "the committed schema drifted from the models: run "
        "`emsqrt schema > packages/emsqrt/emsqrt-job.schema.json`"
    )
    proc = emsqrt("schema", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SCHEMA_FILE.read_text()


def _yaml_jobs() -> list[object]:
    """Every YAML job the README and the tests use."""
    blocks = re.findall(r"```yaml\n(.*?)```", (PACKAGE / "README.md").read_text(), re.DOTALL)
    from test_dsl_cli import SEED_EXAMPLE

    return [yaml.load(b, Loader=_Loader) for b in [*blocks, SEED_EXAMPLE, JOB]]


def test_the_schema_accepts_every_job_we_document_and_refuses_a_misspelling() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(job_schema())
    jsonschema.Draft202012Validator.check_schema(job_schema())
    docs = _yaml_jobs()
    assert len(docs) >= 3
    for doc in docs:
        validator.validate(doc)
    validator.validate(
        yaml.load("- scan: a.csv\n- filter: 'x > 1'\n- project: [x]\n", Loader=_Loader)
    )
    bad = yaml.load(JOB.replace("group_by:", "groupby:"), Loader=_Loader)
    assert not validator.is_valid(bad)
    assert not validator.is_valid({"steps": [{"scan": "a.csv", "filter": "x > 1"}]})


def _mutations(seed: int, n: int) -> list[tuple[str, str, bool]]:
    """Bad job files derived from JOB: (name, text, surely_bad). Misspelled keys and wrong
    value types are always bad; cuts and swapped characters usually are."""
    rng = random.Random(seed)
    keys = sorted(set(re.findall(r"(\w+):", JOB)))
    out: list[tuple[str, str, bool]] = []
    for key in keys:
        out.append((f"key-{key}", JOB.replace(f"{key}:", f"{key}x:", 1), True))
    for value in ['"data/logs.csv"', '"amount > 1000"', "[uid]", "left", '["region"]']:
        out.append(
            (f"type-{value}", JOB.replace(value, rng.choice(["42", "{}", "[[]]", "true"]), 1), True)
        )
    noise = [":", "[", "]", "{", "\t", "'", '"', "- ", "&a", "*b", "!!int"]
    while len(out) < n:
        i = rng.randrange(len(JOB))
        cut = rng.random() < 0.5
        text = JOB[:i] if cut else JOB[:i] + rng.choice(noise) + JOB[i + 1 :]
        out.append((f"cut-{len(out)}", text, False))
    return out


@pytest.mark.timeout(600)  # 30 processes, each importing pyarrow
def test_no_traceback_on_mutated_job_files(tmp_path: Path, project: Path) -> None:
    (tmp_path / "data").symlink_to(project / "data")
    cases = _mutations(seed=13, n=30)

    def check(numbered: tuple[int, tuple[str, str, bool]]) -> tuple[str, int, str]:
        i, (name, text, _) = numbered
        path = tmp_path / f"case-{i}.yaml"
        path.write_text(text)
        proc = emsqrt("run", path.name, "--mem-cap", "1MiB", "--json", cwd=tmp_path)
        return name, proc.returncode, proc.stderr

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(check, enumerate(cases)))
    failed = 0
    for (name, code, stderr), (_, _, surely_bad) in zip(results, cases, strict=True):
        assert "Traceback" not in stderr, (name, stderr)
        if surely_bad or code != 0:
            assert code == 2, (name, code, stderr)
            assert len(stderr.splitlines()) == 1, (name, stderr)
            assert stderr.startswith("error: "), (name, stderr)
            failed += 1
    assert failed >= 20


def test_a_sink_pipeline_reports_its_file_and_refuses_csv_before_running(project: Path) -> None:
    (project / "sink.yaml").write_text(JOB + "  - sink: out/regions.csv\n")
    line = one_error_line(emsqrt("run", "sink.yaml", "--mem-cap", "1MiB", "--csv", cwd=project))
    assert "ends in a sink" in line
    assert not (project / "out").exists()
    proc = emsqrt("run", "sink.yaml", "--mem-cap", "1MiB", "--json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["row_count"] == 5
    assert body["outputs"][0]["path"] == str(project / "out" / "regions.csv")
    assert_same_rows(_read_csv(project / "out" / "regions.csv"), _oracle(project), ordered=True)
