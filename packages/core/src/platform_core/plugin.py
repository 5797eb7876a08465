"""Plugins: how a package joins the gateway (routes, lifespan) and the ``platform`` CLI.

A package declares an entry point in the group ``platform.plugins`` naming a function that
returns a :class:`Plugin`. The gateway includes the plugin's router (shown in ``/docs``, behind
the gateway's token check) or mounts its ASGI app (which keeps its own error handlers and
auth), runs its lifespan inside the gateway's own (Starlette never runs a mounted app's
lifespan), and adds its Typer app as ``platform <name> ...``.

Plugins meet through services (:mod:`platform_core.services`), never through each other's
module state: a plugin declares the keys it ``provides`` (its lifespan yields their values)
and ``requires``; the gateway starts providers first and hands every hook the plugin's
:class:`~platform_core.services.Services` as its last argument.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from .services import PluginError, ServiceKey

if TYPE_CHECKING:
    from .live import LiveSink
    from .services import Services
    from .settings import PlatformSettings

__all__ = ["PLUGIN_GROUP", "Plugin", "PluginError", "check_plugins", "discover_plugins"]

log = logging.getLogger(__name__)

PLUGIN_GROUP = "platform.plugins"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_PREFIX_RE = re.compile(r"^(/[a-z0-9][a-z0-9._-]*)+$")

# Every hook takes the plugin's ``Services`` as its last argument; a hook written before
# services existed (one argument fewer) still works (``platform_core.services.call_hook``).
RouterFactory = Callable[["PlatformSettings", "Services"], Any]
"""Returns a ``fastapi.APIRouter`` (typed loosely so the core does not depend on FastAPI)."""
AppFactory = Callable[["PlatformSettings", "Services"], Any]
"""Returns an ASGI application to mount at the plugin's prefix."""
Provided = Mapping[ServiceKey[Any], Any] | None
"""What a lifespan yields: a value for each key the plugin ``provides`` (None: provides none)."""
Lifespan = Callable[["PlatformSettings", "Services"], AbstractAsyncContextManager[Provided]]
"""Opens what the plugin serves (LMDB, a lake node, ...), yields what it provides, and closes
it on exit; entered after the lifespans of the plugins providing what it requires."""
LiveSinkFactory = Callable[["Services"], "LiveSink | None"]
"""The store's sink for live state, once the lifespan opened it (see :mod:`platform_core.live`)."""
LiveSource = Callable[["LiveSink", "Services"], AbstractAsyncContextManager[None]]
"""Publishes live state into the sink while open (see :mod:`platform_core.live`)."""


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
    status: Callable[[Services], dict[str, Any]] | None = None
    """This plugin's part of ``platform status`` (JSON-able, cheap; run on a worker thread).
    A ``peers`` list of ``{"id", "url", "state"}`` in it names the other platforms."""
    provides: tuple[ServiceKey[Any], ...] = ()
    """The services its lifespan yields (a ``{key: value}`` mapping), for other plugins."""
    requires: tuple[ServiceKey[Any], ...] = ()
    """The services it uses: their providers start before it and stop after it."""

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
        for field in ("provides", "requires"):
            keys = getattr(self, field)
            if not isinstance(keys, tuple) or not all(isinstance(k, ServiceKey) for k in keys):
                raise PluginError(
                    f"plugin {self.name!r}: {field} is a tuple of platform_core.ServiceKey"
                )
        if self.provides and self.lifespan is None:
            raise PluginError(
                f"plugin {self.name!r} provides {', '.join(k.name for k in self.provides)} "
                "but has no lifespan to yield them"
            )
        if set(self.provides) & set(self.requires):
            raise PluginError(f"plugin {self.name!r} requires a service it provides itself")


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
