"""Write the browser interpreter's case tables (apps/playground/lib/expr/caseTables.json).

``lower``/``upper`` in the browser must map code points exactly as the Python evaluator does
(``platform_core.expr._strings.duckdb_lower``/``duckdb_upper``: Arrow's simple case mapping
minus the code points DuckDB leaves alone), whatever Unicode version the browser ships. So the
mapping is not taken from ``String.prototype.toLowerCase`` but from this table, generated
from the Python evaluator itself: runs ``[first, last, step, delta]`` (code points ``first``,
``first + step``, ... ``last`` map to themselves plus ``delta``). Run it again after changing
the Python side; ``integration/playground/test_expr_conformance.py`` checks it is current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa

from platform_core.expr._strings import duckdb_lower, duckdb_upper

OUT = Path(__file__).resolve().parents[1] / "apps/playground/lib/expr/caseTables.json"


def runs(mapping: dict[int, int]) -> list[list[int]]:
    """The mapping as runs of equal delta and equal step."""
    out: list[list[int]] = []
    for c in sorted(mapping):
        delta = mapping[c] - c
        if out:
            first, last, step, d = out[-1]
            if d == delta and (c - last == step or (first == last and c - last <= 2)):
                out[-1] = [first, c, c - last, d]
                continue
        out.append([c, c, 1, delta])
    return out


def tables() -> dict[str, list[list[int]]]:
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    text = pa.array([chr(c) for c in points], pa.string())
    result = {}
    for name, kernel in (("lower", duckdb_lower), ("upper", duckdb_upper)):
        mapped = kernel(text).to_pylist()
        mapping = {c: ord(m) for c, m in zip(points, mapped, strict=True) if m != chr(c)}
        result[name] = runs(mapping)
    return result


def render() -> str:
    return json.dumps(tables(), separators=(",", ":")) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else "caseTables.json is stale: run this script")
    OUT.write_text(text)
    print(f"wrote {OUT}")
