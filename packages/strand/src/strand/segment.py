"""Named POSIX shared-memory segments that outlive no one by accident.

Python 3.11's ``multiprocessing.shared_memory`` registers every attached segment with the
resource tracker, which unlinks it when the *attaching* process exits (python/cpython#82300).
This module opens segments with ``shm_open`` and ``mmap`` directly, so no tracker is
involved: the creator unlinks, and ``cleanup_dead`` removes segments whose creator died.
Pages are reserved with ``posix_fallocate`` at create, so a full ``/dev/shm`` is a clean
``StrandSpaceError`` instead of a SIGBUS on first touch.
"""

from __future__ import annotations

import _posixshmem  # the stdlib's shm_open/shm_unlink, without the resource tracker
import contextlib
import errno
import gc
import mmap
import os
import re
import sys
import time
from typing import Final

from atomicshm import AtomicView

from strand.errors import (
    StrandBusyError,
    StrandConfigError,
    StrandError,
    StrandNotFoundError,
    StrandSpaceError,
)
from strand.sync import process_alive, process_start_time

__all__ = ["PREFIX", "SHM_DIR", "Segment", "cleanup_dead", "list_segments"]

PREFIX: Final = "strand-"
SHM_DIR: Final = "/dev/shm"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_HALF_BUILT_GRACE_S: Final = 60.0


def _path(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise StrandConfigError(
            f"segment name {name!r} is not allowed: use 1-200 characters from letters, digits, "
            "'_', '.' and '-', starting with a letter or digit"
        )
    return "/" + PREFIX + name


class Segment:
    """One mapped shared-memory segment: ``buf`` is its memory, ``atomics`` its atomic view.

    ``close()`` unmaps (refusing while Arrow arrays or numpy views into it are alive);
    ``unlink()`` removes the name, after which attached processes keep their mapping.
    """

    __slots__ = ("_atomics", "_ctrl", "_mm", "_mv", "created", "name", "size")

    def __init__(self, name: str, fd: int, size: int, created: bool) -> None:
        self.name = name
        self.size = size
        self.created = created
        # two mappings of the same pages: data views come from one, atomics use the other, so
        # "views still alive" can be detected on the first without touching the second
        # prefault the page tables now (MAP_POPULATE), not during the first pass of the ring
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        self._mm: mmap.mmap | None = mmap.mmap(fd, size, flags=flags)
        self._ctrl: mmap.mmap | None = mmap.mmap(fd, size)
        self._mv: memoryview | None = memoryview(self._mm)
        self._atomics: AtomicView | None = AtomicView(self._ctrl)

    @classmethod
    def create(cls, name: str, size: int) -> Segment:
        """Create ``name`` with ``size`` bytes reserved; ``StrandBusyError`` if it exists."""
        path = _path(name)
        if size <= 0:
            raise StrandConfigError(f"segment size must be positive, got {size}")
        try:
            fd = _posixshmem.shm_open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        except FileExistsError:
            raise StrandBusyError(
                f'a shared-memory segment named "{name}" already exists; attach to it, pick '
                "another name, or remove it (strand.cleanup_dead() removes abandoned ones)"
            ) from None
        try:
            os.ftruncate(fd, size)
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)
            return cls(name, fd, size, created=True)
        except OSError as exc:
            with contextlib.suppress(OSError):
                _posixshmem.shm_unlink(path)
            if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
                free = _free_bytes()
                raise StrandSpaceError(
                    f'no room in shared memory for segment "{name}" of {size} bytes '
                    f"({free} bytes free in {SHM_DIR}); free space there, or use smaller "
                    "index_capacity/heap_capacity",
                    size=size,
                ) from None
            raise StrandError(f'cannot create segment "{name}": {exc}') from exc
        finally:
            os.close(fd)

    @classmethod
    def attach(cls, name: str) -> Segment:
        """Map an existing segment; ``StrandNotFoundError`` if there is none by that name."""
        path = _path(name)
        try:
            fd = _posixshmem.shm_open(path, os.O_RDWR, mode=0o600)
        except FileNotFoundError:
            raise StrandNotFoundError(
                f'no shared-memory segment named "{name}"; create it first '
                "(strand.create_strand) or check the name"
            ) from None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise StrandNotFoundError(f'segment "{name}" exists but is empty (half-created)')
            return cls(name, fd, size, created=False)
        finally:
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._mm is None

    @property
    def buf(self) -> memoryview:
        """The segment's bytes (raises ``StrandError`` once closed)."""
        if self._mv is None:
            raise StrandError(f'segment "{self.name}" is closed')
        return self._mv

    @property
    def mmap(self) -> mmap.mmap:
        if self._mm is None:
            raise StrandError(f'segment "{self.name}" is closed')
        return self._mm

    @property
    def atomics(self) -> AtomicView:
        """Atomic loads, stores and CAS over the segment (explicit memory ordering)."""
        if self._atomics is None:
            raise StrandError(f'segment "{self.name}" is closed')
        return self._atomics

    def close(self, timeout: float = 0.0) -> None:
        """Unmap the segment.

        While Arrow arrays, numpy arrays or memoryviews handed out from it are alive, the
        memory cannot be unmapped safely: with ``timeout=0`` this raises
        ``StrandBusyError`` at once; otherwise it collects garbage and retries until the
        timeout, then raises.
        """
        if self._mm is None:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self._try_close():
                return
            if time.monotonic() >= deadline:
                raise StrandBusyError(
                    f'segment "{self.name}" is still in use: an open StrandWriter, or live views '
                    "into it (Arrow arrays from read_batch, get_bytes/get_*_array views); close "
                    "the writer, drop the views or copy what you keep, then close again, or pass "
                    "close(timeout=...) to wait"
                )
            gc.collect()
            time.sleep(0.005)

    def _try_close(self) -> bool:
        assert self._mm is not None
        assert self._mv is not None
        try:
            self._mv.release()  # refused while an Arrow buffer or numpy view exports it
        except BufferError:
            return False
        try:
            self._mm.close()
        except BufferError:  # a memoryview slice is alive (never handed out by strand)
            self._mv = memoryview(self._mm)
            return False
        assert self._atomics is not None
        assert self._ctrl is not None
        self._atomics.close()
        self._ctrl.close()
        self._mm = self._mv = self._atomics = self._ctrl = None
        return True

    def unlink(self) -> None:
        """Remove the segment's name (idempotent); mappings stay valid until closed."""
        with contextlib.suppress(FileNotFoundError):
            _posixshmem.shm_unlink(_path(self.name))

    def __enter__(self) -> Segment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.size} bytes"
        return f"<Segment {self.name!r} {state}>"


def _free_bytes() -> int:
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def list_segments() -> list[str]:
    """Names of the Strand segments on this machine (Linux: from ``/dev/shm``)."""
    try:
        entries = os.listdir(SHM_DIR)
    except OSError:
        return []
    return sorted(e[len(PREFIX) :] for e in entries if e.startswith(PREFIX))


def cleanup_dead(prefix: str = "") -> list[str]:
    """Unlink segments (names starting with ``prefix``) whose creating process has died.

    A segment whose magic was never written (its creator died while initialising it) is
    removed once it is a minute old; one with the magic but a header that does not validate
    is left alone (it is not ours to judge). Returns the names removed.
    """
    from strand.layout import MAGIC, header_size, read_strand_header

    removed = []
    for name in list_segments():
        if not name.startswith(prefix):
            continue
        path = os.path.join(SHM_DIR, PREFIX + name)
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
                if head[:4] == MAGIC:
                    head += f.read(max(0, header_size(head) - len(head)))
                age = time.time() - os.fstat(f.fileno()).st_mtime
        except OSError:
            continue
        if head[:4] != MAGIC:
            dead = age > _HALF_BUILT_GRACE_S
        else:
            try:
                smap = read_strand_header(head, partial=True)
            except StrandError:
                continue
            dead = not process_alive(smap.owner_pid, smap.owner_start)
        if dead:
            with contextlib.suppress(FileNotFoundError):
                _posixshmem.shm_unlink("/" + PREFIX + name)
            removed.append(name)
    return removed


def owner_identity() -> tuple[int, int]:
    """This process's (pid, start time), as recorded in headers and consumer slots."""
    pid = os.getpid()
    return pid, process_start_time(pid) if sys.platform.startswith("linux") else 0
