"""The README's example runs as written (in a scratch directory)."""

import json
import re
import runpy
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    script = tmp_path / "example.py"
    script.write_text(block)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('{"fields":[{"name":"uid","nullable":true,"type":"i64"}')
    hashes = json.loads(out[2])
    assert hashes[0] == hashes[2] != hashes[1]
