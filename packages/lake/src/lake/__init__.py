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
    from .backup import BackupReport, take_backup
    from .catalog import Catalog
    from .chunks import ChunkStore
    from .client import Client
    from .convert import ConvertResult, convert_file, detect_format
    from .dataformat import FORMAT_VERSION
    from .manifest import ChunkRef, Manifest, merge
    from .node import LakeNode, open_catalog
    from .query import QueryEngine, QueryResult
    from .restore import RestoreReport, restore_backup, verify_backup
    from .settings import LakeSettings, lake_settings
    from .sql import Statement, check_read_only
    from .uploads import UploadInfo, UploadManager

_EXPORTS = {
    "BackupReport": ".backup",
    "take_backup": ".backup",
    "FORMAT_VERSION": ".dataformat",
    "RestoreReport": ".restore",
    "restore_backup": ".restore",
    "verify_backup": ".restore",
    "Catalog": ".catalog",
    "ChunkStore": ".chunks",
    "Client": ".client",
    "ConvertResult": ".convert",
    "convert_file": ".convert",
    "detect_format": ".convert",
    "ChunkRef": ".manifest",
    "Manifest": ".manifest",
    "merge": ".manifest",
    "LakeNode": ".node",
    "open_catalog": ".node",
    "QueryEngine": ".query",
    "QueryResult": ".query",
    "LakeSettings": ".settings",
    "lake_settings": ".settings",
    "Statement": ".sql",
    "check_read_only": ".sql",
    "UploadInfo": ".uploads",
    "UploadManager": ".uploads",
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
    "open_catalog",
    "restore_backup",
    "take_backup",
    "verify_backup",
]
