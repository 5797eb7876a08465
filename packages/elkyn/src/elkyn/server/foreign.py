"""LMDB's errors translated into core kinds at the HTTP boundary (the kit's registry), so a
full map or a disk failure is a clear 413/503, not a bare 500."""

from __future__ import annotations

import lmdb

from platform_core import (
    BadInputError,
    CorruptDataError,
    OverBudgetError,
    PlatformError,
    UnavailableError,
)
from platform_core.http import register_translator

__all__ = ["translate_lmdb"]


def translate_lmdb(exc: BaseException) -> PlatformError | None:
    """The core error an ``lmdb.Error`` stands for (``None`` for anything else)."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, lmdb.MapFullError):
        return OverBudgetError(
            f"the database is full ({text}): raise ELKYN_MAP_SIZE and restart the server"
        )
    if isinstance(exc, lmdb.BadValsizeError):
        return BadInputError(f"a key or value is too large for the database ({text})")
    if isinstance(exc, (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError)):
        return CorruptDataError(f"the database files are damaged ({text}); restore a backup")
    if isinstance(exc, lmdb.Error):
        return UnavailableError(f"the database could not be read or written ({text})")
    return None


register_translator(lmdb.Error, translate_lmdb)
