"""platform_core: the common language of the platform.

Field types and schemas (Arrow), the one CSV reader (DuckDB's ``read_csv`` semantics), row hashing for partitioning, errors, settings, sortable ids,
content hashes, plugins and tokens (``platform_core.auth``), the service kit's HTTP boundary
(``platform_core.http``); the command-line kit is ``platform_core.cli``. Everything public is
importable from here.
"""

from importlib.metadata import PackageNotFoundError, version

# arrowpool comes first: it picks Arrow's pool before anything below loads pyarrow
from . import arrowpool, auth, http, tls
from .csv import CsvError, csv_column_names, read_csv_batches, sniff_csv_schema, write_csv_bytes
from .errors import (
    BadInputError,
    ConflictError,
    CorruptDataError,
    ForbiddenError,
    NotFoundError,
    OverBudgetError,
    PlatformError,
    SettingsError,
    UnauthorizedError,
    UnavailableError,
)
from .ids import id_time, is_valid_id, new_id
from .inference import infer_schema
from .integrity import canonical_json, sha256_bytes, sha256_file, sha256_stream, stable_hash
from .jsoncells import json_cell, json_rows
from .live import ClusterState, LiveSink, escape_key, unescape_key
from .logs import JsonFormatter, configure_logging
from .memcap import address_space, cap_memory, physical_memory
from .netloc import host_header_name, is_local_request, is_loopback, origin_is_local
from .ownership import DirectoryInUseError, DirectoryLock, lock_directory
from .plugin import PLUGIN_GROUP, Plugin, PluginError, check_plugins, discover_plugins
from .redact import CREDENTIAL_PARAMS, RedactTokens, install_log_redaction, redact
from .rowhash import hash_columns
from .running import announce, find_running, withdraw
from .schema import Field, Schema
from .service import StartError, bind, configure_service_logging
from .settings import PackageSettings, PlatformSettings, load_settings, package_settings
from .sizes import SIZE_FORMS, SIZE_UNITS, parse_bytes
from .tls import ServerTLS, client_context, connection_hint, flight_root_certs, server_tls
from .types import FieldType, from_arrow, parse_type, type_name
from .users import User, UserStore


def __getattr__(name: str) -> object:
    """``platform_core.cli`` on first use: it imports Typer and rich, which servers need not."""
    if name == "cli":
        import importlib

        return importlib.import_module(".cli", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


try:
    __version__ = version("platform-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "CREDENTIAL_PARAMS",
    "PLUGIN_GROUP",
    "SIZE_FORMS",
    "SIZE_UNITS",
    "BadInputError",
    "ClusterState",
    "ConflictError",
    "CorruptDataError",
    "CsvError",
    "DirectoryInUseError",
    "DirectoryLock",
    "Field",
    "FieldType",
    "ForbiddenError",
    "JsonFormatter",
    "LiveSink",
    "NotFoundError",
    "OverBudgetError",
    "PackageSettings",
    "PlatformError",
    "PlatformSettings",
    "Plugin",
    "PluginError",
    "RedactTokens",
    "Schema",
    "ServerTLS",
    "SettingsError",
    "StartError",
    "UnauthorizedError",
    "UnavailableError",
    "User",
    "UserStore",
    "__version__",
    "address_space",
    "announce",
    "arrowpool",
    "auth",
    "bind",
    "canonical_json",
    "cap_memory",
    "check_plugins",
    "client_context",
    "configure_logging",
    "configure_service_logging",
    "connection_hint",
    "csv_column_names",
    "discover_plugins",
    "escape_key",
    "find_running",
    "flight_root_certs",
    "from_arrow",
    "hash_columns",
    "host_header_name",
    "http",
    "id_time",
    "infer_schema",
    "install_log_redaction",
    "is_local_request",
    "is_loopback",
    "is_valid_id",
    "json_cell",
    "json_rows",
    "load_settings",
    "lock_directory",
    "new_id",
    "origin_is_local",
    "package_settings",
    "parse_bytes",
    "parse_type",
    "physical_memory",
    "read_csv_batches",
    "redact",
    "server_tls",
    "sha256_bytes",
    "sha256_file",
    "sha256_stream",
    "sniff_csv_schema",
    "stable_hash",
    "tls",
    "type_name",
    "unescape_key",
    "withdraw",
    "write_csv_bytes",
]
