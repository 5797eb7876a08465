"""Attaching plugins to the gateway: clash checks, router inclusion, app mounting, lifespans
started in the order of the services graph (providers first), live-state wiring."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from platform_core import LiveSink, PlatformSettings, Plugin, PluginError
from platform_core import check_plugins as core_check_plugins
from platform_core.services import ServiceRegistry, call_hook, plugin_order

from .security import require_token

__all__ = [
    "GATEWAY_PATHS",
    "attach_plugin",
    "check_plugins",
    "live_sink",
    "run_lifespans",
    "run_live",
]

log = logging.getLogger(__name__)

GATEWAY_PATHS = (
    "/health",
    "/docs",
    "/openapi.json",
    "/api/login",
    "/api/logout",
    "/api/users",
    "/api/tokens",
    "/api/audit",
    "/api/version",
    "/api/platform",
    "/internal/platform",
)
"""Paths the gateway serves itself; no plugin prefix may cover or sit under one."""


def check_plugins(plugins: Sequence[Plugin]) -> list[Plugin]:
    """``plugins`` in start order (providers before the plugins requiring their services).

    Raise ``PluginError`` on a duplicate name, a prefix overlapping another's or the gateway's,
    more than one plugin offering a live sink, a required service no plugin provides, a service
    two plugins provide, or plugins requiring each other's services in a cycle."""
    core_check_plugins(plugins, reserved=GATEWAY_PATHS)
    sinks = [p.name for p in plugins if p.live_sink is not None]
    if len(sinks) > 1:
        raise PluginError(
            f"plugins {', '.join(repr(n) for n in sinks)} each offer a live-state sink; the "
            "gateway wires exactly one: uninstall all but one of them"
        )
    return plugin_order(plugins)


def live_sink(plugins: Sequence[Plugin], services: ServiceRegistry) -> LiveSink | None:
    """The live-state sink of the plugin offering one, once its lifespan opened it (else None)."""
    for plugin in plugins:
        if plugin.live_sink is not None:
            return call_hook(plugin.live_sink, services.view(plugin))
    return None


@asynccontextmanager
async def run_live(plugins: Sequence[Plugin], services: ServiceRegistry) -> AsyncIterator[None]:
    """Start every plugin's live-state source with the sink, and stop them in reverse.

    Entered after every lifespan started and left before any stops, so a source can rely on
    its own plugin and the sink's. Without a sink, sources do nothing. A source failing to
    start is logged and skipped: live views are a convenience, never a reason not to serve.
    """
    sink = live_sink(plugins, services)
    sources = [p for p in plugins if p.live_source is not None]
    if sink is None:
        if sources:
            log.info("no plugin offers a live-state sink; live sources are not started")
        yield
        return
    async with AsyncExitStack() as stack:
        for plugin in sources:
            assert plugin.live_source is not None
            try:
                context = call_hook(plugin.live_source, sink, services.view(plugin))
                await context.__aenter__()
            except Exception:
                log.exception("plugin %r: its live-state source failed to start", plugin.name)
                continue
            stack.push_async_callback(_stop, plugin, context)
        yield


def attach_plugin(
    app: FastAPI, plugin: Plugin, settings: PlatformSettings, services: ServiceRegistry
) -> None:
    """Include the plugin's router behind ``require_token``, or mount its ASGI app as is."""
    if plugin.router is not None:
        try:
            router = call_hook(plugin.router, settings, services.view(plugin))
        except Exception as exc:
            raise PluginError(f"plugin {plugin.name!r}: its router factory failed: {exc}") from exc
        if not isinstance(router, APIRouter):
            raise PluginError(
                f"plugin {plugin.name!r}: its router factory returned "
                f"{type(router).__name__}, not a fastapi.APIRouter"
            )
        app.include_router(
            router,
            prefix=plugin.prefix,
            dependencies=[Depends(require_token)],
            tags=[plugin.name],
        )
    elif plugin.app is not None:
        try:
            sub_app = call_hook(plugin.app, settings, services.view(plugin))
        except Exception as exc:
            raise PluginError(f"plugin {plugin.name!r}: its app factory failed: {exc}") from exc
        if not callable(sub_app):
            raise PluginError(
                f"plugin {plugin.name!r}: its app factory returned "
                f"{type(sub_app).__name__}, not an ASGI app"
            )
        app.mount(plugin.prefix, sub_app, name=plugin.name)


@asynccontextmanager
async def run_lifespans(
    plugins: Sequence[Plugin], settings: PlatformSettings, services: ServiceRegistry
) -> AsyncIterator[None]:
    """Enter each plugin's lifespan, providers first (``plugin_order``), and exit them in
    reverse; what a lifespan yields is registered in ``services`` until it exits.

    If one fails to start, those already started are stopped and ``PluginError`` is raised.
    A lifespan failing on exit is logged, and the others still stop; so do they when one is
    cancelled while stopping (a forced exit), and the cancellation is then re-raised.
    """
    async with AsyncExitStack() as stack:
        for plugin in plugin_order(plugins):
            if plugin.lifespan is None:
                continue
            try:
                context = call_hook(plugin.lifespan, settings, services.view(plugin))
                provided = await context.__aenter__()
            except Exception as exc:
                log.error(
                    "plugin %r failed to start: %s: %s (stopping the plugins already started)",
                    plugin.name,
                    type(exc).__name__,
                    exc,
                )
                raise PluginError(f"plugin {plugin.name!r} failed to start: {exc}") from exc
            stack.push_async_callback(_stop, plugin, context, services)
            services.provide(plugin, provided)  # a wrong yield: it stops with the others
            log.info("started plugin %s", plugin.name)
        yield


async def _stop(
    plugin: Plugin,
    context: AbstractAsyncContextManager[object],
    services: ServiceRegistry | None = None,
) -> None:
    # What it provided is withdrawn first: a request in between gets a 503, not a closed node.
    if services is not None:
        services.withdraw(plugin)
    # Each plugin sees a clean exit, even when another one failed before it.
    try:
        await context.__aexit__(None, None, None)
    except asyncio.CancelledError:
        # A forced exit: the plugins after this one in the stack still get to stop.
        log.warning("plugin %r was interrupted while stopping (forced exit)", plugin.name)
        raise
    except Exception:
        log.exception("plugin %r failed to stop cleanly", plugin.name)
    else:
        log.info("stopped plugin %s", plugin.name)
