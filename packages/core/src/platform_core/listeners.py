"""Which process listens on a TCP port, from ``/proc`` (Linux): for start errors that name
the holder of a port, and for trusting a ``platform.json`` only when its process serves it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["holds_port", "listening_inodes", "port_holder"]


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (``/proc/net/tcp*``, state 0A = LISTEN)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    return inodes - {"0"}


def _holds(pid: int, wanted: set[str]) -> bool:
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in wanted:
                    return True
    return False


def holds_port(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a socket listening on ``port`` (False if unseen)."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    return bool(wanted) and _holds(pid, wanted)


def port_holder(port: int) -> int | None:
    """The pid of a process listening on ``port``, if this user may see it (Linux), else None."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    if not wanted:
        return None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _holds(int(entry.name), wanted):
            return int(entry.name)
    return None
