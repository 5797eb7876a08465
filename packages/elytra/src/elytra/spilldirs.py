"""Each job's spill directory is held by a file lock while the job runs.

A process killed with SIGKILL cannot remove what its jobs spilled; its locks die with it, so
the next driver on that home (``sweep``) removes every job directory whose lock nobody holds,
and never the directory of a job still running in another process.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path

from .errors import ElytraError

__all__ = ["JobDir", "sweep"]


_JOB_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # platform_core.new_id's form
_LOCK = re.compile(r"\.elytra-job-([0-9A-HJKMNP-TV-Z]{26})\.lock")


def _lock_path(root: Path, name: str) -> Path:
    return root / f".elytra-job-{name}.lock"


def _open_locked(path: Path, wait: bool) -> int | None:
    """A descriptor holding an exclusive lock on ``path`` (the file the path names now, not
    one a sweeper unlinked meanwhile), or None when another process holds it and not ``wait``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the file was swept between open and lock: take the new one


def _make(root: Path) -> None:
    """``root`` as a directory (made if missing), or an error naming the setting to change."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError, PermissionError) as exc:
        raise ElytraError(
            f"the spill directory {root} cannot be used ({exc.strerror}); set ELYTRA_SPILL_DIR "
            "(or connect(spill_dir=...)) to a directory this process can write"
        ) from None


class JobDir:
    """A job's directory under ``root``: ``acquire()`` locks it (made when first written),
    ``release()`` removes it and its lock."""

    def __init__(self, root: Path, job_id: str) -> None:
        self.root = root
        self.path = root / job_id
        self._fd: int | None = None

    def acquire(self) -> Path:
        _make(self.root)
        self._fd = _open_locked(_lock_path(self.root, self.path.name), wait=True)
        return self.path

    def release(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        _lock_path(self.root, self.path.name).unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sweep(root: Path | str) -> int:
    """Remove the job directories under ``root`` whose lock file no live process holds (left
    by a killed run); returns how many. Only a directory named as a job id beside its
    ``.elytra-job-<id>.lock`` is a job's: anything else in a shared spill directory stays."""
    root = Path(root)
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    except NotADirectoryError:
        _make(root)  # says what is wrong
        raise
    removed = 0
    for entry in entries:
        if not _JOB_ID.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        lock = _lock_path(root, entry.name)
        if not lock.exists():
            continue  # not a job's (the spill directory may be shared): never ours to remove
        fd = _open_locked(lock, wait=False)
        if fd is None:
            continue  # a running job's
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            lock.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    for entry in entries:  # locks whose directory is gone (killed before it was made)
        if found := _LOCK.fullmatch(entry.name):
            if (root / found.group(1)).exists():
                continue
            fd = _open_locked(Path(entry.path), wait=False)
            if fd is not None:
                Path(entry.path).unlink(missing_ok=True)
                os.close(fd)
    return removed
