"""The gateway application: ``create_app`` wires settings, auth, errors, docs and plugins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from platform_core import (
    ClusterState,
    PlatformSettings,
    Plugin,
    auth,
    discover_plugins,
    load_settings,
)
from platform_core.http import BodyLimitMiddleware, CatchAllMiddleware, install_error_handlers
from platform_core.services import ServiceRegistry

from . import login, rayjoin, status, users_api
from .accounts import Accounts
from .audit import AuditMiddleware
from .docs import install_docs
from .plugins import (
    GATEWAY_PATHS,
    attach_plugin,
    check_plugins,
    live_sink,
    run_lifespans,
    run_live,
)
from .security import login_mode
from .ui import UIFiles, ui_root
from .versions import __version__, platform_versions

__all__ = ["create_app"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: PlatformSettings = app.state.settings
    plugins: list[Plugin] = app.state.plugins
    services: ServiceRegistry = app.state.services
    started = False
    try:
        async with (
            run_lifespans(plugins, settings, services),
            _accounts(app),
            run_live(plugins, services),
        ):
            if app.state.dev_mode:
                log.warning(
                    "dev mode: PLATFORM_ADMIN_PASSWORD is not set, so POST /api/login gives an "
                    "admin token without a password to clients on this machine (allowed only "
                    "because the gateway binds %s)",
                    settings.host,
                )
            names = ", ".join(p.name for p in plugins) or "none"
            log.info("gateway ready with plugins: %s", names)
            started = True
            yield
            log.info("gateway stopping")
    except asyncio.CancelledError:
        if not started:
            raise
        # The server gave up waiting for the shutdown (a second Ctrl-C): this task ends here
        # anyway, and a quiet end spares the log a traceback of the cancellation.
        log.warning("gateway stopped by force; plugins still stopping were interrupted")


@asynccontextmanager
async def _accounts(app: FastAPI) -> AsyncIterator[None]:
    """Token revocation, the login throttle and the audit trail over the cluster's shared
    state (Elkyn's, once its lifespan opened it), or over this process's memory without one."""
    sink = live_sink(app.state.plugins, app.state.services)
    state = sink if isinstance(sink, ClusterState) else None
    if state is None:
        log.warning(
            "no plugin offers cluster state (Elkyn): revoked tokens, login counters and the "
            "audit trail live in this process's memory only"
        )
    accounts = Accounts(app.state.settings, state)
    app.state.accounts = accounts
    async with accounts.running():
        yield


def create_app(
    settings: PlatformSettings | None = None, plugins: list[Plugin] | None = None
) -> FastAPI:
    """Build the gateway for ``settings`` (default: the environment's) and ``plugins``.

    ``plugins`` defaults to the installed ones (``platform_core.discover_plugins()``). Raises
    ``SettingsError`` when binding a non-loopback host without an admin password, and
    ``PluginError`` when plugins clash, a service one requires has no provider (or two), plugins
    require each other in a cycle, or a plugin's router/app factory fails.
    """
    settings = settings if settings is not None else load_settings()
    plugins = check_plugins(discover_plugins() if plugins is None else list(plugins))
    dev_mode = login_mode(settings)
    token_signer = auth.signer(settings)  # once: creates PLATFORM_HOME/secret if missing

    app = FastAPI(
        title="platform",
        summary="The data platform's gateway: login, versions, and each subsystem's API.",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.plugins = plugins  # in start order: providers before those requiring them
    app.state.services = services = ServiceRegistry()
    app.state.signer = token_signer
    app.state.dev_mode = dev_mode
    app.state.ray_node = None  # `platform up --ray` sets its Ray node (platform_gateway.raynode)
    app.state.accounts = Accounts(settings, None)  # until the lifespan opens the shared state

    install_error_handlers(app)
    # Added last means outermost: CatchAll sees everything, including the body limit.
    app.add_middleware(AuditMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CatchAllMiddleware)
    install_docs(app)

    # HEAD too, for probes; a route of its own, as one route with two methods would give
    # OpenAPI two operations with the same id.
    @app.head("/health", include_in_schema=False)
    @app.get("/health", tags=["gateway"])
    async def health() -> dict[str, str]:
        """Liveness check; public. ``HEAD /health`` answers too (probes use it)."""
        return {"status": "ok"}

    @app.get("/api/version", tags=["gateway"])
    async def version() -> dict[str, str]:
        """Versions of the installed ``platform-*`` distributions; public."""
        return platform_versions()

    app.include_router(login.router)
    app.include_router(status.router)
    app.include_router(rayjoin.router)
    app.include_router(users_api.router)
    for plugin in plugins:
        attach_plugin(app, plugin, settings, services)
    # What answers when no route matched: the web UI's files; API paths keep their JSON 404.
    api_paths = ["/api", "/internal", *GATEWAY_PATHS, *(p.prefix for p in plugins if p.prefix)]
    app.router.default = UIFiles(ui_root(settings), api_paths, fallback=app.router.default)
    return app
