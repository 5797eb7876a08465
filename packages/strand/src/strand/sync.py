"""Cross-process blocking on a shared 32-bit word: Linux futex through ``ctypes``.

``futex_wait(addr, expected, timeout)`` sleeps in the kernel until another process calls
``futex_wake(addr)`` or the word no longer holds ``expected`` (the caller reads the word
once and passes that value, so a wake between the read and the sleep is never lost). The
``ctypes`` call releases the GIL. On platforms without futex the fallback is a short
``select`` nap, documented in the README as the slow path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import select
import sys
from typing import Any, Final

__all__ = ["HAVE_FUTEX", "futex_wait", "futex_wake", "process_alive", "process_start_time"]

_SYS_FUTEX: Final = {"x86_64": 202, "aarch64": 98, "arm64": 98, "ppc64le": 221, "s390x": 238}
_FUTEX_WAIT: Final = 0
_FUTEX_WAKE: Final = 1
_INT_MAX: Final = 0x7FFFFFFF


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_syscall() -> tuple[Any, int | None]:
    if not sys.platform.startswith("linux"):
        return None, None
    number = _SYS_FUTEX.get(platform.machine())
    if number is None:
        return None, None
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.restype = ctypes.c_long
    fn.argtypes = [
        ctypes.c_long,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_uint32,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_uint32,
    ]
    return fn, number


_syscall, _NR = _load_syscall()
HAVE_FUTEX: Final = _syscall is not None


def futex_wait(address: int, expected: int, timeout: float) -> bool:
    """Sleep while the u32 at ``address`` equals ``expected``, at most ``timeout`` seconds.

    Returns True when woken or the value had changed, False on timeout. Spurious returns
    are possible, so callers re-check their condition in a loop.
    """
    if timeout <= 0:
        return False
    if _syscall is None:  # no futex here: a short nap, reported as a timeout so callers
        select.select([], [], [], min(timeout, 0.001))  # also run their liveness checks
        return False
    ts = _Timespec(int(timeout), int((timeout - int(timeout)) * 1e9))
    rc = _syscall(_NR, address, _FUTEX_WAIT, expected, ctypes.addressof(ts), None, 0)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.ETIMEDOUT:
        return False
    if err in (errno.EAGAIN, errno.EINTR):
        return True
    raise OSError(err, f"futex wait failed: {os.strerror(err)}")


def futex_wake(address: int, count: int = _INT_MAX) -> None:
    """Wake up to ``count`` processes sleeping on the word at ``address``."""
    if _syscall is None:
        return
    _syscall(_NR, address, _FUTEX_WAKE, count, None, None, 0)


def _stat(pid: int) -> tuple[bytes, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc, None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields resume after the last ')'
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 if unknown); guards pid reuse."""
    stat = _stat(pid)
    return stat[1] if stat else 0


def process_alive(pid: int, start: int) -> bool:
    """True if ``pid`` runs and (when ``start`` is known) is the same process as recorded."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if sys.platform.startswith("linux"):
        stat = _stat(pid)
        if stat is None:
            return False
        state, now = stat
        if state in (b"Z", b"X"):  # killed but not yet reaped: it will never run again
            return False
        return not start or now == start
    return True
