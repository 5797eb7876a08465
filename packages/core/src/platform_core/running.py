"""Where a running platform says it is: ``<home>/platform.json`` while ``platform up`` serves.

A client on the same machine (``elytra.connect()`` on that home) finds the platform there and
talks to it, instead of opening its databases a second time. The file is written atomically
once the server is up and removed when it stops; a file left by a killed process is ignored
(its pid is gone, or is now another process).

A client hands the platform it finds a token (the CLIs' and ``elytra.connect()``'s lookup
may mint this machine's admin token for it), so the record is believed only if it cannot
have been planted: the file and the recorded process are this user's, and that process
listens on the recorded URL's port. A home another user can write to cannot point this
user's token at a listener of theirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from .listeners import holds_port

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


def _owner(path: str) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


def find_running(home: str | os.PathLike[str]) -> str | None:
    """The URL of the platform serving ``home`` now, or None (also for a record this user's
    own platform did not write: see the module docstring)."""
    path = Path(home) / RUNNING_FILE
    try:
        record = json.loads(path.read_text())
        pid, url = int(record["pid"]), str(record["url"])
        port = urlsplit(url).port
    except (OSError, ValueError, KeyError, TypeError):
        return None
    started = _started(pid)
    if started is None or started != record.get("proc_start"):
        return None  # the process is gone, or the pid is another process now
    me = os.getuid()
    if _owner(str(path)) != me or _owner(f"/proc/{pid}") != me:
        return None  # written or served by another user
    if port is None or not holds_port(pid, port):
        return None  # the recorded process does not serve the recorded URL
    return url
