"""The gateway's login rules (admin password, dev mode); the token dependencies
(``require_token``, ``require_admin``) are the kit's, re-exported from
:mod:`platform_core.http` for plugins that imported them from here.
"""

from __future__ import annotations

from platform_core import PlatformSettings, SettingsError, host_header_name, is_loopback
from platform_core.http import is_local_connection, require_admin, require_token

__all__ = [
    "admin_password",
    "host_header_name",
    "is_local_connection",
    "is_loopback",
    "login_mode",
    "require_admin",
    "require_token",
]


def admin_password(settings: PlatformSettings) -> str | None:
    """The admin password, or ``None`` when unset (core's settings turn an empty one into unset)."""
    secret = settings.admin_password
    return secret.get_secret_value() if secret is not None else None


def login_mode(settings: PlatformSettings) -> bool:
    """``True`` for dev mode (no password, loopback); raises ``SettingsError`` if unsafe."""
    password = admin_password(settings)
    if password is not None:
        return False
    if is_loopback(settings.host):
        return True
    raise SettingsError(
        f"the gateway would listen on {settings.host!r}, reachable from other machines, but "
        "PLATFORM_ADMIN_PASSWORD is not set, so anyone could log in as admin; set "
        "PLATFORM_ADMIN_PASSWORD, or bind 127.0.0.1 (--host 127.0.0.1) for local dev mode"
    )
