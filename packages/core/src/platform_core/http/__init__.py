"""The service kit's HTTP boundary, the same on every server and client.

- :mod:`.wire`: a ``PlatformError`` to status + JSON body, and an error response back to
  the error class (clients); no web framework needed.
- :mod:`.foreign`: Arrow/DuckDB/LMDB exceptions translated into core kinds at the boundary.
- :mod:`.handlers`: FastAPI exception handlers and the catch-all middleware.
- :mod:`.limits`: the request body limit middleware (413 ``over_budget``).
- :mod:`.codings`: the transfer-coding guard every served app runs behind (501).
- :mod:`.tokens`: ``require_token`` / ``require_admin`` / ``require_cluster`` / ``require_worker`` / ``check_owner``.
- :mod:`.client`: ``http_client`` / ``async_http_client``, every client's httpx setup (TLS
  verification from the settings, timeouts, connection retries).
- ``is_loopback`` / ``is_local_request`` (from :mod:`platform_core.netloc`).

The server parts need Starlette/FastAPI (the ``platform-core[service]`` extra); they are
imported on first use, so clients and plain-ASGI servers (Elkyn) do not load them, and
without the extra they raise ``MissingExtraError`` naming the install command.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .._extras import missing_extra
from ..netloc import host_header_name, is_local_request, is_loopback, origin_is_local
from .foreign import Translator, register_translator, translate
from .wire import (
    check_error_answer,
    error_body,
    error_class,
    error_from_response,
    kind_of_status,
    status_of_kind,
)

if TYPE_CHECKING:
    from .client import CONNECT_RETRIES, async_http_client, http_client
    from .codings import TransferCodingGuard
    from .handlers import (
        CatchAllMiddleware,
        error_response,
        install_error_handlers,
        platform_error_response,
    )
    from .limits import BodyLimitMiddleware, BodyTooLarge
    from .tokens import (
        check_admin,
        check_owner,
        connection_token,
        is_local_connection,
        require_admin,
        require_cluster,
        require_token,
        require_worker,
    )

__all__ = [
    "CONNECT_RETRIES",
    "BodyLimitMiddleware",
    "BodyTooLarge",
    "CatchAllMiddleware",
    "TransferCodingGuard",
    "Translator",
    "async_http_client",
    "check_admin",
    "check_error_answer",
    "check_owner",
    "connection_token",
    "error_body",
    "error_class",
    "error_from_response",
    "error_response",
    "host_header_name",
    "http_client",
    "install_error_handlers",
    "is_local_connection",
    "is_local_request",
    "is_loopback",
    "kind_of_status",
    "origin_is_local",
    "platform_error_response",
    "register_translator",
    "require_admin",
    "require_cluster",
    "require_token",
    "require_worker",
    "status_of_kind",
    "translate",
]

_LAZY = {
    "CONNECT_RETRIES": "client",
    "async_http_client": "client",
    "http_client": "client",
    "CatchAllMiddleware": "handlers",
    "error_response": "handlers",
    "install_error_handlers": "handlers",
    "platform_error_response": "handlers",
    "TransferCodingGuard": "codings",
    "BodyLimitMiddleware": "limits",
    "BodyTooLarge": "limits",
    "check_admin": "tokens",
    "check_owner": "tokens",
    "connection_token": "tokens",
    "is_local_connection": "tokens",
    "require_admin": "tokens",
    "require_cluster": "tokens",
    "require_token": "tokens",
    "require_worker": "tokens",
}


def __getattr__(name: str) -> Any:
    """Import the Starlette/FastAPI parts on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        loaded = import_module(f".{module}", __name__)
    except ModuleNotFoundError as exc:
        raise missing_extra(f"{__name__}.{name}", exc.name or module) from None
    return getattr(loaded, name)
