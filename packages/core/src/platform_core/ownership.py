"""One owner process per database directory: an exclusive ``flock`` on ``<dir>/owner.lock``.

Two processes writing one LMDB environment or one lake node directory each keep their own
in-memory state (streams, the writer's queue, the catalog's caches), so writes through one
never reach the other's readers. The owner takes the lock when it opens the directory and
holds it for the store's lifetime; the kernel releases it when the process ends, even on
``kill -9``, so a stale lock file never blocks a restart. The owner's pid is written into the
file, so a second opener's error names it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from .errors import ConflictError

__all__ = ["LOCK_FILE", "DirectoryInUseError", "DirectoryLock", "lock_directory"]

LOCK_FILE = "owner.lock"


class DirectoryInUseError(ConflictError):
    """Another process owns the directory; the message names its pid and the setting to change."""


class DirectoryLock:
    """The held lock of one directory; :meth:`release` (or closing the process) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give up the lock (idempotent); the file stays, without a pid."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor releases the flock

    def __del__(self) -> None:  # an owner dropped without release() frees the directory
        self.release()

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The pid the owner wrote (it writes right after locking: wait a moment for it)."""
    for _ in range(20):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "?"


def lock_directory(directory: str | os.PathLike[str], *, what: str, setting: str) -> DirectoryLock:
    """Take the exclusive lock of ``directory`` (created if missing) for this process.

    ``what`` names the data (``"the Elkyn database"``), ``setting`` what to change to use
    another directory (``"ELKYN_PATH or --path"``). Raises :class:`DirectoryInUseError` with
    one line naming the owner's pid when another process holds it, at once (no waiting).
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    lock_path = path / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(fd)
        os.close(fd)
        raise DirectoryInUseError(
            f"{what} at {path} is in use by process {pid} (one process owns a database "
            f"directory); stop that process, talk to it over HTTP, or set {setting} to "
            "another directory",
            pid=pid,
            path=str(path),
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DirectoryLock(lock_path, fd)
