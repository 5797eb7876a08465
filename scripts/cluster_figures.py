"""Render the cluster suites' measured figures into the README, between its markers.

The chaos and soak suites (integration/test_cluster_chaos.py, test_cluster_soak.py) record
what they measured as JSON under `.reports/figures/` (integration/figures.py); this writes
one Markdown table of them between `<!-- cluster-figures:start -->` and
`<!-- cluster-figures:end -->` in README.md, replacing what was there. The `integration` nox
session runs it after its tests when figures exist.

    python scripts/cluster_figures.py [--figures DIR] [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- cluster-figures:start -->"
END = "<!-- cluster-figures:end -->"
SUITES = ("chaos", "soak")
"""Their order in the table; a file of another suite comes after them, by name."""


class FiguresError(Exception):
    """A figures file or the README is not as expected (the message says what to do)."""


def load(directory: Path) -> list[dict[str, Any]]:
    """Every figures file in ``directory``, the known suites first."""
    files = sorted(directory.glob("*.json"), key=lambda p: (_rank(p.stem), p.stem))
    out = []
    for path in files:
        try:
            data = json.loads(path.read_text())
            figures = data["figures"]
            if not isinstance(figures, dict):
                raise TypeError("figures is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise FiguresError(f"{path}: not a figures file ({exc}); delete it and rerun") from exc
        out.append({"suite": data.get("suite", path.stem), "figures": figures})
    return out


def _rank(suite: str) -> int:
    return SUITES.index(suite) if suite in SUITES else len(SUITES)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _value(fig: dict[str, Any]) -> str:
    unit = fig.get("unit") or ""
    text = f"{fig['value']} {unit}".strip() if unit not in ("%",) else f"{fig['value']} %"
    if fig.get("met") is True:
        return f"{text} (met)"
    if fig.get("met") is False:
        return f"**{text} (missed)**"
    return text


def table(suites: list[dict[str, Any]]) -> str:
    """The Markdown table: suite, figure, value, target, run date, mode."""
    rows = [
        "| suite | figure | value | target | run date | mode |",
        "|---|---|---|---|---|---|",
    ]
    for suite in suites:
        for key in sorted(suite["figures"]):
            fig = suite["figures"][key]
            cells = (
                suite["suite"],
                fig.get("label", key),
                _value(fig),
                fig.get("target", ""),
                fig.get("run_date", ""),
                fig.get("mode", ""),
            )
            rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def render(readme: str, body: str) -> str:
    """``readme`` with ``body`` between the markers (each must appear once, START first)."""
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise FiguresError(
            f"the README needs {START} and {END} once each; add them where the table goes"
        )
    head, rest = readme.split(START)
    old, tail = rest.split(END)
    if END in head:
        raise FiguresError(f"{END} comes before {START} in the README; swap them")
    del old
    return f"{head}{START}\n{body}\n{END}{tail}"


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", type=Path, default=ROOT / ".reports" / "figures")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    try:
        suites = load(args.figures) if args.figures.is_dir() else []
        if not suites:
            print(f"no figures in {args.figures}: README left as it is", file=sys.stderr)
            return 0
        text = render(args.readme.read_text(), table(suites))
        write_atomic(args.readme, text)
    except (FiguresError, OSError) as exc:
        print(f"cluster_figures: {exc}", file=sys.stderr)
        return 1
    print(f"cluster figures of {', '.join(s['suite'] for s in suites)} written to {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
