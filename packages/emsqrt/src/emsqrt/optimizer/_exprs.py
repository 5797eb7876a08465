"""Expression helpers for the rules: columns used, conjuncts, rewriting children."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from platform_core.expr import Aggregate, Binary, Column, Expr, walk

__all__ = ["and_all", "columns_of", "conjuncts", "map_children", "rename_columns"]


def columns_of(expr: Expr) -> set[str]:
    return {e.name for e in walk(expr) if isinstance(e, Column)}


def has_aggregate(expr: Expr) -> bool:
    return any(isinstance(e, Aggregate) for e in walk(expr))


def conjuncts(expr: Expr) -> list[Expr]:
    """``a AND b AND c`` -> ``[a, b, c]``."""
    if isinstance(expr, Binary) and expr.op == "and":
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]


def and_all(parts: list[Expr]) -> Expr:
    out = parts[0]
    for p in parts[1:]:
        out = Binary("and", out, p)
    return out


def _map_value(value: Any, fn: Callable[[Expr], Expr]) -> Any:
    if isinstance(value, Expr):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map_value(v, fn) for v in value)
    return value


def map_children(expr: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """A copy of ``expr`` with ``fn`` applied to each direct sub-expression."""
    changes = {}
    for f in fields(expr):  # type: ignore[arg-type]
        old = getattr(expr, f.name)
        new = _map_value(old, fn)
        if new is not old:
            changes[f.name] = new
    return replace(expr, **changes) if changes else expr  # type: ignore[type-var]


def rename_columns(expr: Expr, mapping: dict[str, str]) -> Expr:
    """``expr`` with column references renamed through ``mapping``."""
    if isinstance(expr, Column):
        return Column(mapping.get(expr.name, expr.name))
    return map_children(expr, lambda e: rename_columns(e, mapping))
