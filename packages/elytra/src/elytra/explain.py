"""Plans as text: one line per logical operator, for ``explain()`` and job records."""

from __future__ import annotations

from emsqrt import plan as lp
from platform_core.expr import Expr, to_sql

__all__ = ["describe", "render"]


def render(node: lp.Node, depth: int = 0) -> list[str]:
    """One line per logical operator, children indented."""
    what = type(node).__name__
    detail = ""
    if isinstance(node, lp.Input):
        detail = node.name
    elif isinstance(node, lp.Scan):
        detail = node.path
    elif isinstance(node, lp.Aggregate):
        detail = f"by {list(node.group_by)}: " + ", ".join(
            f"{s.name}={to_sql(s.agg)}" for s in node.aggregates
        )
    elif isinstance(node, lp.Filter):
        detail = to_sql(node.predicate)  # the expression as text, not its node's repr
    elif isinstance(node, lp.Sort | lp.TopK):
        detail = ", ".join(f"{k.column}{' DESC' if k.descending else ''}" for k in node.keys)
    elif isinstance(node, lp.Join):
        detail = f"{node.how} on {list(node.left_keys)} = {list(node.right_keys)}"
    elif isinstance(node, lp.Map):
        detail = ", ".join(
            f"{c[0]} = {to_sql(c[1])}" if isinstance(c[1], Expr) else str(c[0])
            for c in node.columns
        )
    elif isinstance(node, lp.Project):
        detail = ", ".join(str(c[0]) for c in node.columns)
    lines = ["  " * depth + f"{what} {detail}".rstrip()]
    for child in lp.children(node):
        lines += render(child, depth + 1)
    return lines


def describe(node: lp.Node) -> str:
    """The plan as text (what a job record shows)."""
    return "\n".join(render(node))
