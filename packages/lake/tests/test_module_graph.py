"""Lake's modules form no import loop: each imports alone, and the graph of ``lake.*`` imports
(every ``import``, also under ``TYPE_CHECKING`` and inside functions) is acyclic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lake
from platform_core.testing import find_cycle, import_graph

SRC = Path(lake.__file__).parent
MODULES = sorted(
    ".".join(
        ["lake", *p.parent.relative_to(SRC).parts, *([p.stem] if p.stem != "__init__" else [])]
    )
    for p in SRC.rglob("*.py")
    if p.stem != "__main__" and p != SRC / "__init__.py"
)
"""Every module below the package: the subpackages (``lake.sql``) and their modules included."""


GRAPH = import_graph(SRC)


def imports_of(module: str) -> set[str]:
    """The ``lake.*`` modules ``module`` imports anywhere in its source (the package itself
    as ``lake``): ``platform_core.testing.import_graph``, which every package's graph test
    uses (integration/test_import_graph.py)."""
    return GRAPH[module]


def test_the_lake_modules_import_no_module_that_imports_them_back() -> None:
    graph = {m: GRAPH[m] for m in MODULES}
    # the package's __init__ re-exports the public API; modules below it must not use it
    users_of_init = sorted(m for m, deps in graph.items() if "lake" in deps)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"
    assert users_of_init == [], users_of_init  # nothing below it imports the package itself


def test_the_node_parts_get_interfaces_not_the_node() -> None:
    """The parts a node wires (cluster, its parts, flight, query, distributed) never import
    the node: each gets what it needs from ``LakeNode.start_cluster``."""
    parts = [
        "cluster.group",
        "cluster.gossip",
        "cluster.replication",
        "storage.scrub",
        "cluster.flight",
        "sql.engine",
        "sql.distributed",
    ]
    for part in parts:
        deps = imports_of(f"lake.{part}")
        assert "lake.node" not in deps, part
        assert "lake.cluster.group" not in deps or part == "cluster.group", part


ALONE = """
import importlib, sys
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "lake" or m.startswith("lake.")]:
        del sys.modules[loaded]
    importlib.import_module(name)
"""


def test_each_module_imports_alone() -> None:
    """Each module first in a fresh interpreter's view of lake (lake's modules are forgotten
    between imports; third-party ones stay loaded, so this takes seconds, not minutes)."""
    r = subprocess.run(
        [sys.executable, "-c", ALONE, *MODULES], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
