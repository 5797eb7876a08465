"""The platform's HTTP clients, set up in one place: every ``httpx`` client of every package
comes from :func:`http_client` or :func:`async_http_client`.

What they share, so no client of the platform differs from another by accident:

- **TLS verification** from the platform's settings: ``verify`` is an ``ssl.SSLContext``, by
  default :func:`platform_core.tls.client_context` (``PLATFORM_TLS_CA``, else the system's
  trust store; never httpx's own certifi bundle, and never off).
- **Timeouts**, always finite: ``timeout`` seconds for each step, with ``connect``, ``read``
  and ``pool`` (waiting for a pooled connection) overridable: a long poll reads longer than
  it connects.
- **Retries of failed connections** (``retries``), which resend nothing: a request that
  reached the server is never retried here, so a write cannot be applied twice. A client
  talking to a platform the user just started (the CLIs, a remote session, the lake client)
  retries; a node's links to its peers and a replica's forwards do not, because they must
  notice a peer that is gone at once.
- No redirects followed (a token is never sent on to another host), and an optional bearer
  ``token`` as the ``Authorization`` header.

httpx is imported when a client is made, not with this module, so a command's ``--help``
does not load it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._extras import require

if TYPE_CHECKING:
    import httpx

    from ..settings import PlatformSettings

__all__ = [
    "CONNECT_RETRIES",
    "DEFAULT_TIMEOUT",
    "async_http_client",
    "client_options",
    "http_client",
]

DEFAULT_TIMEOUT = 60.0
"""Seconds for each step of a request (connect, write, read, wait for a pooled connection)."""
CONNECT_RETRIES = 2
"""Connection attempts retried by clients of a platform that may still be starting."""


def client_options(
    settings: PlatformSettings | None = None,
    *,
    base_url: str = "",
    token: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    connect: float | None = None,
    read: float | None = None,
    pool: float | None = None,
    verify: ssl.SSLContext | None = None,
    max_connections: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments :func:`http_client` and :func:`async_http_client` give httpx
    (without the transport): verification, timeouts, headers, limits, no redirects."""
    lib = require("httpx", what="platform_core.http.http_client")

    if verify is None:
        from ..settings import load_settings
        from ..tls import client_context

        verify = client_context(settings if settings is not None else load_settings())
    if not isinstance(verify, ssl.SSLContext):
        raise TypeError(
            f"verify must be an ssl.SSLContext (platform_core.tls.client_context), not {verify!r}"
        )
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    limits = (
        lib.Limits(max_connections=max_connections) if max_connections is not None else lib.Limits()
    )
    return {
        "base_url": base_url.rstrip("/"),
        "headers": sent,
        "timeout": lib.Timeout(
            timeout,
            connect=timeout if connect is None else connect,
            read=timeout if read is None else read,
            pool=timeout if pool is None else pool,
        ),
        "verify": verify,
        "follow_redirects": False,
        "limits": limits,
    }


def http_client(
    settings: PlatformSettings | None = None, *, retries: int = 0, **options: Any
) -> httpx.Client:
    """A blocking ``httpx.Client`` set up as the module says; ``options`` are
    :func:`client_options`' (``base_url``, ``token``, ``headers``, ``timeout``, ``connect``,
    ``read``, ``pool``, ``verify``, ``max_connections``)."""
    lib = require("httpx", what="platform_core.http.http_client")

    kwargs = client_options(settings, **options)
    transport = lib.HTTPTransport(verify=kwargs["verify"], limits=kwargs["limits"], retries=retries)
    client: httpx.Client = lib.Client(transport=transport, **kwargs)
    return client


def async_http_client(
    settings: PlatformSettings | None = None, *, retries: int = 0, **options: Any
) -> httpx.AsyncClient:
    """:func:`http_client` for asyncio code (an ``httpx.AsyncClient``)."""
    lib = require("httpx", what="platform_core.http.async_http_client")

    kwargs = client_options(settings, **options)
    transport = lib.AsyncHTTPTransport(
        verify=kwargs["verify"], limits=kwargs["limits"], retries=retries
    )
    client: httpx.AsyncClient = lib.AsyncClient(transport=transport, **kwargs)
    return client
