"""Server commands bound glibc's malloc arenas (platform_core.mallocarenas)."""

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
# malloc_stats() then prints one "Arena N:" block per arena on stderr. argv[1] plays the
# command: "serve" is a server command, "ls" is not.
_PROGRAM = """
import ctypes, os, sys, threading
from platform_core.mallocarenas import bound_arenas_when_serving
print("run", os.getpid(), flush=True)
bound_arenas_when_serving({"serve"})
print(os.environ.get("MALLOC_ARENA_MAX"), flush=True)
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


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[list[str], int]:
    """(stdout lines, arenas counted) of the program run as ``args``."""
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split("\n")[:-1], out.stderr.count("Arena ")


def test_a_server_command_runs_again_with_two_arenas_in_the_same_process() -> None:
    lines, arenas = _run("ls")
    assert lines[-1] == "None"
    assert arenas > 2, "without the bound the threads should have made more arenas"
    lines, arenas = _run("serve", "--port", "0")
    first, again, said = lines
    assert first.split()[0] == again.split()[0] == "run"
    assert first.split()[1] == again.split()[1], "the exec keeps the pid"
    assert said == "2"
    assert arenas <= 2


def test_help_and_the_users_own_bound_are_left_alone() -> None:
    lines, _ = _run("serve", "--help")
    assert lines == [lines[0], "None"]  # not re-executed
    lines, arenas = _run("serve", env={"MALLOC_ARENA_MAX": "3"})
    assert lines[1:] == ["3"]
    assert arenas <= 3


def test_children_inherit_the_bound() -> None:
    program = (
        "import subprocess, sys\n"
        "from platform_core.mallocarenas import bound_arenas_when_serving\n"
        "bound_arenas_when_serving({'serve'})\n"
        "subprocess.run([sys.executable, '-c', "
        "'import os; print(os.environ[\"MALLOC_ARENA_MAX\"])'], check=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", program, "serve"], env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == "2", out.stderr
