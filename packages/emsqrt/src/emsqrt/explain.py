"""``explain()``: the plan tree with estimated and actual rows, bytes and spill."""

from __future__ import annotations

from .budget import format_bytes
from .manifest import OperatorReport

__all__ = ["render_explain", "rows_text"]


def rows_text(n: int | None) -> str:
    """``"1 row"``, ``"1,234 rows"``, or ``"? rows"`` when unknown."""
    if n is None:
        return "? rows"
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def render_explain(ops: list[OperatorReport], *, actual: bool) -> str:
    """One line per operator, indented by depth."""
    lines = []
    for o in ops:
        est = f"est {rows_text(o.estimated_rows)}"
        if o.estimated_bytes is not None:
            est += f" / {format_bytes(o.estimated_bytes)}"
        line = f"{'  ' * o.depth}{o.op} [{o.detail}]" if o.detail else f"{'  ' * o.depth}{o.op}"
        line += f"  ({est}"
        if actual:
            line += f"; actual {rows_text(o.rows)} / {format_bytes(o.bytes)}"
            if o.spilled_bytes:
                line += f"; spilled {format_bytes(o.spilled_bytes)} in {o.spill_files} files"
            if o.merge_passes:
                line += f"; {o.runs} runs, {o.merge_passes} merge passes"
            if o.repartition_depth:
                line += f"; {o.partitions} partitions, depth {o.repartition_depth}"
            if o.peak_reserved_bytes:
                line += f"; peak reserved {format_bytes(o.peak_reserved_bytes)}"
        lines.append(line + ")")
    return "\n".join(lines)
