"""Strand's errors: one root, ``StrandError``, each subclass also a platform error kind.

StrandError (PlatformError)
├── StrandHeaderError     CorruptDataError  wrong magic, bad checksum, schema differs
├── StrandConfigError     BadInputError     bad geometry (non-power-of-two capacity, ...)
├── StrandValueError      BadInputError     a value does not fit its field or the heap
├── StrandOrderError      BadInputError     claims committed out of order
├── StrandStateError      ConflictError     wrong call for the ring's state
├── StrandBusyError       ConflictError     views alive at close, another live writer
├── StrandSpaceError      OverBudgetError   /dev/shm cannot hold the segment
├── StrandNotFoundError   NotFoundError     no segment of that name
├── StrandTimeoutError    UnavailableError  a wait ran out of time
└── StrandAbortError                        a consumer asked the producer to stop
"""

from __future__ import annotations

from platform_core import (
    BadInputError,
    ConflictError,
    CorruptDataError,
    NotFoundError,
    OverBudgetError,
    PlatformError,
    UnavailableError,
)

__all__ = [
    "StrandAbortError",
    "StrandBusyError",
    "StrandConfigError",
    "StrandError",
    "StrandHeaderError",
    "StrandNotFoundError",
    "StrandOrderError",
    "StrandSpaceError",
    "StrandStateError",
    "StrandTimeoutError",
    "StrandValueError",
]


class StrandError(PlatformError):
    """Root of every error Strand raises on purpose."""


class StrandHeaderError(StrandError, CorruptDataError):
    """The segment's header is not a Strand header this code can use (says which check failed)."""


class StrandConfigError(StrandError, BadInputError):
    """The ring's geometry or schema cannot be built as asked."""


class StrandValueError(StrandError, BadInputError):
    """A record or value does not fit its field type, the schema, or the heap."""


class StrandOrderError(StrandError, BadInputError):
    """Claimed slots or heap bytes were committed out of claim order."""


class StrandStateError(StrandError, ConflictError):
    """The call does not fit the ring's state (writing after finalize, reading a reset ring)."""


class StrandBusyError(StrandError, ConflictError):
    """The segment is in use: views still alive at close, or another live writer attached."""


class StrandSpaceError(StrandError, OverBudgetError):
    """Shared memory has no room for the segment (a full ``/dev/shm``)."""


class StrandNotFoundError(StrandError, NotFoundError):
    """No shared-memory segment has that name."""


class StrandTimeoutError(StrandError, UnavailableError):
    """A blocking call did not complete within its timeout."""


class StrandAbortError(StrandError):
    """A consumer signalled abort: the producer should stop and call ``abort()``."""
