"""Whether a request comes from this machine: the loopback rule every server applies.

Dev-mode powers (login without a password, Elkyn's ``owner`` credential) are granted only
when the client address is loopback and the ``Host`` header names a loopback host, which a
page from another site cannot make a browser send (DNS rebinding), and when a browser that
says where the request comes from (``Origin``, ``Sec-Fetch-Site``) says it is this machine.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["host_header_name", "is_local_request", "is_loopback", "origin_is_local"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1, from a dual-stack socket
    return address.is_loopback


def host_header_name(value: str | None) -> str | None:
    """The hostname of a ``Host`` header: ``"[::1]:8080"`` -> ``"::1"``, ``"a:80"`` -> ``"a"``."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else None
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value or None


def origin_is_local(origin: str | None, fetch_site: str | None = None) -> bool:
    """Whether a browser's ``Origin`` / ``Sec-Fetch-Site`` allow the request: absent (not a
    browser, or a same-origin GET), or a loopback origin; ``null`` and other sites are not."""
    if fetch_site is not None and fetch_site.strip().lower() == "cross-site":
        return False
    if origin is None:
        return True
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")


def is_local_request(
    client: str | None,
    host: str | None,
    origin: str | None = None,
    fetch_site: str | None = None,
) -> bool:
    """Client address and ``Host`` both loopback, and no other site's page behind it."""
    if not client or not is_loopback(client):
        return False
    hostname = host_header_name(host)
    return hostname is not None and is_loopback(hostname) and origin_is_local(origin, fetch_site)
