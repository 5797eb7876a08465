"""The on-disk format marker of a node's data directory (and of a backup): ``FORMAT``.

``FORMAT`` holds ``{"format": N, "written_by": "<lake version>"}``. A node writes it
atomically when it first opens a directory without one (empty, or made before markers
existed: format 0, whose layout is format 1's, so the upgrade is writing the marker). A
directory of a newer format than this lake knows is refused with one line: an older lake
must not rewrite files it does not understand. Backups carry the same marker; restore checks it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

from ..errors import FormatError

__all__ = ["FORMAT_FILE", "FORMAT_VERSION", "check_format", "ensure_format", "read_format"]

log = logging.getLogger(__name__)

FORMAT_FILE = "FORMAT"
FORMAT_VERSION = 1
"""The format this lake writes and reads. 1: ``chunks/<sha>.parquet``, ``manifests/<name>/
v<N>.json`` + ``HEAD``, ``uploads/``, ``tmp/`` (format 0 is the same layout, unmarked)."""


def _lake_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("platform-lake")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temp file in its directory, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_format(directory: Path) -> int | None:
    """The format number in ``directory/FORMAT``; None when there is no marker."""
    path = Path(directory) / FORMAT_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        number = data["format"]
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise ValueError(f"format {number!r} is not a non-negative integer")
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(
            f"{path} is not a lake format marker ({exc}); restore it from a backup, or remove "
            "it if the directory holds format-1 data"
        ) from None
    return number


def check_format(directory: Path, what: str = "lake data") -> int | None:
    """Refuse (``FormatError``, one line) a directory of a newer format; return its format."""
    number = read_format(directory)
    if number is not None and number > FORMAT_VERSION:
        raise FormatError(
            f"{what} at {directory} is in format {number}, but this lake "
            f"({_lake_version()}) knows formats up to {FORMAT_VERSION}: upgrade platform-lake "
            "to open it",
            format=number,
            known=FORMAT_VERSION,
        )
    return number


def marker() -> bytes:
    """The bytes of a current ``FORMAT`` file."""
    return (
        json.dumps({"format": FORMAT_VERSION, "written_by": _lake_version()}, sort_keys=True) + "\n"
    ).encode()


def ensure_format(directory: Path) -> int:
    """Check the node directory's format and mark it current; returns the format it had
    (0 for an unmarked directory). Called by a node that owns the directory (its lock held)."""
    directory = Path(directory)
    number = check_format(directory, "the lake node's data")
    if number == FORMAT_VERSION:
        return number
    had = 0 if number is None else number
    old_data = any(p.is_dir() for p in directory.iterdir())
    write_atomic(directory / FORMAT_FILE, marker())
    if had or old_data:  # format 0 and 1 share a layout: the upgrade is the marker itself
        log.warning(
            "lake data at %s upgraded in place from format %d to %d (format marker written)",
            directory,
            had,
            FORMAT_VERSION,
        )
    return had
