"""A process-wide bound on memory, so one request cannot get the process OOM-killed.

DuckDB's ``memory_limit`` bounds its buffer pool, not the values an expression builds
(``range(n)``, ``repeat(s, n)``): one such query could take all of a machine's memory and the
kernel's OOM killer would end the whole process. With the address space capped (``RLIMIT_AS``)
that allocation fails instead, DuckDB raises ``OutOfMemoryException`` and only that query fails.
"""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

__all__ = ["address_space", "cap_memory", "physical_memory", "widen_cap"]


def address_space() -> int | None:
    """This process's virtual size in bytes (``VmSize``), or None where /proc has no answer."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmSize:\s+(\d+) kB", status, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def physical_memory() -> int | None:
    """The machine's RAM in bytes, or None if it cannot be read."""
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cap_memory(headroom: int | None) -> int | None:
    """Let this process grow by at most ``headroom`` bytes of address space from now on.

    ``None`` means half of the machine's RAM, 0 means no cap. Only the soft limit is set (a
    stricter limit already in place is kept), and child processes inherit it. Returns the
    limit set, or None when there is none (turned off, or not Linux).
    """
    if headroom == 0 or not sys.platform.startswith("linux"):
        return None
    size = address_space()
    if size is None:
        return None
    if headroom is None:
        ram = physical_memory()
        if ram is None:
            return None
        headroom = ram // 2
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + headroom
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def widen_cap(nbytes: int) -> int | None:
    """Raise this process's address-space cap, if it has one, by ``nbytes``: for memory it
    maps but another process bounds (a Ray driver maps its node's whole object store, 30 % of
    RAM by default, which would otherwise leave a gateway a fraction of its headroom and
    abort it in a C++ thread that cannot take an allocation failure). Returns the new soft
    limit, or None when there is no cap to widen."""
    if nbytes <= 0 or not sys.platform.startswith("linux"):
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    limit = soft + nbytes if hard == resource.RLIM_INFINITY else min(soft + nbytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit
