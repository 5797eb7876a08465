"""platform_core.testing.import_graph: a package's import graph read from its source, and its
circles (every package's graph is checked in integration/test_import_graph.py)."""

from __future__ import annotations

from pathlib import Path

from platform_core.testing import find_cycle, import_cycles, import_graph


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A circle closed by a deferred import, a ``TYPE_CHECKING`` one, a relative one from a
    subpackage, and a name taken from the package's ``__init__`` are all found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n"
    )
    (pkg / "a.py").write_text("def f():\n    from .sub.b import B\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import A\nimport os\n"
    )
    (pkg / "c.py").write_text("from pkg import A\n")  # through the package's __init__
    graph = import_graph(pkg)
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.a"},
        "pkg.c": {"pkg"},
    }
    assert import_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
    (pkg / "a.py").write_text("from . import c\n")  # now a -> c -> pkg -> a
    (pkg / "d.py").write_text("from . import e\n")  # and a second, separate circle
    (pkg / "e.py").write_text("import pkg.d\n")
    circles = sorted(sorted(set(c)) for c in import_cycles(import_graph(pkg)))
    assert circles == [["pkg", "pkg.a", "pkg.c"], ["pkg.d", "pkg.e"]]
    assert find_cycle({"x": {"y"}, "y": set()}) is None
