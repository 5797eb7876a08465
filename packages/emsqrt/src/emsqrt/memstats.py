"""Process-level memory measurements beside the budget: Arrow's default pool and RSS.

The Arrow pool only keeps a lifetime peak (``max_memory()``), so a run's Arrow peak is exact
only when the run set a new lifetime peak (measure in a fresh process for a sharp figure); RSS
peak is read from ``VmHWM`` after resetting it (Linux ``clear_refs``), above the RSS at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

__all__ = ["MemoryProbe"]


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class MemoryProbe:
    """Start it before a run, ``finish()`` after: pool and RSS peaks above the start."""

    arrow_base: int = 0
    arrow_max_before: int = 0
    rss_base: int | None = None
    hwm_reset: bool = False

    @classmethod
    def start(cls) -> MemoryProbe:
        pool = pa.default_memory_pool()
        pool.release_unused()
        rss = _status_kib("VmRSS")
        reset = _reset_hwm()
        return cls(pool.bytes_allocated(), pool.max_memory() or 0, rss, reset)

    def finish(self) -> dict[str, Any]:
        pool = pa.default_memory_pool()
        arrow_max = pool.max_memory() or 0
        hwm = _status_kib("VmHWM")
        rss_peak = None
        if self.rss_base is not None and hwm is not None and self.hwm_reset:
            rss_peak = max(0, hwm - self.rss_base) * 1024
        return {
            "arrow_pool_peak_bytes": max(0, arrow_max - self.arrow_base),
            "arrow_pool_peak_exact": arrow_max > self.arrow_max_before,
            "arrow_pool_backend": pool.backend_name,
            "rss_peak_above_baseline_bytes": rss_peak,
            "rss_baseline_bytes": None if self.rss_base is None else self.rss_base * 1024,
        }
