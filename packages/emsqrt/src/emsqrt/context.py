"""What every physical operator of a run shares: the budget, the spill manager, batch sizing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .budget import MemoryBudget
from .cancel import CancelCheck, cancel_check
from .spill import SpillManager

__all__ = ["ExecContext"]

ProgressFn = Callable[[str, int], None]


@dataclass
class ExecContext:
    """Sizes derived from the cap: streaming batches of ``batch_bytes``; accumulating operators
    leave ``headroom`` free for the batches in flight between streaming operators."""

    budget: MemoryBudget
    spill: SpillManager
    batch_bytes: int
    headroom: int
    max_fan_in: int = 64
    max_partitions: int = 64
    max_depth: int = 12
    progress: ProgressFn | None = None
    blocking: int = 1
    notes: list[str] = field(default_factory=list)
    check_cancel: CancelCheck = field(default_factory=lambda: cancel_check(None))
    """Called once per batch by every operator loop: raises ``CancelledError`` once the
    run's ``cancel`` is set (the spill manager's reads and writes call the same check)."""

    @classmethod
    def for_cap(
        cls,
        budget: MemoryBudget,
        spill: SpillManager,
        streaming_ops: int,
        progress: ProgressFn | None = None,
    ) -> ExecContext:
        """Batches of cap/64 (1 KiB floor, 8 MiB ceiling), head-room for one
        batch per operator plus four (scan buffers, a batch being sorted or partitioned)."""
        cap = budget.cap_bytes
        batch = min(max(cap // 64, 1024), 8 * 1024 * 1024)
        headroom = batch * (streaming_ops + 4)
        ctx = cls(budget, spill, batch, headroom, progress=progress)
        if spill is not None:  # a caller that only sizes batches (elytra's planner) has none
            ctx.check_cancel = spill.check_cancel
        return ctx

    def share(self, blocking: int) -> MemoryBudget:
        """A child budget for one of ``blocking`` accumulating operators: the cap less the
        head-room, split evenly, so operators stacked in one pipeline cannot starve each other."""
        self.blocking = max(1, blocking)
        share = max(1, (self.budget.cap_bytes - self.headroom) // self.blocking)
        return MemoryBudget(share, parent=self.budget)

    def smallest_cap(self, need_in_share: int, share: MemoryBudget | None = None) -> int:
        """A cap below which an operator's share cannot hold ``need_in_share`` more bytes.

        Without ``share``: the cap whose share is ``need_in_share`` alone. With it, what the
        share and the whole cap already hold counts too: the share must grow by the shortfall,
        and it grows by (1 - head-room fraction) / blocking of each byte added to the cap, so
        the figure is never below the cap that just failed."""
        alone = int(need_in_share * self.blocking * 1.25 + self.headroom)
        if share is None:
            return alone
        cap = self.budget.cap_bytes
        shortfall = need_in_share - min(share.available, self.budget.available)
        if shortfall <= 0:
            return max(alone, cap + 1)
        growth = max(0.1, 1 - self.headroom / cap) / self.blocking
        return max(alone, int(cap + 1.25 * shortfall / growth) + 1)

    def report(self, label: str, rows: int) -> None:
        if self.progress is not None:
            self.progress(label, rows)
