"""The ``workers`` plugin: mounts the worker routes at ``/api/workers`` in the gateway.

A mounted app, not a router: plugin routers sit behind the gateway's user-token check, and
worker tokens are refused there (the routes check their own tokens; see :mod:`.api`). The
routes serve the hub of the platform's browser backend (``ELYTRA_BACKEND=browser``): the
worker pool the ``elytra`` plugin provides (:data:`elytra.services.WORKER_POOL`); with another
backend they answer 503.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from platform_core import Plugin

from ..services import WORKER_POOL

if TYPE_CHECKING:  # settings (pydantic) load when the gateway starts, not for `platform --help`
    from platform_core import PlatformSettings, Services

    from .hub import WorkerHub

__all__ = ["plugin"]


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""

    def app(settings: PlatformSettings, services: Services) -> Any:
        from ..backends.browser import BrowserBackend
        from .api import make_workers_app

        def hub() -> WorkerHub | None:
            if not services.running(WORKER_POOL):
                return None
            pool = services.get(WORKER_POOL).backend
            return pool.hub if isinstance(pool, BrowserBackend) else None

        return make_workers_app(settings, hub)

    return Plugin(
        name="workers",
        prefix="/api/workers",
        app=app,
        requires=(WORKER_POOL,),
        description="Browser workers of elytra's browser backend (worker tokens only).",
    )
