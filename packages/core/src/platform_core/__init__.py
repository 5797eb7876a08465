"""platform_core: the common language of the platform.

Field types and schemas (Arrow), the one CSV reader (DuckDB's ``read_csv`` semantics), row
hashing for partitioning, errors, settings, sortable ids, content hashes and the expression
language (``platform_core.expr``) need only ``pip install platform-core``. The service kit
(tokens in ``platform_core.auth``, users, TLS, ``service``, the HTTP boundary
``platform_core.http``, the command-line kit ``platform_core.cli``) is
``pip install 'platform-core[service]'``. Everything public is importable from here, and
imported on first use: ``import platform_core`` loads neither pyarrow nor pydantic nor any
of the service kit, so a package that needs a schema does not pay for a web stack.
"""

from typing import TYPE_CHECKING, Any

# arrowpool comes first: it picks Arrow's pool before anything below loads pyarrow
from . import arrowpool
from ._extras import MissingExtraError, available, keep_function_names, lazy_core_exports
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

if TYPE_CHECKING:  # the same names as _EXPORTS and _SUBMODULES, for type checkers and readers
    __version__: str
    from . import auth, http, tls
    from .csv import (
        CsvError,
        csv_column_names,
        read_csv_batches,
        sniff_csv_schema,
        write_csv_bytes,
    )
    from .ids import id_time, is_valid_id, new_id
    from .inference import infer_schema
    from .integrity import canonical_json, sha256_bytes, sha256_file, sha256_stream, stable_hash
    from .jsoncells import json_cell, json_rows
    from .live import ClusterState, LiveSink, escape_key, unescape_key
    from .logs import JsonFormatter, configure_logging
    from .memcap import address_space, cap_memory, physical_memory, widen_cap
    from .netloc import host_header_name, is_local_request, is_loopback, origin_is_local
    from .ownership import DirectoryInUseError, DirectoryLock, lock_directory
    from .plugin import PLUGIN_GROUP, Plugin, PluginError, check_plugins, discover_plugins
    from .redact import CREDENTIAL_PARAMS, RedactTokens, install_log_redaction, redact
    from .rowhash import hash_columns
    from .running import announce, find_running, withdraw
    from .schema import Field, Schema
    from .service import StartError, bind, configure_service_logging
    from .services import ServiceKey, Services, plugin_order
    from .settings import PackageSettings, PlatformSettings, load_settings, package_settings
    from .sizes import MAX_MEM_CAP, SIZE_FORMS, SIZE_UNITS, MemCap, format_size, parse_bytes
    from .tls import ServerTLS, client_context, connection_hint, flight_root_certs, server_tls
    from .types import FieldType, from_arrow, parse_type, type_name
    from .users import User, UserStore

_EXPORTS = {
    **dict.fromkeys(
        ["CsvError", "csv_column_names", "read_csv_batches", "sniff_csv_schema", "write_csv_bytes"],
        ".csv",
    ),
    **dict.fromkeys(["id_time", "is_valid_id", "new_id"], ".ids"),
    "infer_schema": ".inference",
    **dict.fromkeys(
        ["canonical_json", "sha256_bytes", "sha256_file", "sha256_stream", "stable_hash"],
        ".integrity",
    ),
    **dict.fromkeys(["json_cell", "json_rows"], ".jsoncells"),
    **dict.fromkeys(["ClusterState", "LiveSink", "escape_key", "unescape_key"], ".live"),
    **dict.fromkeys(["JsonFormatter", "configure_logging"], ".logs"),
    **dict.fromkeys(["address_space", "cap_memory", "physical_memory", "widen_cap"], ".memcap"),
    **dict.fromkeys(
        ["host_header_name", "is_local_request", "is_loopback", "origin_is_local"], ".netloc"
    ),
    **dict.fromkeys(["DirectoryInUseError", "DirectoryLock", "lock_directory"], ".ownership"),
    **dict.fromkeys(
        ["PLUGIN_GROUP", "Plugin", "PluginError", "check_plugins", "discover_plugins"], ".plugin"
    ),
    **dict.fromkeys(
        ["CREDENTIAL_PARAMS", "RedactTokens", "install_log_redaction", "redact"], ".redact"
    ),
    "hash_columns": ".rowhash",
    **dict.fromkeys(["announce", "find_running", "withdraw"], ".running"),
    **dict.fromkeys(["Field", "Schema"], ".schema"),
    **dict.fromkeys(["StartError", "bind", "configure_service_logging"], ".service"),
    **dict.fromkeys(["ServiceKey", "Services", "plugin_order"], ".services"),
    **dict.fromkeys(
        ["PackageSettings", "PlatformSettings", "load_settings", "package_settings"], ".settings"
    ),
    **dict.fromkeys(
        ["MAX_MEM_CAP", "SIZE_FORMS", "SIZE_UNITS", "MemCap", "format_size", "parse_bytes"],
        ".sizes",
    ),
    **dict.fromkeys(
        ["ServerTLS", "client_context", "connection_hint", "flight_root_certs", "server_tls"],
        ".tls",
    ),
    **dict.fromkeys(["FieldType", "from_arrow", "parse_type", "type_name"], ".types"),
    **dict.fromkeys(["User", "UserStore"], ".users"),
}
"""Public name -> the module defining it, imported on first use."""

_SUBMODULES = ("auth", "cli", "http", "tls")
"""Submodules offered as attributes (``platform_core.auth``), also imported on first use."""

_NEEDS = {**dict.fromkeys(["User", "UserStore", "auth", "cli", "http"], "service")}
"""Public names whose module needs an extra: left out of ``__all__`` and ``dir()`` when it is
not installed, so ``from platform_core import *``, ``help()`` and ``inspect`` work without it."""

_lazy_getattr, __dir__ = lazy_core_exports(__name__, _EXPORTS, _SUBMODULES, _NEEDS)
keep_function_names(__name__, ["redact"])  # the function `redact`, not its module `.redact`


def __getattr__(name: str) -> Any:
    """A public name on first use; ``__version__`` too (``importlib.metadata`` costs 20 ms)."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("platform-core")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            found = "0.0.0"
        globals()["__version__"] = found
        return found
    return _lazy_getattr(name)


__all__ = [
    "CREDENTIAL_PARAMS",
    "MAX_MEM_CAP",
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
    "MemCap",
    "MissingExtraError",
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
    "ServiceKey",
    "Services",
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
    "format_size",
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
    "plugin_order",
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
    "widen_cap",
    "withdraw",
    "write_csv_bytes",
]
__all__ = [n for n in __all__ if n not in _NEEDS or available(_NEEDS[n])]
