"""Elkyn's errors, rooted at ``ElkynError`` and mapped to Firebase's status codes.

    ElkynError (PlatformError)              500
    ├── InvalidDataError (BadInputError)    400  bad key, path, value, query or server value
    ├── PermissionDeniedError               401  a rule denied the read or write
    ├── PreconditionFailedError             412  ``if-match`` ETag did not match
    ├── PayloadTooLargeError                413  body over the write size limit
    ├── ClientDisconnectedError             400  the client left before its body was complete
    ├── NestedWriteError                    500  a write from inside a transaction function
    ├── TooManyStreamsError (OverBudgetError) 429  a caller's (or the server's) stream limit
    └── StoreClosedError (UnavailableError) 503  the store was closed

Messages follow Firebase's REST error texts where Firebase has one, so existing clients that
match on them keep working.
"""

from __future__ import annotations

from typing import Any, ClassVar

from platform_core import BadInputError, OverBudgetError, PlatformError, UnavailableError

__all__ = [
    "ClientDisconnectedError",
    "ElkynError",
    "InvalidDataError",
    "NestedWriteError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "StoreClosedError",
    "TooManyStreamsError",
]


class ElkynError(PlatformError):
    """Root of every error Elkyn raises on purpose."""

    kind: ClassVar[str] = "elkyn"


class InvalidDataError(ElkynError, BadInputError):
    """A key, path, value, query or server value is not allowed; nothing was written."""

    status = 400
    kind = "bad_input"


class PermissionDeniedError(ElkynError):
    """The security rules do not allow this read or write (Firebase answers 401)."""

    status = 401
    kind = "permission_denied"

    def __init__(self, message: str = "Permission denied", **details: Any) -> None:
        super().__init__(message, **details)


class PreconditionFailedError(ElkynError):
    """The value moved on since the caller read it (``if-match`` ETag mismatch)."""

    status = 412
    kind = "precondition_failed"

    def __init__(self, message: str, *, value: Any = None, etag: str = "") -> None:
        super().__init__(message)
        self.value = value
        self.etag = etag


class PayloadTooLargeError(InvalidDataError):
    """The write is larger than the size limit (Firebase answers 400, not 413)."""

    kind = "over_budget"


class ClientDisconnectedError(InvalidDataError):
    """The client disconnected before sending its whole request body; nothing was written."""

    kind = "client_disconnected"


class NestedWriteError(ElkynError):
    """A write was called from inside a transaction function (it would wait for itself)."""


class StoreClosedError(ElkynError, UnavailableError):
    """The store was closed; open a new one."""

    status = 503
    kind = "unavailable"


class TooManyStreamsError(ElkynError, OverBudgetError):
    """A caller holds its limit of open SSE streams, or the server holds its total."""

    status = 429
