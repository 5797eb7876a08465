"""Elkyn's errors, rooted at ``ElkynError``, each carrying the core kind it is.

    ElkynError (PlatformError)                        500 internal
    ├── InvalidDataError (BadInputError)              400 bad key, path, value, query, server value
    │   └── ClientDisconnectedError                   400 the client left before its body was complete
    ├── PermissionDeniedError (ForbiddenError)        403 a rule denied the read or write
    ├── PreconditionFailedError (ConflictError)       409 ``if-match`` ETag did not match
    ├── PayloadTooLargeError (OverBudgetError)        413 body over the write size limit
    ├── TooManyStreamsError (OverBudgetError)         413 a caller's (or the server's) stream limit
    ├── NestedWriteError                              500 a write from inside a transaction function
    ├── StoreClosedError (UnavailableError)           503 the store was closed
    ├── PrimaryUnavailableError (UnavailableError)    503 a replica could not forward a write
    ├── ReplicaWriteError (ForbiddenError)            403 a local write on a replica's store
    ├── NotPrimaryError (ConflictError)               409 a replica asked for its log
    └── MemberInUseError (ConflictError)              409 removing a running or primary member

The statuses are core's (what the platform's routes answer). Firebase's REST statuses (401 for
a denied rule, 400 for a body too large, 412 for a stale ETag, 429 for too many streams) are a
wire quirk of the Firebase routes and live in one table, ``elkyn.server.http.FIREBASE_STATUS``.
Messages follow Firebase's REST error texts where Firebase has one, so existing clients that
match on them keep working.
"""

from __future__ import annotations

from typing import Any

from platform_core import (
    BadInputError,
    ConflictError,
    ForbiddenError,
    OverBudgetError,
    PlatformError,
    UnavailableError,
)

__all__ = [
    "BodyTimeoutError",
    "ClientDisconnectedError",
    "ElkynError",
    "InvalidDataError",
    "MemberInUseError",
    "NestedWriteError",
    "NotPrimaryError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "PrimaryUnavailableError",
    "ReplicaWriteError",
    "StoreClosedError",
    "TooManyStreamsError",
]


class ElkynError(PlatformError):
    """Root of every error Elkyn raises on purpose."""


class InvalidDataError(ElkynError, BadInputError):
    """A key, path, value, query or server value is not allowed; nothing was written."""


class PermissionDeniedError(ElkynError, ForbiddenError):
    """The security rules do not allow this read or write (Firebase answers 401)."""

    def __init__(self, message: str = "Permission denied", **details: Any) -> None:
        super().__init__(message, **details)


class PreconditionFailedError(ElkynError, ConflictError):
    """The value moved on since the caller read it (``if-match`` ETag mismatch; Firebase 412)."""

    def __init__(self, message: str, *, value: Any = None, etag: str = "") -> None:
        super().__init__(message)
        self.value = value
        self.etag = etag


class PayloadTooLargeError(ElkynError, OverBudgetError):
    """The write is larger than the size limit (Firebase answers 400, not 413)."""


class ClientDisconnectedError(InvalidDataError):
    """The client disconnected before sending its whole request body; nothing was written."""


class BodyTimeoutError(ClientDisconnectedError):
    """The request body stopped arriving for ``ELKYN_BODY_TIMEOUT_SECONDS``; nothing was
    written (answered 408, and the connection closes)."""

    status = 408


class NestedWriteError(ElkynError):
    """A write was called from inside a transaction function (it would wait for itself)."""


class StoreClosedError(ElkynError, UnavailableError):
    """The store was closed; open a new one."""


class TooManyStreamsError(ElkynError, OverBudgetError):
    """A caller holds its limit of open SSE streams, or the server holds its total (Firebase
    routes answer 429)."""


class PrimaryUnavailableError(ElkynError, UnavailableError):
    """A replica could not reach its primary (or the primary did not answer in time, or its
    answer was too large) to forward a write: writes fail until it is back, reads go on."""


class ReplicaWriteError(ElkynError, ForbiddenError):
    """A write through a replica's own store: it would fork the data from the primary's (write
    through the database writer, ``elkyn.services.DB_WRITER``, which forwards)."""


class NotPrimaryError(ElkynError, ConflictError):
    """A replica was asked for its operation log: follow its primary instead (no chains)."""


class MemberInUseError(ElkynError, ConflictError):
    """An election member asked to be removed is still running, or is the elected primary:
    stop it first (the others elect a new primary), then remove it."""
