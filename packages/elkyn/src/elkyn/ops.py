"""Backup and restore of an LMDB directory: consistent copies, atomic placement."""

from __future__ import annotations

import shutil
from pathlib import Path

import lmdb

from platform_core.ownership import lock_directory

from .errors import ElkynError, InvalidDataError
from .storage import Environment

__all__ = ["backup", "restore"]


def backup(source: Path, target: Path) -> None:
    """Copy the live environment at ``source`` into the empty directory ``target``.

    LMDB's copy runs in one read transaction, so the copy is consistent even while another
    process keeps writing; it is written to a temporary directory and renamed into place.
    """
    if not (source / "data.mdb").is_file():
        raise InvalidDataError(f"no Elkyn database at {source} (no data.mdb there)")
    if target.exists() and any(target.iterdir()):
        raise InvalidDataError(f"backup target {target} is not empty; give a new directory")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        env = lmdb.open(str(source), readonly=True, lock=True, max_dbs=4, subdir=True)
        try:
            env.copy(str(tmp), compact=True)
        finally:
            env.close()
        if target.exists():
            target.rmdir()
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def restore(source: Path, target: Path, *, force: bool = False) -> None:
    """Put the backup ``source`` in place as the database at ``target`` (server stopped)."""
    if not (source / "data.mdb").is_file():
        raise InvalidDataError(f"{source} is not an Elkyn backup (no data.mdb there)")
    if (target / "data.mdb").exists() and not force:
        raise ElkynError(f"{target} already holds a database; pass --force to replace it")
    # not while a server owns the database (it would keep serving the replaced files)
    with lock_directory(target, what="the Elkyn database", setting="--path"):
        _replace(source, target)


def _replace(source: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".restoring")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(source / "data.mdb", tmp / "data.mdb")
    env = Environment(tmp)  # a restored database is a new one: replicas and streams resync
    try:
        env.renew_database_id()
    finally:
        env.close()
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
