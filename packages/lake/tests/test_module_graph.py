"""Lake's modules form no import loop: each imports alone, and the graph of ``lake.*`` imports
(every ``import``, also under ``TYPE_CHECKING`` and inside functions) is acyclic."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lake

SRC = Path(lake.__file__).parent
MODULES = sorted(
    f"lake.{p.stem}" for p in SRC.glob("*.py") if p.stem not in ("__init__", "__main__")
)


def imports_of(module: str) -> set[str]:
    """The ``lake.*`` modules ``module`` imports anywhere in its source (the package itself
    as ``lake``)."""
    path = SRC / (module.removeprefix("lake.") + ".py")
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = f"lake.{node.module}" if node.module else "lake"
            elif node.level == 0 and node.module and node.module.split(".")[0] == "lake":
                base = node.module
            else:
                continue
            if base == "lake":  # `from . import x`: x is a submodule or a name of __init__
                for alias in node.names:
                    sub = f"lake.{alias.name}"
                    found.add(sub if sub in MODULES else "lake")
            else:
                found.add(base)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lake"}
    found.discard(module)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (cycle := visit(m)) is not None:
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)) is not None:
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_lake_modules_import_no_module_that_imports_them_back() -> None:
    graph = {m: imports_of(m) for m in MODULES}
    # the package's __init__ re-exports the public API; modules below it must not use it
    users_of_init = sorted(m for m, deps in graph.items() if "lake" in deps)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"
    assert users_of_init == [], users_of_init  # nothing below it imports the package itself


def test_the_node_parts_get_interfaces_not_the_node() -> None:
    """The parts a node wires (cluster, its parts, flight, query, distributed) never import
    the node: each gets what it needs from ``LakeNode.start_cluster``."""
    parts = ["cluster", "gossip", "replication", "scrub", "flight", "query", "distributed"]
    for part in parts:
        deps = imports_of(f"lake.{part}")
        assert "lake.node" not in deps, part
        assert "lake.cluster" not in deps or part == "cluster", part


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
