"""The README's examples run as written (in a scratch directory) and print what they say."""

import json
import re
import runpy
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def _run_block(which: int | str, tmp_path, monkeypatch, capsys) -> list[str]:
    """Run the README's python block number ``which``, or the first one holding that text."""
    blocks = re.findall(r"```python[^\n]*\n(.*?)```", README.read_text(), flags=re.S)
    index = which if isinstance(which, int) else next(i for i, b in enumerate(blocks) if which in b)
    script = tmp_path / f"example{index}.py"
    script.write_text(blocks[index])
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out.splitlines()


def test_types_example_runs(tmp_path, monkeypatch, capsys):
    out = _run_block(0, tmp_path, monkeypatch, capsys)
    assert out[0].startswith('{"fields":[{"name":"uid","nullable":true,"type":"i64"}')
    hashes = json.loads(out[2])
    assert hashes[0] == hashes[2] != hashes[1]


def test_expression_example_runs(tmp_path, monkeypatch, capsys):
    out = _run_block(1, tmp_path, monkeypatch, capsys)
    assert out[0] == "bool8 [False, True, False]"
    assert out[1] == """(("amount" > 1000) AND ("region" IN ('eu', 'us')))"""
    assert out[2].startswith('{"kind":"binary"')


def test_http_kit_example_runs(tmp_path, monkeypatch, capsys):
    out = _run_block("error_from_response(404", tmp_path, monkeypatch, capsys)
    assert (
        out[0]
        == "{'error': \"no dataset 'sales'\", 'type': 'not_found', 'details': {'name': 'sales'}}"
    )
    assert out[1] == "NotFoundError 404 not_found no dataset 'sales'"


def test_vectors_example_runs(tmp_path, monkeypatch, capsys):
    out = _run_block("browser_refusal(", tmp_path, monkeypatch, capsys)
    assert out[0] == "{'error': 'OutOfRangeError'}"
    assert out[1] == "{'values': [1.152921504606847e+18, None]}"
    assert out[2].startswith('column "u" of type u8: unsigned integers')


def test_cli_kit_example_runs(tmp_path, monkeypatch, capsys):
    out = _run_block("print_table(", tmp_path, monkeypatch, capsys)
    assert out == ["id,cells", '1,"[[null, 1]]"', "2,"]


def test_users_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python[^\n]*\n(.*?)```", README.read_text(), flags=re.S)
    out = _run_block(
        next(i for i, b in enumerate(blocks) if "UserStore(" in b), tmp_path, monkeypatch, capsys
    )
    assert out[0] == "[('alice', False), ('root', True)]"
    assert out[1] == "False"
    assert out[2] == out[3] == "wrong user name or password"
    assert out[4].startswith("no user 'alice' in ")
