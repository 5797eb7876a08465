"""Elkyn: a real-time JSON tree database on LMDB, Firebase-compatible, embedded or served.

from elkyn import Store
with Store(memory=True) as db:
    db.set("/users/ada", {"name": "Ada"})
    db.get("/users")  # {"ada": {"name": "Ada"}}
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    ClientDisconnectedError,
    ElkynError,
    InvalidDataError,
    NestedWriteError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PreconditionFailedError,
    StoreClosedError,
)
from .events import Event, Subscription
from .paths import MAX_DEPTH, MAX_KEY_BYTES, parse_path, path_str
from .query import Query
from .rules import Rules
from .store import ABORT, ADMIN, ANONYMOUS, Caller, Store, TransactionResult, etag_of

try:
    __version__ = version("platform-elkyn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ABORT",
    "ADMIN",
    "ANONYMOUS",
    "MAX_DEPTH",
    "MAX_KEY_BYTES",
    "Caller",
    "ClientDisconnectedError",
    "ElkynError",
    "Event",
    "InvalidDataError",
    "NestedWriteError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "Query",
    "Rules",
    "Store",
    "StoreClosedError",
    "Subscription",
    "TransactionResult",
    "__version__",
    "etag_of",
    "parse_path",
    "path_str",
]
