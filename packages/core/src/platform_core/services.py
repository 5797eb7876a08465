"""Services plugins hand each other: typed keys, the graph that orders lifespans, the view a
plugin gets.

A plugin declares the :class:`ServiceKey` s it ``provides`` and ``requires``. Its lifespan
yields what it provides (``yield {LAKE_NODE: node}``), as a Starlette lifespan yields state;
the gateway checks each value against its key's type and keeps it until that lifespan exits.
Every hook of a plugin is handed its :class:`Services`: ``services.get(KEY)`` is the value,
typed by the key, for a key the plugin declared (an undeclared key is a ``PluginError``: the
declaration is the graph). :func:`plugin_order` starts providers before the plugins that
require them, whatever their names; a missing provider, two providers of one key or a cycle
is one ``PluginError`` naming the plugins and keys.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Generic, Protocol, TypeVar

from .errors import PlatformError, UnavailableError

__all__ = [
    "PluginError",
    "ServiceKey",
    "ServiceRegistry",
    "Services",
    "call_hook",
    "plugin_order",
]


class PluginError(PlatformError):
    """A plugin is malformed, clashes with another one, or failed to load (also
    ``platform_core.plugin.PluginError``)."""

    kind = "plugin"


T = TypeVar("T")


@dataclass(frozen=True, eq=False, repr=False)
class ServiceKey(Generic[T]):
    """The name and type of a service, e.g. ``ServiceKey("lake.node", "lake.node:LakeNode")``.

    ``type`` is the class (or ``runtime_checkable`` protocol) a value must be an instance of,
    or ``"module:Class"`` naming it, resolved only when a value is checked, so declaring a key
    imports nothing heavy. Keys compare by name.
    """

    name: str
    type: type[T] | str
    description: str = ""
    """What it is, for errors (``"the lake node"``); the name otherwise."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ServiceKey) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"ServiceKey({self.name!r})"

    @property
    def what(self) -> str:
        return self.description or f"service {self.name!r}"

    def resolve_type(self) -> builtins.type[Any]:
        """The class a value must be an instance of (imports the named module if needed)."""
        if not isinstance(self.type, str):
            return self.type
        module, _, qualname = self.type.partition(":")
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        if not isinstance(found, type):
            raise TypeError(f"service key {self.name!r}: {self.type!r} is not a class")
        return found


class PluginLike(Protocol):
    """What the graph reads of a ``platform_core.Plugin`` (which imports this module)."""

    @property
    def name(self) -> str: ...

    @property
    def provides(self) -> tuple[ServiceKey[Any], ...]: ...

    @property
    def requires(self) -> tuple[ServiceKey[Any], ...]: ...


P = TypeVar("P", bound=PluginLike)


class ServiceRegistry:
    """The services of one gateway: what each started plugin provided, until it stops."""

    def __init__(self) -> None:
        self._values: dict[ServiceKey[Any], Any] = {}

    def view(self, plugin: PluginLike) -> Services:
        """What ``plugin``'s hooks are handed: its required and provided keys."""
        return Services(self, plugin.name, (*plugin.requires, *plugin.provides))

    def provide(self, plugin: PluginLike, given: Mapping[ServiceKey[Any], Any] | None) -> None:
        """Take what ``plugin``'s lifespan yielded: exactly its ``provides``, each of its type."""
        given = dict(given or {})
        declared = set(plugin.provides)
        missing = [k.name for k in plugin.provides if k not in given]
        extra = [
            k.name if isinstance(k, ServiceKey) else repr(k) for k in given if k not in declared
        ]
        if missing or extra:
            said = []
            if missing:
                said.append(f"did not yield {', '.join(missing)} it declares in provides")
            if extra:
                said.append(f"yielded {', '.join(extra)} it does not declare in provides")
            raise PluginError(f"plugin {plugin.name!r}'s lifespan {' and '.join(said)}")
        for key, value in given.items():
            expected = key.resolve_type()
            if not isinstance(value, expected):
                raise PluginError(
                    f"plugin {plugin.name!r} provided {key.name!r} as "
                    f"{type(value).__name__}, not the {expected.__name__} its key names"
                )
        self._values.update(given)

    def withdraw(self, plugin: PluginLike) -> None:
        """Forget what ``plugin`` provided (before its lifespan exits: users get a 503)."""
        for key in plugin.provides:
            self._values.pop(key, None)

    def lookup(self, key: ServiceKey[T]) -> T:
        try:
            value: T = self._values[key]
        except KeyError:
            raise UnavailableError(
                f"{key.what} is not running (the platform is starting or stopping); "
                "retry in a moment"
            ) from None
        return value


class Services:
    """A plugin's view of the gateway's services: the keys it declared, nothing else."""

    def __init__(
        self, registry: ServiceRegistry, plugin: str, keys: Iterable[ServiceKey[Any]]
    ) -> None:
        self._registry = registry
        self._plugin = plugin
        self._keys = frozenset(keys)

    @classmethod
    def of(cls, values: Mapping[ServiceKey[Any], Any], plugin: str = "test") -> Services:
        """Services holding ``values`` (for a test calling a plugin's hooks directly)."""
        registry = ServiceRegistry()
        registry._values.update(values)
        return cls(registry, plugin, values)

    def get(self, key: ServiceKey[T]) -> T:
        """The running value of ``key`` (``UnavailableError``, a 503, while it is not)."""
        if key not in self._keys:
            raise PluginError(
                f"plugin {self._plugin!r} asked for {key.name!r}, which it does not declare "
                "in requires (or provides); declare it so the gateway starts its provider first"
            )
        return self._registry.lookup(key)

    def running(self, key: ServiceKey[Any]) -> bool:
        """Whether ``key``'s provider is running now."""
        try:
            self.get(key)
        except UnavailableError:
            return False
        return True


def plugin_order(plugins: Sequence[P]) -> list[P]:
    """``plugins`` with every provider before the plugins requiring its keys, else as given.

    Raises ``PluginError`` naming the plugins and keys when a key has two providers, a
    required key none, or requirements form a cycle.
    """
    providers: dict[ServiceKey[Any], str] = {}
    for plugin in plugins:
        for key in plugin.provides:
            if key in providers:
                raise PluginError(
                    f"plugins {providers[key]!r} and {plugin.name!r} both provide "
                    f"{key.name!r} ({key.what}); uninstall one of them"
                )
            providers[key] = plugin.name
    missing = [
        f"{p.name!r} requires {k.name!r} ({k.what})"
        for p in plugins
        for k in p.requires
        if k not in providers
    ]
    if missing:
        raise PluginError(
            f"no installed plugin provides what these need: {'; '.join(missing)}; install the "
            "package that provides it, or uninstall the plugin that needs it"
        )
    needs: dict[str, dict[str, ServiceKey[Any]]] = {p.name: {} for p in plugins}
    for p in plugins:
        for k in p.requires:
            needs[p.name].setdefault(providers[k], k)
    order: list[P] = []
    done: set[str] = set()
    while len(order) < len(plugins):
        # The first plugin, in the given order, whose providers all started: plugins that do
        # not depend on each other keep their order (discovery's is by name).
        ready = next(
            (p for p in plugins if p.name not in done and needs[p.name].keys() <= done), None
        )
        if ready is None:
            raise PluginError(_cycle_message(needs, done))
        order.append(ready)
        done.add(ready.name)
    return order


def _cycle_message(needs: Mapping[str, Mapping[str, ServiceKey[Any]]], done: set[str]) -> str:
    """``plugins form a cycle: 'a' requires 'k1' from 'b', 'b' requires 'k2' from 'a'``."""
    start = min(n for n in needs if n not in done)
    path = [start]
    while True:
        nxt = min(n for n in needs[path[-1]] if n not in done)
        if nxt in path:
            cycle = [*path[path.index(nxt) :], nxt]
            break
        path.append(nxt)
    steps = [f"{a!r} requires {needs[a][b].name!r} from {b!r}" for a, b in pairwise(cycle)]
    return (
        "plugins require each other's services in a cycle, so none can start first: "
        + ", ".join(steps)
    )


def call_hook(hook: Callable[..., T], *args: Any) -> T:
    """Call a plugin hook with ``args`` (services last); a hook written before services existed
    takes one argument fewer and is called without them."""
    try:
        params = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: give it everything
        return hook(*args)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return hook(*args)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return hook(*args[: max(len(positional), len(args) - 1)])
