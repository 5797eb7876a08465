"""One admin request from a CLI command to a running gateway (``platform status``,
``platform members``): the gateway found as ``platform up`` left it, the token resolved as
every client command resolves it, an error answer turned into its one-line ``PlatformError``."""

from __future__ import annotations

from typing import Any

from platform_core import UnavailableError
from platform_core.cli import default_url, normalize_url, resolve_token

__all__ = ["admin_call"]


def admin_call(
    method: str, url: str | None, token: str | None, path: str, **params: str
) -> tuple[str, Any]:
    """``method path`` on the gateway at ``url`` (default: the one ``platform up`` runs);
    the gateway's URL and its JSON answer."""
    target = normalize_url(url) if url else default_url()
    given = resolve_token(target, token)
    import httpx  # here: `platform --help` does not load it

    from platform_core.http import CONNECT_RETRIES, error_from_response, http_client

    try:
        with http_client(token=given, timeout=30, retries=CONNECT_RETRIES) as client:
            r = client.request(method, f"{target}{path}", params=params)
    except httpx.HTTPError as exc:
        raise UnavailableError(f"no platform answers at {target}: {exc}") from None
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = None
        raise error_from_response(r.status_code, body, r.text)
    return target, r.json()
