"""Every platform process runs with glibc's malloc arenas bounded (platform_core.mallocarenas).

Without the bound each platform's RSS crept about 0.2 MiB/s under the soak's load (arena
fragmentation); `platform up` re-executes itself with ``MALLOC_ARENA_MAX=2`` and its pool
workers inherit it. Read from /proc, as the kernel holds each process's environment.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest
from platform_cluster import Cluster
from proc_rss import descendants

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def _environ(pid: int) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None  # ended while read
    return dict(e.split("=", 1) for e in raw.decode(errors="replace").split("\0") if "=" in e)


def test_every_platform_and_its_workers_run_with_two_malloc_arenas(
    platform_cluster: Cluster,
) -> None:
    seen = 0
    for node in platform_cluster.nodes:
        for pid in descendants(node.pid):
            env = _environ(pid)
            if env is None:
                continue
            assert env.get("MALLOC_ARENA_MAX") == "2", (pid, env.get("MALLOC_ARENA_MAX"))
            seen += 1
    assert seen >= 2 * len(platform_cluster.nodes)  # each platform and at least one worker
