"""Restoring a backup onto a node's data directory (the node not running).

Everything is verified before anything is written: the backup's format marker, its manifest
(``backup.json``), each manifest file's SHA-256, and each chunk's size and SHA-256; one bad
file stops the restore, naming it. A directory that does not exist yet is built beside it and
renamed into place (whole or absent). An existing one is locked (a running node holds the
lock: refused); one that holds data is refused unless ``merge``, which adds the backup's
versions newer than the directory's and keeps the directory's where it is newer. Installing
goes chunks first, then manifests, each head pointer last, so a crash leaves whole versions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_core import sha256_bytes, sha256_file
from platform_core.ownership import lock_directory

from ..errors import BackupError, CorruptChunkError
from ..names import check_sha256
from .backup import BACKUP_FILE, manifest_path
from .catalog import Catalog
from .chunks import ChunkStore
from .dataformat import FORMAT_FILE, check_format, ensure_format
from .manifest import Manifest

__all__ = ["RestoreReport", "restore_backup", "verify_backup"]

log = logging.getLogger(__name__)


@dataclass
class VerifiedBackup:
    """A backup whose every file was checked: its manifests, and its chunks with sizes."""

    root: Path
    info: dict[str, Any]
    manifests: list[Manifest]
    chunks: dict[str, int]


@dataclass
class RestoreReport:
    """What a restore did: versions installed, datasets kept (newer here), chunks added."""

    data_dir: str
    installed: dict[str, list[int]] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)
    """Datasets whose version in the data directory is newer (``--merge``): why each was kept."""
    chunks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_dir": self.data_dir,
            "installed": self.installed,
            "kept": self.kept,
            "chunks": self.chunks,
        }


def _bad(backup: Path, why: str) -> BackupError:
    return BackupError(f"{backup} is not a usable lake backup: {why}")


MAX_BACKUP_FILE_BYTES = 256 << 20
"""``backup.json`` lists each chunk in about 80 bytes: this bound is millions of chunks."""


def verify_backup(backup: Path) -> VerifiedBackup:
    """Check every file of ``backup``; raises naming the first bad one, writes nothing."""
    backup = Path(backup)
    if not (backup / FORMAT_FILE).is_file() or not (backup / BACKUP_FILE).is_file():
        raise _bad(backup, f"no {FORMAT_FILE} and {BACKUP_FILE} there (made by `lake backup`?)")
    number = check_format(backup, "the backup")
    if (backup / BACKUP_FILE).stat().st_size > MAX_BACKUP_FILE_BYTES:
        raise _bad(backup, f"{BACKUP_FILE} is over {MAX_BACKUP_FILE_BYTES} bytes")
    try:
        info = json.loads((backup / BACKUP_FILE).read_bytes())
        if not isinstance(info, dict) or info.get("kind") != "lake-backup":
            raise ValueError("not a lake backup manifest")
        if info.get("format") != number:
            raise ValueError(f"its format {info.get('format')!r} differs from {FORMAT_FILE}'s")
        listed = {check_sha256(k, "chunk id"): int(v) for k, v in info["chunks"].items()}
        files = {str(k): str(v) for k, v in info["manifests"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _bad(backup, f"{BACKUP_FILE} is malformed ({exc})") from None
    manifests: list[Manifest] = []
    for rel, digest in sorted(files.items()):
        path = backup / "manifests" / rel
        try:
            data = path.read_bytes()
        except OSError:
            raise _bad(backup, f"manifest {rel} is missing") from None
        if sha256_bytes(data) != digest:
            raise _bad(backup, f"manifest {rel} does not match its SHA-256 in {BACKUP_FILE}")
        m = Manifest.from_json(data)
        if manifest_path(m) != rel:
            raise _bad(backup, f"manifest {rel} holds {m.name} version {m.version}")
        for c in m.chunks:
            if c.sha256 not in listed:
                raise _bad(backup, f"chunk {c.sha256} of {rel} is not in {BACKUP_FILE}")
        manifests.append(m)
    for sha, size in sorted(listed.items()):
        path = backup / "chunks" / f"{sha}.parquet"
        if not path.is_file():
            raise CorruptChunkError(f"chunk {sha} is missing from the backup {backup}", chunk=sha)
        actual = path.stat().st_size
        if actual != size or sha256_file(path) != sha:
            raise CorruptChunkError(
                f"chunk {sha} in the backup {backup} is corrupt ({actual} bytes, listed "
                f"{size}; its content does not hash to its name): nothing was restored",
                chunk=sha,
            )
    manifests.sort(key=lambda m: (m.name, m.version))
    return VerifiedBackup(backup, info, manifests, listed)


def _holds_data(data_dir: Path) -> bool:
    for sub in ("chunks", "manifests"):
        with contextlib.suppress(FileNotFoundError):
            if any(not p.name.startswith(".") for p in (data_dir / sub).iterdir()):
                return True
    return False


def _install(verified: VerifiedBackup, data_dir: Path, report: RestoreReport) -> None:
    """Chunks (each hashed again as it lands), then each dataset's newer versions in order."""
    store = ChunkStore(data_dir / "chunks")
    catalog = Catalog(data_dir / "manifests", store)
    for sha in verified.chunks:
        if store.has(sha):
            continue
        tmp = store.temp_path()
        shutil.copyfile(verified.root / "chunks" / f"{sha}.parquet", tmp)
        store.adopt(tmp, sha)
        report.chunks += 1
    for m in verified.manifests:
        head = catalog.head(m.name)
        if head is not None and head.version >= m.version:
            if m.name not in report.installed:
                state = "deleted" if head.deleted else "live"
                report.kept[m.name] = (
                    f"kept version {head.version} ({state}) here: the backup's {m.version} is "
                    "not newer"
                )
            continue
        catalog.install(m)
        report.installed.setdefault(m.name, []).append(m.version)
        report.kept.pop(m.name, None)


def restore_backup(backup: Path, data_dir: Path, *, merge: bool = False) -> RestoreReport:
    """Verify ``backup`` whole, then install it as the data of a node that is not running."""
    verified = verify_backup(backup)
    data_dir = Path(data_dir).absolute()
    report = RestoreReport(str(data_dir))
    if not data_dir.exists():
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = (
            data_dir.parent / f".{data_dir.name}.lake-restore-{os.getpid()}-{secrets.token_hex(4)}"
        )
        try:
            stage.mkdir()
            ensure_format(stage)
            _install(verified, stage, report)
            os.rename(stage, data_dir)
        except OSError as exc:
            raise BackupError(f"could not restore into {data_dir}: {exc}") from None
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        report.data_dir = str(data_dir)
        return report
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir} is not a directory: give a node's data directory")
    check_format(data_dir, "the lake node's data")  # before the lock creates anything there
    with lock_directory(data_dir, what="the lake node's data", setting="--data-dir"):
        if _holds_data(data_dir) and not merge:
            raise BackupError(
                f"{data_dir} already holds lake data: restore into a new or empty directory, "
                "or pass --merge to add the backup's newer versions and keep the rest"
            )
        ensure_format(data_dir)
        _install(verified, data_dir, report)
    return report
