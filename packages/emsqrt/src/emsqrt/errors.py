"""Errors of the executor: one root, each kind also under the platform's matching kind.

    EmsqrtError (PlatformError)                 the root: catch this for any executor failure
    ├── PlanError (BadInputError)               unknown column, type mismatch, bad plan or DSL
    ├── InputFileError (BadInputError)          unreadable or malformed input (file and line)
    ├── CapTooSmallError (OverBudgetError)      the memory cap cannot make progress (says the
    │                                           smallest cap that would)
    ├── CorruptSpillError (CorruptDataError)    a spill segment failed its checksum
    ├── CancelledError                          the caller cancelled the run (``cancel=``)
    └── SpillDiskFullError (UnavailableError)   the spill directory's disk is full

Every message says what was wrong, with the offending value, and what to do.
"""

from __future__ import annotations

from platform_core import (
    BadInputError,
    CorruptDataError,
    OverBudgetError,
    PlatformError,
    UnavailableError,
)

__all__ = [
    "CancelledError",
    "CapTooSmallError",
    "CorruptSpillError",
    "EmsqrtError",
    "InputFileError",
    "PlanError",
    "SpillDiskFullError",
    "SumOverflowError",
]


class EmsqrtError(PlatformError):
    """Root of every error the executor raises on purpose."""


class PlanError(EmsqrtError, BadInputError):
    """The plan (or pipeline file) is malformed: unknown column or operator, mistyped expression."""


class InputFileError(EmsqrtError, BadInputError):
    """An input file is missing, unreadable or malformed."""


class CapTooSmallError(EmsqrtError, OverBudgetError):
    """The memory cap is too small for the operator to make progress."""


class CorruptSpillError(EmsqrtError, CorruptDataError):
    """A spill segment read back does not match the checksum written with it."""


class CancelledError(EmsqrtError):
    """The run's ``cancel`` (an event or a function) said stop; it stopped at the next batch
    of whichever operator loop was running, and its spill files were removed."""


class SpillDiskFullError(EmsqrtError, UnavailableError):
    """Writing a spill segment failed because the spill directory's disk is full."""


class SumOverflowError(EmsqrtError, BadInputError):
    """A SUM (or the sum inside an AVG) of decimals passes the 38 digits of its
    decimal128(38, s) result, where DuckDB raises "Overflow in SUM of DECIMAL"; sum a DOUBLE
    instead. Integer and boolean SUMs no longer raise it: they are 128-bit (decimal128(38, 0))
    as in DuckDB, which no real input can overflow. ``details["aggregate"]`` names the
    aggregate's output column."""
