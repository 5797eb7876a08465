"""platform_gateway: the platform's front door.

A FastAPI app that discovers the subsystems' plugins, includes their routers behind token
auth or mounts their apps, runs their lifespans, and serves login, versions and offline
OpenAPI docs; plus the ``platform`` CLI (``platform up``).
"""

from .app import create_app
from .logs import RedactTokens, install_log_redaction
from .security import require_admin, require_token
from .versions import __version__

__all__ = [
    "RedactTokens",
    "__version__",
    "create_app",
    "install_log_redaction",
    "require_admin",
    "require_token",
]
