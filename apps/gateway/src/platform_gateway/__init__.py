"""platform_gateway: the platform's front door.

A FastAPI app that discovers the subsystems' plugins, includes their routers behind token
auth or mounts their apps, runs their lifespans, and serves login, versions and offline
OpenAPI docs; plus the ``platform`` CLI (``platform up``).
"""

from importlib.metadata import PackageNotFoundError, version

from .app import create_app
from .security import require_admin, require_token

try:
    __version__ = version("platform-gateway")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__", "create_app", "require_admin", "require_token"]
