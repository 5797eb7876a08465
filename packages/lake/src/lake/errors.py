"""Lake's errors, all under ``platform_core.PlatformError`` so the gateway maps them to HTTP.

LakeError (PlatformError)                500
├── InvalidNameError (BadInputError)     400  a dataset name or id that is not allowed
├── ChecksumMismatchError (BadInputError) 400 an upload part whose SHA-256 differs
├── IngestError (BadInputError)          400  a file that cannot be converted (with line)
├── SQLError (BadInputError)             400  bad or refused SQL (with line and column)
├── QueryLimitError (BadInputError)      400  a query timeout that is not finite, > 0, <= max
├── DatasetNotFoundError (NotFoundError) 404
├── UploadNotFoundError (NotFoundError)  404
├── UploadStateError (ConflictError)     409  e.g. a part after complete
├── TooLargeError (OverBudgetError)      413  a part, upload or result over its limit
├── QueryMemoryError (OverBudgetError)    413  a query needed more memory than the node allows
├── TooManyQueriesError (OverBudgetError) 429 a user's concurrent-query limit (Retry-After)
├── CorruptChunkError (CorruptDataError) 500  a stored chunk failed its checksum
├── QueryTimeoutError (BadInputError) 408  a query ran past the timeout its caller set, or was cancelled
├── FormatError (ConflictError)          409  a data directory or backup of a format this lake does not know
└── BackupError (BadInputError)          400  a backup that cannot be made or restored (names the file)
"""

from __future__ import annotations

from platform_core import (
    BadInputError,
    ConflictError,
    CorruptDataError,
    NotFoundError,
    OverBudgetError,
    PlatformError,
)

__all__ = [
    "TIMEOUT_ADVICE",
    "BackupError",
    "ChecksumMismatchError",
    "CorruptChunkError",
    "DatasetNotFoundError",
    "FormatError",
    "IngestError",
    "InvalidNameError",
    "LakeError",
    "QueryLimitError",
    "QueryMemoryError",
    "QueryTimeoutError",
    "SQLError",
    "TooLargeError",
    "TooManyQueriesError",
    "UploadNotFoundError",
    "UploadStateError",
]


class LakeError(PlatformError):
    """Root of the lake's errors."""


class InvalidNameError(LakeError, BadInputError):
    """A dataset name, upload id or chunk id that is not allowed."""


class ChecksumMismatchError(LakeError, BadInputError):
    """An upload part's content does not match the SHA-256 the client sent."""


class IngestError(LakeError, BadInputError):
    """A file could not be converted to Parquet chunks (malformed CSV/JSON, bad schema)."""


class SQLError(LakeError, BadInputError):
    """SQL that does not parse, binds to nothing, or is not a read-only statement."""


class QueryLimitError(LakeError, BadInputError):
    """A query asked for a timeout that is not a finite number of seconds within the limit."""


class DatasetNotFoundError(LakeError, NotFoundError):
    """No such dataset (or it was deleted)."""


class UploadNotFoundError(LakeError, NotFoundError):
    """No such upload (never started, aborted, or already cleaned up)."""


class UploadStateError(LakeError, ConflictError):
    """The upload is not in a state that allows this operation."""


class TooLargeError(LakeError, OverBudgetError):
    """A part, an upload or a body exceeds its size limit."""


class TooManyQueriesError(LakeError, OverBudgetError):
    """The user already runs as many queries as allowed; retry after ``retry_after`` seconds."""

    status = 429

    def __init__(self, message: str, *, retry_after: int = 1, **details: object) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class CorruptChunkError(LakeError, CorruptDataError):
    """A stored chunk's bytes no longer match their SHA-256."""


class QueryTimeoutError(LakeError, BadInputError):
    """A query was interrupted: it ran past the timeout its caller set, or was cancelled.

    A 408, not a 5xx: the caller's own limit ended it, the node is fine (ask again with a
    longer timeout)."""

    status = 408
    kind = "timeout"


TIMEOUT_ADVICE = (
    "; ask again with a longer timeout (the request's `timeout`, at most "
    "LAKE_MAX_QUERY_TIMEOUT_SECONDS) or a narrower query"
)
"""What a caller whose query ran past its timeout can do (said after the 408's message)."""


class QueryMemoryError(LakeError, OverBudgetError):
    """A query needed more memory than this node allows (its query memory or process cap)."""


class FormatError(LakeError, ConflictError):
    """A data directory or backup whose ``FORMAT`` marker is newer than this lake (or unreadable)."""


class BackupError(LakeError, BadInputError):
    """A backup that cannot be taken or restored: a bad target, a missing or corrupt chunk."""
