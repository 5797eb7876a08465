"""The optimizer: rewrite rules, one per module, applied in a fixed order.

Each rule is ``apply(plan, resolver) -> plan`` and keeps the plan's result unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import plan as lp
from ..resolve import SchemaResolver
from . import (
    constant_folding,
    limit_pushdown,
    outer_joins,
    predicate_pushdown,
    projection_pushdown,
)

__all__ = ["RULES", "optimize"]

Rule = Callable[[lp.Node, SchemaResolver], lp.Node]
RULES: tuple[tuple[str, Rule], ...] = (
    ("constant_folding", constant_folding.apply),
    ("outer_joins", outer_joins.apply),
    ("predicate_pushdown", predicate_pushdown.apply),
    ("limit_pushdown", limit_pushdown.apply),
    ("projection_pushdown", projection_pushdown.apply),
)


def optimize(plan: lp.Node, resolver: SchemaResolver | None = None) -> lp.Node:
    """The plan after every rule; the result is checked again (a rule bug fails loudly)."""
    resolver = resolver or SchemaResolver()
    for _, rule in RULES:
        plan = rule(plan, resolver)
    SchemaResolver().schema(plan)
    return plan
