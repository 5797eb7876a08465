"""The ``workers`` plugin: mounts the worker routes at ``/api/workers`` in the gateway.

A mounted app, not a router: plugin routers sit behind the gateway's user-token check, and
worker tokens are refused there (the routes check their own tokens; see :mod:`.api`). The
routes serve the hub of the platform's browser backend (``ELYTRA_BACKEND=browser``, started by
the ``elytra`` plugin); with another backend they answer 503.
"""

from __future__ import annotations

from typing import Any

from platform_core import PlatformSettings, Plugin

__all__ = ["plugin"]


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""

    def app(settings: PlatformSettings) -> Any:
        from ..backends.browser import current_hub
        from .api import make_workers_app

        return make_workers_app(settings, current_hub)

    return Plugin(
        name="workers",
        prefix="/api/workers",
        app=app,
        description="Browser workers of elytra's browser backend (worker tokens only).",
    )
