"""Bound glibc's malloc arenas in server processes: 2 unless the user set ``MALLOC_ARENA_MAX``.

glibc gives threads up to 8 arenas per core and returns little of a fragmented arena to the
system. A platform runs many short threads (a job's driver, AnyIO's workers, DuckDB's), so
its RSS crept up under steady load: about 0.2 MiB/s for ten minutes in the three-platform
soak (13-15% after warm-up, against a 10% bound), flat with two arenas. glibc fixes its
arena limit when a second thread first allocates, so ``mallopt`` from a started server
came too late (measured: the growth stayed); the server commands (``platform up``,
``elkyn serve``, ``lake node``) instead re-execute themselves once with the variable set,
before they import or start anything, and their children inherit it.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Collection

__all__ = [
    "ARENA_VARIABLE",
    "DEFAULT_ARENAS",
    "bound_arenas_when_serving",
    "reexec_with_bounded_arenas",
]

ARENA_VARIABLE = "MALLOC_ARENA_MAX"
DEFAULT_ARENAS = 2


def reexec_with_bounded_arenas() -> None:
    """On glibc, when ``MALLOC_ARENA_MAX`` is unset: set it to 2 and replace this process by
    the same command line (same pid). Returns at once where it is set or the C library is not
    glibc, and when the exec fails (the process then runs with glibc's default)."""
    if ARENA_VARIABLE in os.environ:
        return
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return
    os.environ[ARENA_VARIABLE] = str(DEFAULT_ARENAS)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError:
        return


def bound_arenas_when_serving(commands: Collection[str]) -> None:
    """A CLI's first step: :func:`reexec_with_bounded_arenas` when its first argument is one
    of ``commands`` (those that run a server) and no help was asked for."""
    args = sys.argv[1:]
    if args and args[0] in commands and not {"--help", "-h"} & set(args):
        reexec_with_bounded_arenas()
