"""No function in the workspace's source is longer than 80 lines (issue 27): a longer one is
split into parts that have names. The few that other work owns right now are listed in
``ALLOWED`` with who owns them; the list only shrinks: an entry whose function is gone or
now short enough fails too, so it is removed when it is fixed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80
SOURCES = sorted([*ROOT.glob("packages/*/src"), ROOT / "apps/gateway/src"])
"""Every package's ``src/``."""

ALLOWED: dict[str, str] = {
    "packages/elytra/src/elytra/driver.py::_execute_once": "elytra performance work (issue 27)",
    "packages/elytra/src/elytra/stages.py::cut": "elytra performance work (issue 27)",
    "packages/elytra/src/elytra/sqlplan.py::project": "elytra performance work (issue 27)",
}
"""``"path::function"`` -> who is splitting it. Remove an entry when its function is split."""


def function_lengths(path: Path, root: Path = ROOT) -> dict[str, int]:
    """``"path::name"`` -> lines (from ``def`` to its last line, decorators not counted) of
    every function and method in ``path``, nested ones included; of two functions with one
    name in a file, the longer."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    rel = path.relative_to(root).as_posix()
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            key = f"{rel}::{node.name}"
            found[key] = max(found.get(key, 0), node.end_lineno - node.lineno + 1)
    return found


def all_lengths(sources: list[Path], root: Path = ROOT) -> dict[str, int]:
    lengths: dict[str, int] = {}
    for src in sources:
        for path in sorted(src.rglob("*.py")):
            lengths |= function_lengths(path, root)
    return lengths


def problems(lengths: dict[str, int], allowed: dict[str, str]) -> list[str]:
    """What is wrong: a function over ``MAX_LINES`` not allowed, and an allowed one that is
    gone or no longer over."""
    found = [
        f"{key} is {n} lines (at most {MAX_LINES}): split it into parts that have names"
        for key, n in sorted(lengths.items())
        if n > MAX_LINES and key not in allowed
    ]
    for key in sorted(allowed):
        if key not in lengths:
            found.append(f"{key} is allowed but no longer exists: remove it from ALLOWED")
        elif lengths[key] <= MAX_LINES:
            found.append(f"{key} is {lengths[key]} lines now: remove it from ALLOWED")
    return found


def test_sources_are_found() -> None:
    lengths = all_lengths(SOURCES)
    assert len(SOURCES) >= 7, SOURCES
    assert len(lengths) > 1000, "the scan found few functions: it is looking in the wrong place"


def test_no_function_is_longer_than_80_lines() -> None:
    assert problems(all_lengths(SOURCES), ALLOWED) == []


def _write(tmp: Path, body_lines: int) -> Path:
    src = tmp / "pkg" / "src"
    src.mkdir(parents=True)
    body = "".join(f"    x{i} = {i}\n" for i in range(body_lines))
    (src / "mod.py").write_text(f"def short():\n    return 1\n\n\ndef planted():\n{body}")
    return src


def test_a_planted_long_function_fails(tmp_path: Path) -> None:
    src = _write(tmp_path, MAX_LINES)  # def line + 80 = 81 lines
    lengths = all_lengths([src], tmp_path)
    assert lengths["pkg/src/mod.py::planted"] == MAX_LINES + 1
    assert problems(lengths, {}) == [
        f"pkg/src/mod.py::planted is 81 lines (at most {MAX_LINES}): split it into parts "
        "that have names"
    ]
    assert problems(lengths, {"pkg/src/mod.py::planted": "someone"}) == []


def test_an_allowed_function_that_was_split_or_removed_fails(tmp_path: Path) -> None:
    src = _write(tmp_path, MAX_LINES - 1)  # exactly 80 lines: allowed no more
    lengths = all_lengths([src], tmp_path)
    assert problems(lengths, {"pkg/src/mod.py::planted": "someone"}) == [
        "pkg/src/mod.py::planted is 80 lines now: remove it from ALLOWED"
    ]
    assert problems(lengths, {"pkg/src/mod.py::gone": "someone"}) == [
        "pkg/src/mod.py::gone is allowed but no longer exists: remove it from ALLOWED"
    ]
