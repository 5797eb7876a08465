"""platform_gateway: the platform's front door.

A FastAPI app that discovers the subsystems' plugins, includes their routers behind token
auth or mounts their apps, runs their lifespans, and serves login, versions and offline
OpenAPI docs; plus the ``platform`` CLI (``platform up``).

The FastAPI side is imported on first use of ``create_app``, ``require_admin`` or
``require_token``, so the CLI's other commands start without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_core.lazy import lazy_exports

from .logs import RedactTokens, install_log_redaction
from .versions import __version__

if TYPE_CHECKING:  # the same names as _EXPORTS, for type checkers and readers
    from .app import create_app
    from .security import require_admin, require_token

_EXPORTS = {
    "create_app": ".app",
    "require_admin": ".security",
    "require_token": ".security",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "RedactTokens",
    "__version__",
    "create_app",
    "install_log_redaction",
    "require_admin",
    "require_token",
]
