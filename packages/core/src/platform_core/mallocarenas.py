"""Bound glibc's malloc arenas in server processes: 2 unless the user set ``MALLOC_ARENA_MAX``.

glibc gives threads up to 8 arenas per core and returns little of a fragmented arena to the
system. A platform runs many short threads (a job's driver, AnyIO's workers, DuckDB's), so
its RSS crept up under steady load: about 0.2 MiB/s for ten minutes in the three-platform
soak (13-15% after warm-up, against a 10% bound), flat with two arenas. Servers call
:func:`limit_malloc_arenas` before they start threads; the variable is set too, so every
child process (the pool's workers) starts with the same bound.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

__all__ = ["ARENA_VARIABLE", "DEFAULT_ARENAS", "limit_malloc_arenas"]

ARENA_VARIABLE = "MALLOC_ARENA_MAX"
DEFAULT_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas() -> int | None:
    """On glibc, bound this process's arenas (``MALLOC_ARENA_MAX`` when set, else 2) and set the
    variable for children; return the bound, or None where the C library is not glibc."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        arenas = int(os.environ.get(ARENA_VARIABLE) or DEFAULT_ARENAS)
    except ValueError:
        arenas = DEFAULT_ARENAS  # glibc ignores a value it cannot read; so do we
    os.environ.setdefault(ARENA_VARIABLE, str(arenas))
    # arenas made before this call stay; glibc read the variable itself if it was set at start
    ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas)
    return arenas
