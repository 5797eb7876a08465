"""Server processes bound glibc's malloc arenas (platform_core.mallocarenas)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# Threads that malloc at once each get an arena of their own, up to glibc's bound;
# malloc_stats() then prints one "Arena N:" block per arena on stderr.
_PROGRAM = """
import ctypes, sys, threading
from platform_core.mallocarenas import limit_malloc_arenas
if sys.argv[1] == "limit":
    print(limit_malloc_arenas(), flush=True)
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
barrier = threading.Barrier(12)
def work():
    barrier.wait()
    for _ in range(2000):
        libc.free(ctypes.c_void_p(libc.malloc(2000)))
threads = [threading.Thread(target=work) for _ in range(12)]
[t.start() for t in threads]
[t.join() for t in threads]
libc.malloc_stats()
"""


def _arenas(mode: str, env: dict[str, str]) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | env
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip(), out.stderr.count("Arena ")


def test_a_server_process_keeps_two_arenas_where_threads_would_make_more() -> None:
    unbounded = _arenas("free", {})[1]
    assert unbounded > 2, "the threads should have made more arenas without the bound"
    said, bounded = _arenas("limit", {})
    assert said == "2"
    assert bounded <= 2


def test_the_users_own_bound_is_kept() -> None:
    said, arenas = _arenas("limit", {"MALLOC_ARENA_MAX": "3"})
    assert said == "3"
    assert arenas <= 3


def test_children_inherit_the_bound() -> None:
    program = (
        "import os, subprocess, sys\n"
        "from platform_core.mallocarenas import limit_malloc_arenas\n"
        "limit_malloc_arenas()\n"
        "subprocess.run([sys.executable, '-c', "
        "'import os; print(os.environ[\"MALLOC_ARENA_MAX\"])'], check=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "2", out.stderr
