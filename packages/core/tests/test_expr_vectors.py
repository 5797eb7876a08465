"""Shared test vectors (platform_core.expr.vectors): seeded, JSON-safe, covering the language.

The browser interpreter must reproduce them (integration/playground/test_expr_conformance.py
runs thousands in Chromium); here: they are deterministic, encode values exactly, reach every
node kind, operator and function, and say what the Python evaluator says.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest

from platform_core.expr import from_dict, parse
from platform_core.expr.browser import BROWSER_UNSUPPORTED, browser_refusal
from platform_core.expr.nodes import BINARY_OPS, FUNCTIONS, UNARY_OPS, Binary, Call, Unary, walk
from platform_core.expr.serde import KINDS
from platform_core.expr.vectors import decode_value, iso_date, iso_timestamp, vector
from platform_core.schema import Schema


def _load(name: str) -> ModuleType:
    qualified = f"_platform_core_tests_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


V = _load("expr_vectors")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # drawing 1,000 cases: ~40 s


@functools.cache
def vectors() -> list[dict[str, Any]]:
    return V.generate(V.DEFAULT_SEED, 1000)  # type: ignore[no-any-return]


def coverage(found: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """(labels of the property test, node kinds / operators / functions) the vectors reach."""
    labels: set[str] = set()
    names: set[str] = set()
    for v in found:
        expr = from_dict(v["expr"])
        labels |= V.labels(expr)
        for node in walk(expr):
            names.add(f"kind {KINDS[type(node)]}")
            if isinstance(node, Binary | Unary):
                names.add(f"op {node.op}")
            if isinstance(node, Call):
                names.add(f"function {node.name}")
    return labels, names


def test_vectors_reach_every_node_kind_operator_and_function() -> None:
    # The set the browser runs: the drawn cases and the hand-picked edges. (Which labels 1,000
    # drawn cases reach alone varies by machine: a clean clone missed CAST AS f64 once.)
    drawn = vectors()
    labels, names = coverage(drawn + V.edge_vectors(len(drawn)))
    assert V.REQUIRED_LABELS - labels == set()
    wanted = {f"kind {k}" for k in KINDS.values()}
    wanted |= {f"op {op}" for op in (*BINARY_OPS, *UNARY_OPS)}
    wanted |= {f"function {name}" for name in FUNCTIONS}
    assert wanted - names == set()


def test_vectors_hold_values_and_every_error_kind() -> None:
    found = vectors()
    assert len(found) >= 1000
    kinds = {v["expected"].get("error", "values") for v in found}
    assert {"values", "OutOfRangeError", "ConversionError", "ExpressionError"} <= kinds
    # and every vector is plain JSON (no NaN or Infinity literals, no Python objects)
    json.loads(json.dumps(found, allow_nan=False))


def test_the_hand_picked_edges_hold_values_and_errors() -> None:
    edges = V.edge_vectors(5000)
    assert len(edges) > 900
    assert [v["id"] for v in edges] == list(range(5000, 5000 + len(edges)))
    kinds = {v["expected"].get("error", "values") for v in edges}
    assert kinds == {"values", "ConversionError", "OutOfRangeError"}


def test_the_same_seed_gives_the_same_vectors() -> None:
    assert V.generate(7, 20) == V.generate(7, 20)
    assert V.generate(7, 20) != V.generate(8, 20)


def test_a_vector_says_what_evaluate_says_exactly() -> None:
    table = pa.table(
        {
            "l": pa.array([2**63 - 1, None, -(2**63)], pa.int64()),
            "f": pa.array([-math.nan, math.inf, -0.0]),
            "d": pa.array([0, -719162, 2932896], pa.date32()),
            "t": pa.array([-1, 0, 253402300799999999], pa.timestamp("us")),
        }
    )
    v = vector(parse("l = l AND f <> 1.5 AND d < t"), table, 3)
    assert v["columns"] == [
        {
            "name": "l",
            "type": "i64",
            "values": ["9223372036854775807", None, "-9223372036854775808"],
        },
        {"name": "f", "type": "f64", "values": ["-NaN", "Infinity", -0.0]},
        {"name": "d", "type": "date", "values": ["1970-01-01", "0001-01-01", "9999-12-31"]},
        {
            "name": "t",
            "type": "timestamp[us]",
            "values": [
                "1969-12-31T23:59:59.999999",
                "1970-01-01T00:00:00.000000",
                "9999-12-31T23:59:59.999999",
            ],
        },
    ]
    assert v["type"] == "bool8"
    assert v["expected"] == {"values": [False, None, True]}
    assert vector(parse("l + 1"), table, 4)["expected"] == {"error": "OutOfRangeError"}
    assert vector(parse("CAST('x' AS DATE)"), table, 5)["expected"] == {"error": "ConversionError"}
    assert vector(parse("sum(l)"), table, 6)["expected"] == {"error": "ExpressionError"}
    assert math.copysign(1.0, decode_value("-NaN", "f64")) < 0
    assert decode_value("-9223372036854775808", "i64") == -(2**63)
    assert iso_date(-719528 - 365) == "-000001-01-01"
    assert iso_timestamp(-1) == "1969-12-31T23:59:59.999999"


def test_browser_refusal_names_what_a_browser_does_not_evaluate() -> None:
    schema = Schema.from_arrow(
        pa.schema({"i": pa.int32(), "u": pa.uint8(), "z": pa.timestamp("us", "UTC")})
    )
    assert browser_refusal(parse("i + 1 > 2 AND CAST(i AS VARCHAR) LIKE '1%'"), schema) is None
    refusal = browser_refusal(parse("u + 1"), schema)
    assert refusal is not None
    assert "u8" in refusal
    assert "time zone" in str(browser_refusal(parse("hour(z)"), schema))
    assert "f32" in str(browser_refusal(parse("CAST(i AS FLOAT)"), schema))
    assert "decimal" in str(browser_refusal(parse("CAST(i AS DECIMAL(10, 2))"), schema))
    assert "aggregate" in str(browser_refusal(parse("sum(i)"), schema))
    assert set(BROWSER_UNSUPPORTED) == {"types", "nodes", "functions"}
