"""Seeded shared test vectors drawn with the property test's generator.

``generate(seed, count)`` draws ``count`` (table, expression) pairs from ``expr_strategies``
(``tables()`` and ``any_exprs()``, the generator ``test_expr_property`` compares with DuckDB),
``PER_TABLE`` expressions over each table, plus an aggregate call every ``AGGREGATE_EVERY``
tables (``evaluate`` refuses them, so their vectors expect an ``ExpressionError``), and turns each into a vector with ``platform_core.expr.vectors.vector``:
the expected values or error are what the Python evaluator computes. Same seed, same
hypothesis version: same vectors.

Not a test module: tests load it by file path, like ``expr_strategies``
(``integration/playground/test_expr_conformance.py`` too).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from platform_core.expr.nodes import Expr
from platform_core.expr.vectors import vector


def _strategies() -> ModuleType:
    name = "_platform_core_tests_expr_strategies"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).with_name("expr_strategies.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


S = _strategies()

DEFAULT_SEED = 20260515
DEFAULT_COUNT = 3000
PER_TABLE = 5
"""Expressions drawn per table (drawing a table costs about three expressions)."""
AGGREGATE_EVERY = 20
"""Every this many tables, one aggregate call is added (a vector expecting ExpressionError)."""


def draw_cases(seed_value: int, count: int) -> list[tuple[pa.Table, Expr]]:
    """About ``count`` (table, expression) pairs, drawn by hypothesis under a fixed seed."""
    cases: list[tuple[pa.Table, Expr]] = []
    tables = 0

    @seed(seed_value)
    @settings(
        max_examples=max(1, count // PER_TABLE),
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(
        S.tables(),
        st.lists(S.any_exprs(), min_size=PER_TABLE, max_size=PER_TABLE),
        S.aggregates(),
    )
    def collect(table: pa.Table, exprs: list[Expr], aggregate: Expr) -> None:
        nonlocal tables
        cases.extend((table, expr) for expr in exprs)
        if tables % AGGREGATE_EVERY == 0:
            cases.append((table, aggregate))
        tables += 1

    collect()
    return cases


def generate(seed_value: int = DEFAULT_SEED, count: int = DEFAULT_COUNT) -> list[dict[str, Any]]:
    """The vectors of about ``count`` drawn cases (ids 0, 1, ...)."""
    return [vector(expr, table, i) for i, (table, expr) in enumerate(draw_cases(seed_value, count))]


def labels(expr: Expr) -> set[str]:
    """What an expression uses, as the property test names it (``expr_strategies.ops``)."""
    return set(S.ops(expr))


REQUIRED_LABELS: frozenset[str] = S.REQUIRED_OPS
