"""Attaching plugins to the gateway: clash checks, router inclusion, app mounting, lifespans."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from platform_core import LiveSink, PlatformSettings, Plugin, PluginError
from platform_core import check_plugins as core_check_plugins

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


def check_plugins(plugins: Sequence[Plugin]) -> None:
    """Raise ``PluginError`` on a duplicate name, a prefix overlapping another's or the
    gateway's, or more than one plugin offering a live sink."""
    core_check_plugins(plugins, reserved=GATEWAY_PATHS)
    sinks = [p.name for p in plugins if p.live_sink is not None]
    if len(sinks) > 1:
        raise PluginError(
            f"plugins {', '.join(repr(n) for n in sinks)} each offer a live-state sink; the "
            "gateway wires exactly one: uninstall all but one of them"
        )


def live_sink(plugins: Sequence[Plugin]) -> LiveSink | None:
    """The live-state sink of the plugin offering one, once its lifespan opened it (else None)."""
    for plugin in plugins:
        if plugin.live_sink is not None:
            return plugin.live_sink()
    return None


@asynccontextmanager
async def run_live(plugins: Sequence[Plugin]) -> AsyncIterator[None]:
    """Start every plugin's live-state source with the sink, and stop them in reverse.

    Entered after every lifespan started and left before any stops, so a source can rely on
    its own plugin and the sink's. Without a sink, sources do nothing. A source failing to
    start is logged and skipped: live views are a convenience, never a reason not to serve.
    """
    sink = live_sink(plugins)
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
                context = plugin.live_source(sink)
                await context.__aenter__()
            except Exception:
                log.exception("plugin %r: its live-state source failed to start", plugin.name)
                continue
            stack.push_async_callback(_stop, plugin, context)
        yield


def attach_plugin(app: FastAPI, plugin: Plugin, settings: PlatformSettings) -> None:
    """Include the plugin's router behind ``require_token``, or mount its ASGI app as is."""
    if plugin.router is not None:
        try:
            router = plugin.router(settings)
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
            sub_app = plugin.app(settings)
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
    plugins: Sequence[Plugin], settings: PlatformSettings
) -> AsyncIterator[None]:
    """Enter each plugin's lifespan in order and exit them in reverse.

    If one fails to start, those already started are stopped and ``PluginError`` is raised.
    A lifespan failing on exit is logged, and the others still stop; so do they when one is
    cancelled while stopping (a forced exit), and the cancellation is then re-raised.
    """
    async with AsyncExitStack() as stack:
        for plugin in plugins:
            if plugin.lifespan is None:
                continue
            try:
                context = plugin.lifespan(settings)
                await context.__aenter__()
            except Exception as exc:
                log.error(
                    "plugin %r failed to start: %s: %s (stopping the plugins already started)",
                    plugin.name,
                    type(exc).__name__,
                    exc,
                )
                raise PluginError(f"plugin {plugin.name!r} failed to start: {exc}") from exc
            stack.push_async_callback(_stop, plugin, context)
            log.info("started plugin %s", plugin.name)
        yield


async def _stop(plugin: Plugin, context: AbstractAsyncContextManager[None]) -> None:
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
