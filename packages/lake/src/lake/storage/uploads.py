"""The resumable upload protocol: start, parts (checksummed, any order, retry-safe), complete.

An upload is a directory ``uploads/<id>/`` holding ``meta.json`` (state), ``data`` (the
file, preallocated to its declared size) and ``parts/<n>`` markers. A part's bytes are
checked against its SHA-256 before anything is written, then written at its offset in
``data``; the marker (the part's checksum) is written last, atomically, so a part counts as
received only once its bytes are on disk. Parts may arrive in parallel, in any order, and may
be sent again. ``complete`` starts the conversion in the background (the caller polls the
status); the new version becomes visible only when the conversion commits. A node that
restarts mid-conversion converts again from ``data``; nothing half-written is ever visible.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from platform_core import PlatformError, new_id, parse_type

from ..errors import (
    ChecksumMismatchError,
    IngestError,
    TooLargeError,
    UploadNotFoundError,
    UploadStateError,
)
from ..names import check_dataset_name, check_sha256, check_upload_id
from .catalog import Catalog
from .convert import convert_file, detect_format

__all__ = ["UploadInfo", "UploadManager"]

log = logging.getLogger(__name__)

MIN_PART = 1 << 10


@dataclass
class UploadInfo:
    """The state of one upload, as stored in ``meta.json`` and shown by the status route."""

    id: str
    name: str
    format: str
    size: int
    part_size: int
    overrides: dict[str, str] = field(default_factory=dict)
    append: bool = False
    created: float = 0.0
    state: str = "open"
    """open → converting → committed | failed; or aborted."""
    error: str | None = None
    version: int | None = None
    rows: int | None = None
    chunks: int | None = None
    started_convert: float | None = None
    finished: float | None = None
    owner: str | None = None
    """``sub`` of the user who started the upload (the dataset's owner if it is new)."""
    admin: bool = False
    """Whether the starter was an admin (who may add a version to anyone's dataset)."""

    @property
    def parts(self) -> int:
        return max(1, -(-self.size // self.part_size))

    def part_length(self, n: int) -> int:
        return min(self.part_size, self.size - n * self.part_size)


class UploadManager:
    """Uploads of one node; conversions run on background threads and commit to ``catalog``."""

    def __init__(
        self,
        root: Path,
        catalog: Catalog,
        *,
        chunk_bytes: int,
        memory_bytes: int,
        max_part_bytes: int,
        max_upload_bytes: int,
        on_commit: Callable[[Any], None] | None = None,
        compression: str = "snappy",
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.catalog = catalog
        self.chunk_bytes = chunk_bytes
        self.compression = compression
        self.memory_bytes = memory_bytes
        self.max_part_bytes = max_part_bytes
        self.max_upload_bytes = max_upload_bytes
        self.on_commit = on_commit
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._convert_slot = threading.Semaphore(1)  # one conversion at a time keeps the budget

    # --- protocol ------------------------------------------------------------------------

    def start(
        self,
        name: str,
        size: int,
        *,
        filename: str = "",
        format: str | None = None,
        part_size: int | None = None,
        overrides: Mapping[str, str] | None = None,
        append: bool = False,
        owner: str | None = None,
        admin: bool = False,
    ) -> UploadInfo:
        check_dataset_name(name)
        fmt = detect_format(filename or name, format)
        if not isinstance(size, int) or size < 1:
            raise IngestError(f"upload size must be a positive number of bytes, got {size!r}")
        if size > self.max_upload_bytes:
            raise TooLargeError(
                f"upload of {size} bytes exceeds this node's limit of {self.max_upload_bytes} "
                "bytes (LAKE_MAX_UPLOAD_BYTES)"
            )
        part_size = part_size or min(self.max_part_bytes, 8 << 20)
        if not MIN_PART <= part_size <= self.max_part_bytes:
            raise TooLargeError(
                f"part size {part_size} is outside {MIN_PART}..{self.max_part_bytes} bytes "
                "(LAKE_MAX_PART_BYTES)"
            )
        checked = {}
        for column, type_name in (overrides or {}).items():
            checked[str(column)] = str(parse_type(type_name))  # BadInputError on unknown types
        info = UploadInfo(
            id=new_id(),
            name=name,
            format=fmt,
            size=size,
            part_size=part_size,
            overrides=checked,
            append=append,
            created=time.time(),
            owner=owner,
            admin=admin,
        )
        d = self._dir(info.id)
        (d / "parts").mkdir(parents=True)
        with open(d / "data", "wb") as f:
            f.truncate(size)
        self._save(info)
        return info

    def put_part(self, upload_id: str, n: int, data: bytes, sha256: str) -> dict[str, Any]:
        """Store part ``n`` from a buffer (see :meth:`put_part_stream`)."""
        return self.put_part_stream(upload_id, n, iter([data]), sha256)

    def _check_part(self, upload_id: str, n: int, sha256: str) -> UploadInfo:
        info = self.get(upload_id)
        if info.state != "open":
            raise UploadStateError(f"upload {upload_id} is {info.state}; it takes no more parts")
        if not isinstance(n, int) or not 0 <= n < info.parts:
            raise IngestError(f"part number {n} is outside 0..{info.parts - 1} for this upload")
        check_sha256(sha256, "part checksum")
        return info

    def put_part_stream(
        self, upload_id: str, n: int, pieces: Iterable[bytes], sha256: str
    ) -> dict[str, Any]:
        """Write part ``n`` at its offset while hashing it; it counts only if the hash matches.

        The part's marker is removed first, so a resent part that arrives damaged is no longer
        counted as received (the client sends it again); nothing is buffered in memory.
        """
        info = self._check_part(upload_id, n, sha256)
        d = self._dir(upload_id)
        marker = d / "parts" / str(n)
        marker.unlink(missing_ok=True)
        expected = info.part_length(n)
        digest = hashlib.sha256()
        offset = n * info.part_size
        written = 0
        fd = os.open(d / "data", os.O_WRONLY)
        try:
            for piece in pieces:
                if written + len(piece) > expected:
                    raise IngestError(
                        f"part {n} is longer than {expected} bytes "
                        f"(part size {info.part_size}, file size {info.size})"
                    )
                digest.update(piece)
                os.pwrite(fd, piece, offset + written)
                written += len(piece)
            if written != expected:
                raise IngestError(
                    f"part {n} has {written} bytes; it must have {expected} "
                    f"(part size {info.part_size}, file size {info.size})"
                )
            actual = digest.hexdigest()
            if actual != sha256:
                raise ChecksumMismatchError(
                    f"part {n} arrived with SHA-256 {actual}, not the {sha256} sent with it; "
                    "it was not stored: send it again",
                    part=n,
                )
            os.fdatasync(fd)
        finally:
            os.close(fd)
        tmp = marker.with_name(f".{n}.{threading.get_ident()}")
        tmp.write_text(sha256)
        os.replace(tmp, marker)
        return {"part": n, "sha256": sha256, "bytes": written}

    def received(self, upload_id: str) -> list[int]:
        d = self._dir(upload_id) / "parts"
        return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())

    def received_sha256(self, upload_id: str, parts: list[int]) -> list[str]:
        """The SHA-256 (hex) each of ``parts`` arrived with, as its marker recorded it."""
        d = self._dir(upload_id) / "parts"
        hashes = []
        for n in parts:
            try:
                hashes.append((d / str(n)).read_text().strip())
            except FileNotFoundError:
                hashes.append("")  # resent and damaged since listed: counted as missing next time
        return hashes

    def complete(self, upload_id: str) -> UploadInfo:
        with self._lock:
            info = self.get(upload_id)
            if info.state in ("converting", "committed"):
                return info  # a retried complete is harmless
            if info.state != "open":
                raise UploadStateError(f"upload {upload_id} is {info.state}; it cannot complete")
            missing = sorted(set(range(info.parts)) - set(self.received(upload_id)))
            if missing:
                shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
                raise UploadStateError(
                    f"upload {upload_id} is missing parts {shown}; send them, then complete"
                )
            info.state = "converting"
            info.started_convert = time.time()
            self._save(info)
            self._spawn(info)
        return info

    def abort(self, upload_id: str) -> None:
        with self._lock:
            info = self.get(upload_id)
            if info.state == "converting":
                raise UploadStateError(f"upload {upload_id} is converting; it cannot be aborted")
            shutil.rmtree(self._dir(upload_id), ignore_errors=True)

    def get(self, upload_id: str) -> UploadInfo:
        check_upload_id(upload_id)
        try:
            data = json.loads((self._dir(upload_id) / "meta.json").read_text())
        except FileNotFoundError:
            raise UploadNotFoundError(
                f"no upload {upload_id} on this node (aborted, expired, or started elsewhere)"
            ) from None
        return UploadInfo(**data)

    def list(self) -> list[UploadInfo]:
        """Every upload this node keeps (open, converting, failed or committed), oldest first."""
        out = []
        for d in sorted(self.root.iterdir()):
            with contextlib.suppress(PlatformError, OSError, ValueError, TypeError):
                out.append(self.get(d.name))
        return sorted(out, key=lambda info: info.created)

    def wait(self, upload_id: str, timeout: float | None = None) -> UploadInfo:
        t = self._threads.get(upload_id)
        if t is not None:
            t.join(timeout)
        return self.get(upload_id)

    # --- conversion ----------------------------------------------------------------------

    def resume(self) -> None:
        """Restart conversions that a previous process left half done (it was killed)."""
        for d in sorted(self.root.iterdir()):
            with contextlib.suppress(PlatformError, OSError, ValueError, TypeError):
                info = self.get(d.name)
                if info.state == "converting":
                    log.info("resuming the conversion of upload %s", info.id)
                    self._spawn(info)

    def _spawn(self, info: UploadInfo) -> None:
        t = threading.Thread(target=self._convert, args=(info,), name=f"lake-convert-{info.id}")
        t.daemon = True
        self._threads[info.id] = t
        t.start()

    def _convert(self, info: UploadInfo) -> None:
        d = self._dir(info.id)
        with self._convert_slot, self.catalog.pending() as held:
            try:
                result = convert_file(
                    d / "data",
                    info.format,
                    self.catalog.chunks,
                    chunk_bytes=self.chunk_bytes,
                    memory_bytes=self.memory_bytes,
                    overrides=info.overrides,
                    compression=self.compression,
                    hold=held.add,
                )
                manifest = self.catalog.commit(
                    info.name,
                    result.schema,
                    result.chunks,
                    append=info.append,
                    owner=info.owner,
                    # the dataset may have appeared (someone else's) since the upload started
                    writer=None if info.admin else info.owner,
                )
            except Exception as exc:
                log.warning("upload %s failed: %s", info.id, exc)
                info.state = "failed"
                info.error = exc.message if isinstance(exc, PlatformError) else repr(exc)
                info.finished = time.time()
                self._save(info)
                # only what no dataset references and no other upload holds (catalog.release)
                self.catalog.release(set(held), holder=set(held))
                return
            info.state = "committed"
            info.version = manifest.version
            info.rows = result.rows
            info.chunks = len(result.chunks)
            info.finished = time.time()
            self._save(info)
            with contextlib.suppress(FileNotFoundError):
                (d / "data").unlink()
        if self.on_commit is not None:
            self.on_commit(manifest)

    # --- housekeeping --------------------------------------------------------------------

    def gc(self, ttl_seconds: float, now: float | None = None) -> int:
        """Remove uploads older than ``ttl_seconds`` that are not converting."""
        now = time.time() if now is None else now
        removed = 0
        for d in list(self.root.iterdir()):
            try:
                info = self.get(d.name)
            except (PlatformError, ValueError, TypeError, OSError):
                continue
            if info.state != "converting" and now - info.created >= ttl_seconds:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed

    def _dir(self, upload_id: str) -> Path:
        return self.root / check_upload_id(upload_id)

    def _save(self, info: UploadInfo) -> None:
        path = self._dir(info.id) / "meta.json"
        tmp = path.with_name(f".meta.{threading.get_ident()}")
        tmp.write_text(json.dumps(asdict(info)))
        os.replace(tmp, path)
