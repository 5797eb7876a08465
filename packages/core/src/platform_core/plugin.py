"""Plugins: how a package joins the gateway (routes, lifespan) and the ``platform`` CLI.

A package declares an entry point in the group ``platform.plugins`` naming a function that
returns a :class:`Plugin`. The gateway includes the plugin's router (shown in ``/docs``, behind
the gateway's token check) or mounts its ASGI app (which keeps its own error handlers and
auth), runs its lifespan inside the gateway's own (Starlette never runs a mounted app's
lifespan), and adds its Typer app as ``platform <name> ...``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from .errors import PlatformError

if TYPE_CHECKING:
    from .live import LiveSink
    from .settings import PlatformSettings

__all__ = ["PLUGIN_GROUP", "Plugin", "PluginError", "check_plugins", "discover_plugins"]

log = logging.getLogger(__name__)

PLUGIN_GROUP = "platform.plugins"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_PREFIX_RE = re.compile(r"^(/[a-z0-9][a-z0-9._-]*)+$")

RouterFactory = Callable[["PlatformSettings"], Any]
"""Returns a ``fastapi.APIRouter`` (typed loosely so the core does not depend on FastAPI)."""
AppFactory = Callable[["PlatformSettings"], Any]
"""Returns an ASGI application to mount at the plugin's prefix."""
Lifespan = Callable[["PlatformSettings"], AbstractAsyncContextManager[None]]
"""Opens what the plugin serves (LMDB, a lake node, ...) and closes it on exit."""
LiveSinkFactory = Callable[[], "LiveSink | None"]
"""The store's sink for live state, once the lifespan opened it (see :mod:`platform_core.live`)."""
LiveSource = Callable[["LiveSink"], AbstractAsyncContextManager[None]]
"""Publishes live state into the sink while open (see :mod:`platform_core.live`)."""


class PluginError(PlatformError):
    """A plugin is malformed, clashes with another one, or failed to load."""

    kind = "plugin"


@dataclass(frozen=True)
class Plugin:
    """What a package contributes: a URL prefix with a router or an app, a lifespan, a CLI."""

    name: str
    prefix: str = ""
    router: RouterFactory | None = None
    app: AppFactory | None = None
    lifespan: Lifespan | None = None
    cli: Any | None = None
    """A ``typer.Typer`` added to the ``platform`` CLI as ``platform <name>``."""
    description: str = ""
    live_sink: LiveSinkFactory | None = None
    """Offered by the one plugin that provides a store for live state (Elkyn)."""
    live_source: LiveSource | None = None
    """Started by the gateway after every lifespan, with the sink, when there is one."""
    status: Callable[[], dict[str, Any]] | None = None
    """This plugin's part of ``platform status`` (JSON-able, cheap; run on a worker thread).
    A ``peers`` list of ``{"id", "url", "state"}`` in it names the other platforms."""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise PluginError(
                f"plugin name {self.name!r} is not allowed: use 1-32 lowercase letters, digits "
                "or '-', starting with a letter"
            )
        if self.router is not None and self.app is not None:
            raise PluginError(f"plugin {self.name!r} gives both a router and an app; give one")
        serves_http = self.router is not None or self.app is not None
        if serves_http and not _PREFIX_RE.match(self.prefix):
            raise PluginError(
                f"plugin {self.name!r} has prefix {self.prefix!r}: a prefix is a path like "
                "'/db' or '/api/lake' (lowercase, no trailing slash)"
            )
        if not serves_http and self.prefix:
            raise PluginError(f"plugin {self.name!r} has a prefix but no router or app to serve")


def discover_plugins(group: str = PLUGIN_GROUP) -> list[Plugin]:
    """Load every installed plugin of ``group``, sorted by name; clashes raise ``PluginError``."""
    plugins: list[Plugin] = []
    for ep in entry_points(group=group):
        where = f"entry point {ep.name!r} ({ep.value})"
        try:
            factory = ep.load()
            plugin = factory()
        except Exception as exc:
            raise PluginError(f"could not load plugin {where}: {exc}") from exc
        if not isinstance(plugin, Plugin):
            raise PluginError(
                f"{where} returned {type(plugin).__name__}, not a platform_core.Plugin"
            )
        plugins.append(plugin)
    plugins.sort(key=lambda p: p.name)
    check_plugins(plugins)
    log.debug("discovered plugins: %s", [p.name for p in plugins])
    return plugins


def _overlap(a: str, b: str) -> bool:
    short, long = sorted([a, b], key=len)
    return long == short or long.startswith(short + "/")


def check_plugins(plugins: Sequence[Plugin], reserved: Sequence[str] = ()) -> None:
    """Raise ``PluginError`` on a duplicate name, or a prefix overlapping another or ``reserved``."""
    names: set[str] = set()
    prefixes: dict[str, str] = {}
    for plugin in plugins:
        if plugin.name in names:
            raise PluginError(f"two installed plugins are named {plugin.name!r}; uninstall one")
        names.add(plugin.name)
        if not plugin.prefix:
            continue
        for path in reserved:
            if _overlap(plugin.prefix, path):
                raise PluginError(
                    f"plugin {plugin.name!r} prefix {plugin.prefix} overlaps the reserved "
                    f"route {path}; choose another prefix"
                )
        for prefix, other in prefixes.items():
            if _overlap(plugin.prefix, prefix):
                raise PluginError(
                    f"plugins {other!r} ({prefix}) and {plugin.name!r} ({plugin.prefix}) "
                    "serve overlapping URL prefixes"
                )
        prefixes[plugin.prefix] = plugin.name
