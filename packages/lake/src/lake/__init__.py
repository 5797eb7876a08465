"""Lake: chunked, checksummed, content-addressed datasets with read-only SQL (DuckDB).

Public API: :class:`LakeNode` (storage, ingest and SQL of one node), :class:`Client` (upload
and query over HTTP), the storage pieces (:class:`ChunkStore`, :class:`Catalog`,
:class:`Manifest`, :class:`ChunkRef`, :func:`merge`), :func:`convert_file`,
:func:`check_read_only`, backups (:func:`take_backup`, :func:`restore_backup`,
:func:`verify_backup`), settings and errors.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from platform_core.lazy import lazy_exports

from .errors import (
    BackupError,
    ChecksumMismatchError,
    CorruptChunkError,
    DatasetNotFoundError,
    FormatError,
    IngestError,
    InvalidNameError,
    LakeError,
    QueryTimeoutError,
    SQLError,
    TooLargeError,
    UploadNotFoundError,
    UploadStateError,
)

if TYPE_CHECKING:  # the same names as _EXPORTS, for type checkers and readers
    from .api.client import Client
    from .node import LakeNode, node_identity, open_catalog
    from .settings import LakeSettings, lake_settings
    from .sql.engine import QueryEngine, QueryResult
    from .sql.readonly import Statement, check_read_only
    from .storage.backup import BackupReport, take_backup
    from .storage.catalog import Catalog
    from .storage.chunks import ChunkStore
    from .storage.convert import ConvertResult, convert_file, detect_format
    from .storage.dataformat import FORMAT_VERSION
    from .storage.manifest import ChunkRef, Manifest, merge
    from .storage.restore import RestoreReport, restore_backup, verify_backup
    from .storage.uploads import UploadInfo, UploadManager

_EXPORTS = {
    "BackupReport": ".storage.backup",
    "take_backup": ".storage.backup",
    "FORMAT_VERSION": ".storage.dataformat",
    "RestoreReport": ".storage.restore",
    "restore_backup": ".storage.restore",
    "verify_backup": ".storage.restore",
    "Catalog": ".storage.catalog",
    "ChunkStore": ".storage.chunks",
    "Client": ".api.client",
    "ConvertResult": ".storage.convert",
    "convert_file": ".storage.convert",
    "detect_format": ".storage.convert",
    "ChunkRef": ".storage.manifest",
    "Manifest": ".storage.manifest",
    "merge": ".storage.manifest",
    "LakeNode": ".node",
    "open_catalog": ".node",
    "node_identity": ".node",
    "QueryEngine": ".sql.engine",
    "QueryResult": ".sql.engine",
    "LakeSettings": ".settings",
    "lake_settings": ".settings",
    "Statement": ".sql.readonly",
    "check_read_only": ".sql.readonly",
    "UploadInfo": ".storage.uploads",
    "UploadManager": ".storage.uploads",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

try:
    __version__ = version("platform-lake")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "FORMAT_VERSION",
    "BackupError",
    "BackupReport",
    "Catalog",
    "ChecksumMismatchError",
    "ChunkRef",
    "ChunkStore",
    "Client",
    "ConvertResult",
    "CorruptChunkError",
    "DatasetNotFoundError",
    "FormatError",
    "IngestError",
    "InvalidNameError",
    "LakeError",
    "LakeNode",
    "LakeSettings",
    "Manifest",
    "QueryEngine",
    "QueryResult",
    "QueryTimeoutError",
    "RestoreReport",
    "SQLError",
    "Statement",
    "TooLargeError",
    "UploadInfo",
    "UploadManager",
    "UploadNotFoundError",
    "UploadStateError",
    "__version__",
    "check_read_only",
    "convert_file",
    "detect_format",
    "lake_settings",
    "merge",
    "node_identity",
    "open_catalog",
    "restore_backup",
    "take_backup",
    "verify_backup",
]
