"""elytra uses emsqrt through its public names only: ``emsqrt`` and ``emsqrt.planning``
(issue 33 item 7), so emsqrt's modules can move without breaking the distributed engine."""

from __future__ import annotations

import ast
from pathlib import Path

import emsqrt
import emsqrt.planning

SOURCE = Path(__file__).resolve().parents[1] / "src" / "elytra"
PUBLIC = {"emsqrt", "emsqrt.planning"}


def _emsqrt_imports() -> list[tuple[str, int, str, str]]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "emsqrt":
                for alias in node.names:
                    found.append((path.name, node.lineno, node.module or "", alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "emsqrt":
                        found.append((path.name, node.lineno, alias.name, ""))
    return found


def test_elytra_imports_only_emsqrts_public_modules() -> None:
    found = _emsqrt_imports()
    assert found, "the scan found no emsqrt import at all: it is looking in the wrong place"
    private = [f for f in found if f[2] not in PUBLIC]
    assert private == [], f"import these through emsqrt or emsqrt.planning: {private}"


def test_every_name_it_imports_is_exported() -> None:
    for _, _, module, name in _emsqrt_imports():
        exported = emsqrt.planning.__all__ if module == "emsqrt.planning" else emsqrt.__all__
        assert name in exported or name == "plan", f"{module}.{name} is not in __all__"
