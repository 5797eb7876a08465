"""``docs/architecture.md`` names only what exists: every file path and every dotted module
name (with the attribute it names) in backticks is found in this repository (issue 27)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("platform_core", "platform_gateway", "lake", "elkyn", "elytra", "emsqrt", "strand")
"""Top-level modules of the workspace: a dotted name starting with one is checked."""
SEARCHED = ("packages", "apps", "integration", "scripts", "bench", "docs", "deps")
"""Where a path given without its package (``platform_core/rowhash.py``) is looked for."""

_CODE = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"^[\w./-]+\.(py|md|sh|txt|toml|yaml|yml|json)$")
_DOTTED = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?$")


def named(text: str) -> tuple[list[str], list[str]]:
    """The file paths and the dotted names of the workspace's modules ``text`` puts in
    backticks (a call's arguments dropped: ``emsqrt.run(on_batch=...)`` is ``emsqrt.run``)."""
    paths, dotted = [], []
    for code in _CODE.findall(text):
        code = code.strip()
        if _PATH.match(code) and ("/" in code or code.endswith(".py")):
            paths.append(code)
            continue
        m = _DOTTED.match(code)
        if m and m.group(1).split(".")[0] in PACKAGES:
            dotted.append(m.group(1))
    return paths, dotted


def path_problem(path: str) -> str | None:
    """None if ``path`` is a file in the repository (from its root, or as the end of a path
    under one of ``SEARCHED``), else what is wrong."""
    target = (ROOT / path).resolve()
    if not target.is_relative_to(ROOT):
        return f"`{path}` is outside the repository"
    if target.is_file():
        return None
    for top in SEARCHED:
        for found in (ROOT / top).rglob(Path(path).name):
            if ".venv" in found.parts or "node_modules" in found.parts:
                continue
            if found.as_posix().endswith("/" + path.lstrip("./")):
                return None
    return f"`{path}`: no such file in the repository"


def dotted_problem(name: str) -> str | None:
    """None if the longest importable prefix of ``name`` is a module and the rest are its
    attributes, else what is missing."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            value: object = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not module_name.startswith(exc.name):
                return f"`{name}`: importing {module_name} fails: {exc}"
            continue
        for attr in parts[cut:]:
            if not hasattr(value, attr):
                return f"`{name}`: {'.'.join(parts[:cut])} has no {attr!r}"
            value = getattr(value, attr)
        return None
    return f"`{name}`: no such module"


def problems(text: str) -> list[str]:
    paths, dotted = named(text)
    found = [path_problem(p) for p in paths] + [dotted_problem(d) for d in dotted]
    return [p for p in found if p is not None]


def test_every_module_path_the_architecture_doc_names_exists() -> None:
    text = DOC.read_text()
    paths, dotted = named(text)
    assert len(paths) >= 10, paths  # not vacuous
    assert len(dotted) >= 20, dotted
    assert problems(text) == []


@pytest.mark.parametrize(
    ("planted", "said"),
    [
        ("`lake/nosuch.py`", "no such file"),
        ("`packages/elkyn/src/elkyn/server/protocol.py`", "no such file"),
        ("`../shared/ARCHITECTURE.md`", "outside the repository"),
        ("`elkyn.plugin.current_writer()`", "has no 'current_writer'"),
        ("`elytra.nosuch`", "has no 'nosuch'"),
        ("`lake.api.holder.NodeHolder.nothing`", "has no 'nothing'"),
    ],
)
def test_the_check_catches_a_false_name(planted: str, said: str) -> None:
    good = "`platform_core/rowhash.py`, `elytra.stages`, `emsqrt.run(on_batch=...)`"
    assert problems(good) == []
    found = problems(f"{good} and {planted}")
    assert len(found) == 1, found
    assert said in found[0]


def test_the_drawn_start_order_is_the_gateways() -> None:
    from platform_core import discover_plugins, plugin_order

    drawn = re.search(r"start order: ([\w, -]+) \(stop", DOC.read_text())
    assert drawn is not None, "the plugin graph's start order line is missing"
    ours = [p for p in discover_plugins() if not p.name.startswith(("test", "planted"))]
    assert [p.name for p in plugin_order(ours)] == drawn.group(1).split(", ")
