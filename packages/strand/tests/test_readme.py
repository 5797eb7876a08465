"""The README's Quick start runs as written and prints what the README says it prints."""

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def test_quick_start_prints_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text()
    code = re.findall(r"```python[^\n]*\n(.*?)```", text, flags=re.S)[0]
    shown = re.findall(r"This prints:\n\n```text\n(.*?)```", text, flags=re.S)[0]
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out == shown
