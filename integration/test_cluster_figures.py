"""The figures the cluster suites record (integration/figures.py) and their renderer
(scripts/cluster_figures.py), run as CI runs it: a README with markers, a table between them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import figures
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "cluster_figures.py"
README = (
    "# t\n\nbefore\n\n<!-- cluster-figures:start -->\nold\n<!-- cluster-figures:end -->\n\nafter\n"
)


def _render(tmp_path: Path, readme: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "README.md").write_text(readme)
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--figures",
            str(tmp_path / "fig"),
            "--readme",
            str(tmp_path / "README.md"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_record_then_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(figures.FIGURES_DIR_ENV, str(tmp_path / "fig"))
    monkeypatch.delenv("PLATFORM_TESTS_LONG", raising=False)
    figures.record(
        "chaos", "restore", "back to R=2", 4.5, unit="s", target="<= 30 s", met=True, keep="max"
    )
    figures.record(
        "chaos", "restore", "back to R=2", 3.0, unit="s", target="<= 30 s", met=True, keep="max"
    )
    figures.record("soak", "lost", "events lost | out of order", 2, unit="", target="0", met=False)
    figures.record("soak", "ops", "done", "1 / 2 / 3", unit="", target="(reported)")
    data = json.loads((tmp_path / "fig" / "chaos.json").read_text())
    assert data["figures"]["restore"]["value"] == 4.5  # keep="max": the worse of this run
    assert data["figures"]["restore"]["mode"] == "bounded"
    assert not list((tmp_path / "fig").glob(".*tmp"))  # no temp file left behind

    out = _render(tmp_path, README)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "README.md").read_text()
    assert "old" not in text
    assert text.startswith("# t\n\nbefore\n")
    assert text.endswith("after\n")
    table = text.split("<!-- cluster-figures:start -->\n")[1].split(
        "\n<!-- cluster-figures:end -->"
    )[0]
    lines = table.splitlines()
    assert lines[0] == "| suite | figure | value | target | run date | mode |"
    assert lines[2].startswith("| chaos | back to R=2 | 4.5 s (met) | <= 30 s | ")
    assert lines[2].endswith(" | bounded |")
    assert "| soak | events lost \\| out of order | **2 (missed)** | 0 |" in table
    assert "| soak | done | 1 / 2 / 3 | (reported) |" in table
    # rendering again gives the same README (the markers stay, nothing is appended)
    assert _render(tmp_path, text).returncode == 0
    assert (tmp_path / "README.md").read_text() == text


def test_bad_input_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(figures.FIGURES_DIR_ENV, str(tmp_path / "fig"))
    with pytest.raises(ValueError, match="bad suite"):
        figures.record("../x", "k", "l", 1, unit="", target="")
    with pytest.raises(ValueError, match="needs a number"):
        figures.record("soak", "k", "l", "text", unit="", target="", keep="max")
    figures.record("soak", "k", "l", 1, unit="", target="")
    out = _render(tmp_path, "# no markers here\n")
    assert out.returncode == 1
    assert "cluster-figures:start" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert (tmp_path / "README.md").read_text() == "# no markers here\n"  # untouched
    (tmp_path / "fig" / "soak.json").write_text("{not json")
    out = _render(tmp_path, README)
    assert out.returncode == 1
    assert "not a figures file" in out.stderr, out.stderr
    # no figures at all: the README is left as it is
    for f in (tmp_path / "fig").iterdir():
        f.unlink()
    out = _render(tmp_path, README)
    assert out.returncode == 0
    assert (tmp_path / "README.md").read_text() == README
