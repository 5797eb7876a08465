"""The run manifest: what ran, under which cap, what it cost, and what it wrote.

Same plan and config give the same ``plan_hash``; the per-operator section gives rows, bytes,
spilled bytes, merge passes, repartition depth and peak reserved memory, so tests and users can
see from the run itself that it spilled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .physical.base import PhysicalOp

__all__ = ["Manifest", "OperatorReport"]


@dataclass
class OperatorReport:
    id: int
    op: str
    detail: str
    depth: int
    estimated_rows: int | None
    estimated_bytes: int | None
    rows: int
    bytes: int
    spilled_bytes: int
    spill_files: int
    runs: int
    merge_passes: int
    partitions: int
    repartition_depth: int
    peak_reserved_bytes: int
    skew_blocks: int = 0


@dataclass
class Manifest:
    plan_hash: str
    config: dict[str, Any]
    started_at: str
    finished_at: str
    seconds: float
    operators: list[OperatorReport]
    memory: dict[str, Any]
    spill: dict[str, Any]
    schedule: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    rows_out: int = 0

    def operator(self, op: str) -> OperatorReport:
        """The first operator of this kind (``sort``, ``aggregate``, ``join``, ...)."""
        for report in self.operators:
            if report.op == op:
                return report
        raise KeyError(f"no {op} operator in this run (ops: {[o.op for o in self.operators]})")

    @property
    def spilled_bytes(self) -> int:
        return sum(o.spilled_bytes for o in self.operators)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)


def operator_reports(root: PhysicalOp) -> list[OperatorReport]:
    """Pre-order list of every operator's figures."""
    out: list[OperatorReport] = []

    def visit(op: PhysicalOp, depth: int) -> None:
        s = op.stats
        out.append(
            OperatorReport(
                id=len(out),
                op=op.name,
                detail=op.detail,
                depth=depth,
                estimated_rows=op.estimate_rows,
                estimated_bytes=op.estimate_bytes,
                rows=getattr(op, "rows_written", 0) or s.rows_out,
                bytes=s.bytes_out,
                spilled_bytes=s.spilled_bytes,
                spill_files=s.spill_files,
                runs=s.runs,
                merge_passes=s.merge_passes,
                partitions=s.partitions,
                repartition_depth=s.repartition_depth,
                peak_reserved_bytes=s.peak_reserved,
                skew_blocks=s.skew_blocks,
            )
        )
        for child in op.children:
            visit(child, depth + 1)

    visit(root, 0)
    return out
