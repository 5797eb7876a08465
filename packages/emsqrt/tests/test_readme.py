"""The README's Python example runs and the YAML example is the source document's pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}[^\n]*\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_python_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMSQRT_SPILL_DIR", str(tmp_path / "spill"))
    code = _blocks("python")[0].replace("/tmp/emsqrt-spill", str(tmp_path / "spill"))
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
    out = capsys.readouterr().out.splitlines()
    # an integer sum is DuckDB's HUGEINT as Arrow has it: decimal128(38, 0), a Decimal in Python
    assert out[0] == "[{'uid': 'a', 'count': 10000, 'sum_amount': Decimal('22500000')}]"
    assert out[1].startswith("sort [uid asc, sum_amount asc]")


def test_yaml_example_is_the_seed_pipeline() -> None:
    doc = yaml.safe_load(_blocks("yaml")[0])
    assert [next(iter(s)) for s in doc["steps"]] == ["scan", "filter", "aggregate", "sort", "sink"]
