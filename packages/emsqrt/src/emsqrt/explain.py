"""``explain()``: the plan tree with estimated and actual rows, bytes and spill."""

from __future__ import annotations

from .budget import format_bytes
from .manifest import OperatorReport

__all__ = ["render_explain"]


def _n(v: int | None) -> str:
    return "?" if v is None else f"{v:,}"


def render_explain(ops: list[OperatorReport], *, actual: bool) -> str:
    """One line per operator, indented by depth."""
    lines = []
    for o in ops:
        est = f"est {_n(o.estimated_rows)} rows"
        if o.estimated_bytes is not None:
            est += f" / {format_bytes(o.estimated_bytes)}"
        line = f"{'  ' * o.depth}{o.op} [{o.detail}]" if o.detail else f"{'  ' * o.depth}{o.op}"
        line += f"  ({est}"
        if actual:
            line += f"; actual {o.rows:,} rows / {format_bytes(o.bytes)}"
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
