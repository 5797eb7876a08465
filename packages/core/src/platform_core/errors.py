"""One error hierarchy for the whole platform, each kind mapped to an HTTP status.

    PlatformError                       500 internal
    ├── BadInputError                   400 bad_input
    │   ├── SettingsError               400 bad_input   (a setting's value is not allowed)
    │   └── CsvError                    400 bad_input   (in ``platform_core.csv``: bad row/value)
    ├── UnauthorizedError               401 unauthorized (missing, invalid or expired token)
    ├── ForbiddenError                  403 forbidden   (valid token, not allowed)
    ├── NotFoundError                   404 not_found
    ├── ConflictError                   409 conflict
    ├── OverBudgetError                 413 over_budget (a size or memory limit was exceeded)
    ├── CorruptDataError                500 corrupt_data (a checksum or format check failed)
    ├── UnavailableError                503 unavailable (a peer, disk or service is not there)
    └── PluginError                     500 plugin      (in ``platform_core.services``)

Each package roots its own errors under one of these (``StrandError``, ``LakeError``, ...),
so callers can catch a kind of failure across packages. Messages say what was wrong, with the
offending value, and what to do about it.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadInputError",
    "ConflictError",
    "CorruptDataError",
    "ForbiddenError",
    "NotFoundError",
    "OverBudgetError",
    "PlatformError",
    "SettingsError",
    "UnauthorizedError",
    "UnavailableError",
]


class PlatformError(Exception):
    """Root of every error the platform raises on purpose."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the gateway answers with: ``{"error": ..., "type": ...}``."""
        body: dict[str, Any] = {"error": self.message, "type": self.kind}
        if self.details:
            body["details"] = self.details
        return body


class BadInputError(PlatformError):
    """The caller sent something malformed or not allowed; retrying unchanged will fail again."""

    status = 400
    kind = "bad_input"


class SettingsError(BadInputError):
    """A setting (environment variable or option) has a value that is not allowed."""


class UnauthorizedError(PlatformError):
    """No token, a malformed token, a bad signature or an expired token."""

    status = 401
    kind = "unauthorized"


class ForbiddenError(PlatformError):
    """The token is valid but does not allow this operation."""

    status = 403
    kind = "forbidden"


class NotFoundError(PlatformError):
    """The named thing (dataset, path, upload, job, ...) does not exist."""

    status = 404
    kind = "not_found"


class ConflictError(PlatformError):
    """The operation clashes with the current state (already exists, version moved on)."""

    status = 409
    kind = "conflict"


class OverBudgetError(PlatformError):
    """A size or memory limit would be exceeded."""

    status = 413
    kind = "over_budget"


class CorruptDataError(PlatformError):
    """Stored data failed a checksum or format check; it was not used."""

    status = 500
    kind = "corrupt_data"


class UnavailableError(PlatformError):
    """A peer, a disk or a service needed for the operation is not reachable right now."""

    status = 503
    kind = "unavailable"
