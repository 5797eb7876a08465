"""Content-addressed chunk files: ``chunks/<sha256>.parquet``, written once, verified on read.

A chunk is written to a temporary file in the same directory, hashed, and renamed to its
SHA-256 name, so a chunk file either is complete or does not exist; two identical chunks are
stored once. Reads verify the hash; a file whose bytes no longer match raises
``CorruptChunkError`` (the scrubber then repairs it from a replica, or reports it).
Verification is remembered per (inode, size, mtime), so a chunk is rehashed when its file
changes, not on every query; ``verify(force=True)`` (the scrubber) always rehashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from platform_core import NotFoundError, sha256_file

from ..errors import CorruptChunkError
from ..names import check_sha256

__all__ = ["ChunkStore"]


class ChunkStore:
    """The chunk directory of one node."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._verified: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()

    def path(self, sha: str) -> Path:
        return self.root / f"{check_sha256(sha, 'chunk id')}.parquet"

    def has(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def temp_path(self) -> Path:
        """A fresh temporary name in the chunk directory (same filesystem, so rename is atomic)."""
        return self.root / f".tmp-{os.getpid()}-{secrets.token_hex(8)}.parquet"

    def adopt(
        self, tmp: Path, sha: str | None = None, hold: Callable[[str], None] | None = None
    ) -> tuple[str, int]:
        """Move a finished temporary file into place under its SHA-256; returns (sha, bytes).

        ``hold`` is called with the hash before the file becomes visible, so the catalog can
        protect it from a concurrent GC before any manifest names it.
        """
        try:
            actual = sha256_file(tmp)
            if sha is not None and actual != sha:
                raise CorruptChunkError(
                    f"chunk content hashes to {actual}, not the expected {sha}; it was not stored"
                )
            size = tmp.stat().st_size
            if hold is not None:
                hold(actual)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            final = self.path(actual)
            if final.exists() and self._matches(final, actual):
                tmp.unlink()
            else:
                os.replace(tmp, final)
            self._remember(actual, final)
            return actual, size
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def put_bytes(
        self, data: bytes, sha: str | None = None, hold: Callable[[str], None] | None = None
    ) -> tuple[str, int]:
        tmp = self.temp_path()
        with open(tmp, "wb") as f:
            f.write(data)
        return self.adopt(tmp, sha, hold)

    def verify(self, sha: str, *, force: bool = False) -> Path:
        """The chunk's path after checking its bytes; ``CorruptChunkError`` if they differ."""
        path = self.path(sha)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotFoundError(f"chunk {sha} is not stored on this node") from None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            known = self._verified.get(sha) == key
        if known and not force:
            return path
        actual = sha256_file(path)
        if actual != sha:
            with self._lock:
                self._verified.pop(sha, None)
            raise CorruptChunkError(
                f"chunk {sha} is corrupt on this node (its bytes hash to {actual}); "
                "it will be repaired from a replica",
                chunk=sha,
            )
        with self._lock:
            self._verified[sha] = key
        return path

    def read_bytes(self, sha: str) -> bytes:
        """The chunk's bytes, hashed as they are read (for shipping to a peer)."""
        data = self.path(sha).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise CorruptChunkError(f"chunk {sha} is corrupt on this node", chunk=sha)
        return data

    def remove(self, sha: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha).unlink()
        with self._lock:
            self._verified.pop(sha, None)

    def all(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.parquet") if not p.name.startswith("."))

    def size(self, shas: Iterable[str]) -> int:
        return sum(self.path(s).stat().st_size for s in shas if self.has(s))

    def clean_temp(self) -> None:
        """Remove temporary files left by a process that died mid-write."""
        for p in self.root.glob(".tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def _matches(self, path: Path, sha: str) -> bool:
        return sha256_file(path) == sha

    def _remember(self, sha: str, path: Path) -> None:
        st = path.stat()
        with self._lock:
            self._verified[sha] = (st.st_ino, st.st_size, st.st_mtime_ns)
