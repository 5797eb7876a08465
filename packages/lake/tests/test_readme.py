"""The README's example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_readme_example_runs(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"```python[^\n]*\n(.*?)```", text, re.S)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "'state': 'committed'" in out.stdout
    assert "[[0, 334], [1, 333], [2, 333]]" in out.stdout
