"""No function in lake's source is longer than 80 lines (issue 27): a longer one is split into
parts with names. Measured with ``ast``: from its first decorator to its last line, nested
functions and methods included (a nested function counts in its own and its parent's length)."""

from __future__ import annotations

import ast
from pathlib import Path

import lake

SRC = Path(lake.__file__).parent
MAX_LINES = 80


def long_functions(source: str, where: str, limit: int = MAX_LINES) -> list[str]:
    """``where:line name (N lines)`` for each function of ``source`` over ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = (node.end_lineno or node.lineno) - start + 1
            if lines > limit:
                found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_lake_function_is_longer_than_80_lines() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 30, files  # the whole package, subpackages included
    too_long = [f for p in files for f in long_functions(p.read_text(), str(p.relative_to(SRC)))]
    assert too_long == [], "split these into named parts:\n" + "\n".join(too_long)


def test_the_measure_counts_decorators_and_nested_functions() -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(77))
    source = f"@decorator\ndef outer():\n    def inner():\n{body}\n    return inner\n"
    # outer: decorator + def + inner's def + 77 lines + return = 81 lines; inner: 78
    assert long_functions(source, "m.py") == ["m.py:2 outer (81 lines)"]
    assert long_functions(source, "m.py", limit=77) == [
        "m.py:2 outer (81 lines)",
        "m.py:3 inner (78 lines)",
    ]
