"""Where a running platform says it is: ``<home>/platform.json`` while ``platform up`` serves.

A client on the same machine (``elytra.connect()`` on that home) finds the platform there and
talks to it, instead of opening its databases a second time. The file is written atomically
once the server is up and removed when it stops; a file left by a killed process is ignored
(its pid is gone, or is now another process).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

__all__ = ["RUNNING_FILE", "announce", "find_running", "withdraw"]

RUNNING_FILE = "platform.json"


def _started(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat), which a reused pid changes."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def announce(home: str | os.PathLike[str], url: str) -> None:
    """Record that this process serves the platform of ``home`` at ``url``."""
    path = Path(home) / RUNNING_FILE
    tmp = path.with_name(f".{RUNNING_FILE}.{os.getpid()}")
    record = {
        "url": url,
        "pid": os.getpid(),
        "proc_start": _started(os.getpid()),
        "at": time.time(),
    }
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def withdraw(home: str | os.PathLike[str]) -> None:
    """Remove this process's record (another process's is left alone)."""
    path = Path(home) / RUNNING_FILE
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == os.getpid():
            path.unlink()


def find_running(home: str | os.PathLike[str]) -> str | None:
    """The URL of the platform serving ``home`` now, or None."""
    try:
        record = json.loads((Path(home) / RUNNING_FILE).read_text())
        pid, url = int(record["pid"]), str(record["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    started = _started(pid)
    if started is None or started != record.get("proc_start"):
        return None  # the process is gone, or the pid is another process now
    return url
