"""Pick Arrow's memory pool for platform processes: jemalloc on Linux unless the user chose.

Arrow reads ``ARROW_DEFAULT_MEMORY_POOL`` once, when pyarrow loads, and its C++ code allocates
from that pool whatever Python later sets with ``pa.set_memory_pool``. Linux wheels default to
mimalloc, which keeps freed pages resident: emsqrt's group-by under a 32 MiB cap grew a fresh
process's RSS by 134 MiB on mimalloc and 75 MiB on jemalloc with the same reserved peak
(emsqrt README, "Memory seen from outside"). So this runs before anything imports pyarrow, and
sets the variable also for every child process the platform starts.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ARROW_POOL_VARIABLE", "prefer_jemalloc"]

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def prefer_jemalloc() -> str | None:
    """Set ``ARROW_DEFAULT_MEMORY_POOL=jemalloc`` on Linux when the user has not set it; return
    the pool asked for. Takes effect in this process only if pyarrow is not loaded yet."""
    if sys.platform == "linux":
        os.environ.setdefault(ARROW_POOL_VARIABLE, "jemalloc")
    return os.environ.get(ARROW_POOL_VARIABLE)


prefer_jemalloc()
