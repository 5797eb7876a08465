"""Elkyn: a real-time JSON tree database on LMDB, Firebase-compatible, embedded or served.

from elkyn import Store
with Store(memory=True) as db:
    db.set("/users/ada", {"name": "Ada"})
    db.get("/users")  # {"ada": {"name": "Ada"}}
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from platform_core.lazy import lazy_exports

from .errors import (
    ClientDisconnectedError,
    ElkynError,
    InvalidDataError,
    MemberInUseError,
    NestedWriteError,
    NotPrimaryError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PreconditionFailedError,
    PrimaryUnavailableError,
    ReplicaWriteError,
    StoreClosedError,
)

if TYPE_CHECKING:  # the same names as _EXPORTS, for type checkers and readers
    from .events import Event, Subscription
    from .paths import MAX_DEPTH, MAX_KEY_BYTES, parse_path, path_str
    from .plugin import replication_status
    from .query import Query
    from .rules import Rules
    from .store import ABORT, ADMIN, ANONYMOUS, Caller, Store, TransactionResult, etag_of

_EXPORTS = {
    "Event": ".events",
    "Subscription": ".events",
    "MAX_DEPTH": ".paths",
    "MAX_KEY_BYTES": ".paths",
    "parse_path": ".paths",
    "path_str": ".paths",
    "Query": ".query",
    "Rules": ".rules",
    "replication_status": ".plugin",
    "ABORT": ".store",
    "ADMIN": ".store",
    "ANONYMOUS": ".store",
    "Caller": ".store",
    "Store": ".store",
    "TransactionResult": ".store",
    "etag_of": ".store",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
    "MemberInUseError",
    "NestedWriteError",
    "NotPrimaryError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "PrimaryUnavailableError",
    "Query",
    "ReplicaWriteError",
    "Rules",
    "Store",
    "StoreClosedError",
    "Subscription",
    "TransactionResult",
    "__version__",
    "etag_of",
    "parse_path",
    "path_str",
    "replication_status",
]
