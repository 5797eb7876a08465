"""Engine configuration: the cap, the spill directory and the knobs that shape spilling."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from platform_core import MemCap

from .settings import EmsqrtSettings

__all__ = ["EngineConfig"]


@dataclass(frozen=True)
class EngineConfig:
    """``mem_cap_bytes`` bounds reserved memory; ``max_partitions`` (a power of two, <= 64) and
    ``max_fan_in`` bound hash partitioning and merges; ``max_depth`` bounds recursion."""

    mem_cap_bytes: int = 512 * 1024 * 1024
    """The cap: always a ``platform_core.MemCap`` once built (bytes or ``"64MiB"`` given
    here are checked and converted: a positive size, else ``BadInputError``)."""
    spill_dir: str = ".platform/spill"
    max_parallel_tasks: int = 1
    spill_codec: str = "lz4"
    max_partitions: int = 16
    max_fan_in: int = 64
    max_depth: int = 12
    kernel: str = "auto"
    """``auto``: run a plan the DuckDB kernel can run as one statement (``emsqrt.kernel``),
    else the operators; ``off``: always the operators."""
    kernel_threads: int = 1
    """DuckDB threads of one kernel run (elytra runs one task per worker process)."""

    def __post_init__(self) -> None:
        if not isinstance(self.mem_cap_bytes, MemCap):
            cap = MemCap(self.mem_cap_bytes, what="mem_cap_bytes")
            object.__setattr__(self, "mem_cap_bytes", cap)

    @classmethod
    def from_settings(
        cls, settings: EmsqrtSettings | None = None, **overrides: Any
    ) -> EngineConfig:
        """From ``EMSQRT_*`` settings, then explicit overrides (``None`` values ignored)."""
        from platform_core import load_settings

        s = settings or load_settings(EmsqrtSettings)
        base = cls(
            mem_cap_bytes=s.mem_cap_bytes,
            spill_dir=str(s.resolved_spill_dir()),
            max_parallel_tasks=s.max_parallel_tasks,
            spill_codec=s.spill_codec,
        )
        values = asdict(base) | {k: v for k, v in overrides.items() if v is not None}
        if isinstance(values.get("spill_dir"), Path):
            values["spill_dir"] = str(values["spill_dir"])
        return cls(**values)

    def output_affecting(self) -> dict[str, Any]:
        """The fields that can change output bytes (row order), for the plan hash."""
        d = asdict(self)
        d.pop("spill_dir")
        d.pop("spill_codec")
        return d
