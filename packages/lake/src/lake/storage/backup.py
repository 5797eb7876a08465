"""Taking a backup of a node's datasets: manifests and every chunk they name, verified.

A backup directory holds ``FORMAT`` (the node format marker), ``backup.json`` (the backup
manifest: format, node id, time, datasets and versions, the SHA-256 of each manifest file,
each chunk's hash and size), ``manifests/<name>/v<N>.json`` and ``chunks/<sha>.parquet``.
It is built in a hidden sibling directory and renamed into place, so a target either is a
whole backup or does not exist; a temp directory left by a killed run is removed by the next
run for the same target. It works beside a running node: the catalog is snapshotted first and
chunks are immutable, so what is copied is one consistent state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_core import NotFoundError, sha256_bytes

from ..errors import BackupError, CorruptChunkError
from .catalog import Catalog
from .dataformat import FORMAT_FILE, FORMAT_VERSION, marker, write_atomic
from .manifest import Manifest

__all__ = ["BACKUP_FILE", "BackupReport", "Repair", "take_backup"]

log = logging.getLogger(__name__)

BACKUP_FILE = "backup.json"
_PIECE = 1 << 20
_TEMP = re.compile(r"\.(?P<name>.+)\.lake-backup-(?P<pid>\d+)-[0-9a-f]{8}")

Repair = Callable[[str, str], bytes]
"""``repair(sha, origin)``: a chunk's verified bytes from a replica (raises if none has it)."""


@dataclass
class BackupReport:
    """What a backup holds: where, its datasets and versions, chunk count and bytes."""

    target: str
    node_id: str
    datasets: dict[str, list[int]]
    chunks: int
    bytes: int
    repaired: list[str] = field(default_factory=list)
    """Chunks that were corrupt or missing here and were copied from a replica instead."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "node_id": self.node_id,
            "datasets": self.datasets,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "repaired": self.repaired,
        }


def manifest_path(m: Manifest) -> str:
    """A manifest's path inside a backup (and inside a node's ``manifests/``)."""
    return f"{m.name}/v{m.version:010d}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(target: Path) -> None:
    """Remove temp directories that killed backups to ``target`` left (their process is gone)."""
    parent = target.parent
    if not parent.is_dir():
        return
    for p in parent.iterdir():
        m = _TEMP.fullmatch(p.name)
        if m and m.group("name") == target.name and not _alive(int(m.group("pid"))):
            shutil.rmtree(p, ignore_errors=True)


def check_target(target: Path) -> None:
    """A backup goes into a new or empty directory only."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(
            f"backup target {target} is not empty: give a new directory (a backup never "
            "overwrites or mixes with other files)"
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_checked(src: Path, dst: Path, sha: str) -> int | None:
    """Copy ``src`` to ``dst`` hashing it; its size if the hash is ``sha``, None if it differs."""
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while piece := fin.read(_PIECE):
            h.update(piece)
            fout.write(piece)
            size += len(piece)
        fout.flush()
        os.fsync(fout.fileno())
    if h.hexdigest() != sha:
        dst.unlink()
        return None
    return size


def _copy_chunk(
    catalog: Catalog, sha: str, origin: str, dst: Path, repair: Repair | None, owner: str
) -> tuple[int, bool]:
    """Copy one chunk into the backup, checked; (bytes, whether a replica supplied it)."""
    src = catalog.chunks.path(sha)
    problem = "is corrupt on this node"
    try:
        size = _copy_checked(src, dst, sha)
    except FileNotFoundError:
        size, problem = None, "is not stored on this node"
    if size is not None:
        return size, False
    if repair is None:
        raise CorruptChunkError(
            f"chunk {sha} (of {owner}) {problem} and there is no replica to read it from: "
            "run the backup through the running node of a cluster (lake backup --node), or "
            "restore the chunk first",
            chunk=sha,
        )
    try:
        data = repair(sha, origin)
    except Exception as exc:
        raise CorruptChunkError(
            f"chunk {sha} (of {owner}) {problem} and no replica had a good copy ({exc})",
            chunk=sha,
        ) from None
    if sha256_bytes(data) != sha:  # the replica's answer is checked here too
        raise CorruptChunkError(f"chunk {sha} (of {owner}): the replica's copy is corrupt too")
    write_atomic(dst, data)
    log.warning("backup: chunk %s %s; copied from a replica", sha[:12], problem)
    return len(data), True


def take_backup(
    catalog: Catalog,
    target: Path,
    *,
    node_id: str,
    all_versions: bool = False,
    repair: Repair | None = None,
) -> BackupReport:
    """Back up the live datasets of ``catalog`` (every kept version with ``all_versions``)
    into the new or empty directory ``target``; ``repair`` reads chunks this node lacks."""
    target = Path(target).absolute()
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(target)
    snapshot = catalog.snapshot(all_versions)
    tmp = target.parent / f".{target.name}.lake-backup-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        report = _fill(catalog, tmp, snapshot, node_id, all_versions, repair)
        _fsync_dir(tmp)
        check_target(target)  # nobody filled it meanwhile
        try:
            with contextlib.suppress(FileNotFoundError):
                target.rmdir()  # an empty directory: the rename takes its place
            os.rename(tmp, target)
        except OSError as exc:
            raise BackupError(
                f"backup target {target} was filled by someone else meanwhile ({exc.strerror}); "
                "give a new directory"
            ) from None
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.target = str(target)
    return report


def _fill(
    catalog: Catalog,
    tmp: Path,
    snapshot: list[Manifest],
    node_id: str,
    all_versions: bool,
    repair: Repair | None,
) -> BackupReport:
    chunks_dir = tmp / "chunks"
    chunks_dir.mkdir()
    sizes: dict[str, int] = {}
    repaired: list[str] = []
    for m in snapshot:
        for c in m.chunks:
            if c.sha256 in sizes:
                continue
            owner = f"dataset {m.name} version {m.version}"
            dst = chunks_dir / f"{c.sha256}.parquet"
            size, replica = _copy_chunk(catalog, c.sha256, m.origin, dst, repair, owner)
            sizes[c.sha256] = size
            if replica:
                repaired.append(c.sha256)
    manifests: dict[str, str] = {}
    datasets: dict[str, list[int]] = {}
    for m in snapshot:
        rel = manifest_path(m)
        data = m.to_json().encode()
        (tmp / "manifests" / m.name).mkdir(parents=True, exist_ok=True)
        write_atomic(tmp / "manifests" / rel, data)
        manifests[rel] = sha256_bytes(data)
        datasets.setdefault(m.name, []).append(m.version)
    versions = {k: sorted(v) for k, v in sorted(datasets.items())}
    body = {
        "kind": "lake-backup",
        "format": FORMAT_VERSION,
        "node_id": node_id,
        "created": time.time(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "all_versions": all_versions,
        "datasets": versions,
        "manifests": manifests,
        "chunks": dict(sorted(sizes.items())),
    }
    write_atomic(tmp / FORMAT_FILE, marker())
    write_atomic(tmp / BACKUP_FILE, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())
    return BackupReport(
        target="",
        node_id=node_id,
        datasets=versions,
        chunks=len(sizes),
        bytes=sum(sizes.values()),
        repaired=repaired,
    )


def open_source(data_dir: Path) -> Catalog:
    """The catalog of a node's data directory for reading beside the node (nothing created)."""
    from .chunks import ChunkStore
    from .dataformat import check_format

    data_dir = Path(data_dir)
    if not (data_dir / "manifests").is_dir() or not (data_dir / "chunks").is_dir():
        raise NotFoundError(
            f"no lake data at {data_dir} (no manifests/ and chunks/ there): give the node's "
            "data directory (LAKE_DATA_DIR, or <home>/lake/<node-id>)"
        )
    check_format(data_dir, "the lake node's data")
    return Catalog(data_dir / "manifests", ChunkStore(data_dir / "chunks"))
