"""No package's modules import one another in a circle.

Each workspace package's import graph (``platform_core.testing.import_graph``: read from the
source, nothing imported) must be acyclic. Every ``import`` counts: at module level, inside a
function (deferring an import hides a circle from the interpreter, it does not remove it) and
under ``if TYPE_CHECKING:`` (a type is a dependency on the other module's design). Where two
modules need each other's names, the shared part moves to a module below both, or the lower
one says what it needs as a ``typing.Protocol`` that the higher one satisfies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_core.testing import import_cycles, import_graph

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    p.parent
    for p in [*ROOT.glob("packages/*/src/*/__init__.py"), *ROOT.glob("apps/*/src/*/__init__.py")]
)


def test_every_workspace_package_is_checked() -> None:
    names = {p.name for p in PACKAGES}
    assert {"platform_core", "elkyn", "elytra", "emsqrt", "lake", "strand"} <= names, names
    assert "platform_gateway" in names, names


@pytest.mark.parametrize("source", PACKAGES, ids=lambda p: p.name)
def test_the_package_imports_in_no_circle(source: Path) -> None:
    graph = import_graph(source)
    assert len(graph) > 1, f"{source}: no modules found"
    circles = import_cycles(graph)
    assert circles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)
