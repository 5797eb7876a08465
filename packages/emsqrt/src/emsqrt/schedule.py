"""Tree-evaluation scheduling: the physical plan cut into blocks at pipeline breakers.

A block is a chain of streaming operators ending at a blocking one (sort, top-k, aggregate,
a join's build side) or at the root. Blocks run children first; a join keeps its build block
live (in memory or spilled) while its probe block runs, so the live frontier of a tree is
``max(live(build), 1 + live(probe))``, computed bottom-up. ``max_parallel_tasks`` splits the
cap among concurrently running tasks; the report states the fan-in, the frontier and the
budget per task that bound the run's memory (every block works inside the one budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .physical.aggregate import AggregateOp
from .physical.base import PhysicalOp
from .physical.join import JoinOp
from .physical.sort import SortOp, TopKOp

__all__ = ["BLOCKING", "Block", "Schedule", "schedule"]

_BLOCKING = (SortOp, TopKOp, AggregateOp, JoinOp)
BLOCKING = frozenset(c.name for c in _BLOCKING)


@dataclass
class Block:
    id: int
    ops: list[str]
    inputs: list[int] = field(default_factory=list)


@dataclass
class Schedule:
    blocks: list[Block]
    max_fan_in: int
    frontier: int
    cap_bytes: int
    max_parallel_tasks: int

    @property
    def budget_per_task(self) -> int:
        return self.cap_bytes // self.max_parallel_tasks

    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": [{"id": b.id, "ops": b.ops, "inputs": b.inputs} for b in self.blocks],
            "max_fan_in": self.max_fan_in,
            "live_frontier": self.frontier,
            "max_parallel_tasks": self.max_parallel_tasks,
            "budget_per_task_bytes": self.budget_per_task,
            "bound": (
                f"at most {self.frontier} live blocks, fan-in <= {self.max_fan_in}, all inside "
                f"{self.budget_per_task} reserved bytes per task"
            ),
        }


def schedule(root: PhysicalOp, cap_bytes: int, max_parallel_tasks: int = 1) -> Schedule:
    """Blocks of the physical tree (post-order ids) with the fan-in and frontier bounds."""
    blocks: list[Block] = []

    def visit(op: PhysicalOp) -> tuple[int, int]:
        """(block id that produces op's output, live frontier while computing it)."""
        ops = [op.label]
        inputs: list[int] = []
        lives: list[int] = []
        cur = op
        # Fold the streaming chain below op into this block.
        while not isinstance(cur, _BLOCKING) and len(cur.children) == 1:
            cur = cur.children[0]
            ops.append(cur.label)
        for child in cur.children:
            bid, live = visit(child)
            inputs.append(bid)
            lives.append(live)
        frontier = max((i + live for i, live in enumerate(lives)), default=0) + 1
        block = Block(len(blocks), ops[::-1], inputs)
        blocks.append(block)
        return block.id, frontier

    _, frontier = visit(root)
    fan_in = max((len(b.inputs) for b in blocks), default=0)
    return Schedule(blocks, fan_in, frontier, cap_bytes, max(1, max_parallel_tasks))
