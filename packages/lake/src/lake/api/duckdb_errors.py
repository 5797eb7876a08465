"""DuckDB's errors translated into core kinds at the HTTP boundary (the kit's registry).

The query paths translate the errors they expect themselves (with line and column); this
catches the rest, so a DuckDB failure anywhere is never a bare 500: parser, binder, catalog,
conversion and invalid input are bad input, out of memory is over budget, an interrupt is a
timeout, an I/O failure is unavailable. DuckDB's internal and fatal errors stay 500s.
"""

from __future__ import annotations

import duckdb

from platform_core import PlatformError, UnavailableError
from platform_core.http import register_translator

from ..errors import QueryTimeoutError
from ..sql.readonly import duckdb_error

__all__ = ["translate_duckdb"]


def translate_duckdb(exc: BaseException) -> PlatformError | None:
    """The core error a DuckDB exception stands for, or ``None`` for a real internal error."""
    if isinstance(exc, (duckdb.InternalException, duckdb.FatalException)):
        return None
    if isinstance(exc, duckdb.InterruptException):
        return QueryTimeoutError(
            "the query was interrupted (it ran past its timeout, or was cancelled)"
        )
    if isinstance(exc, duckdb.IOException):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "I/O error"
        return UnavailableError(f"DuckDB could not read or write a file: {first}")
    if isinstance(exc, duckdb.Error):
        return duckdb_error("", exc)
    return None


register_translator(duckdb.Error, translate_duckdb)
