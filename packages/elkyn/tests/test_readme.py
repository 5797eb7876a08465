"""The README's example runs as written and prints what the README says it prints."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def test_readme_example_prints_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text()
    code = re.findall(r"```python[^\n]*\n(.*?)```", text, flags=re.S)[0]
    promised = re.search(r"prints\n\n```text\n(.*?)```", text, flags=re.S)
    assert promised is not None
    script = tmp_path / "example.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out == promised.group(1)
