"""Service keys, the order the graph gives, its errors, and the view a plugin gets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from platform_core import Plugin, PluginError, ServiceKey, Services, UnavailableError, plugin_order
from platform_core.services import ServiceRegistry, call_hook


class Node:
    pass


NODE: ServiceKey[Node] = ServiceKey("test.node", Node, "the test node")
DB: ServiceKey[dict[str, Any]] = ServiceKey("test.db", dict)
POOL: ServiceKey[list[Any]] = ServiceKey("test.pool", "builtins:list")


@asynccontextmanager
async def _nothing(settings: Any, services: Services) -> AsyncIterator[None]:
    yield


def plug(name: str, provides: tuple[ServiceKey[Any], ...] = (), requires=()) -> Plugin:
    return Plugin(
        name=name, provides=provides, requires=requires, lifespan=_nothing if provides else None
    )


def names(plugins: list[Plugin]) -> list[str]:
    return [p.name for p in plugin_order(plugins)]


def test_providers_start_first_whatever_the_names() -> None:
    # Named to sort the wrong way: by name, every consumer would start before its provider.
    a = plug("a-jobs", provides=(POOL,), requires=(NODE, DB))
    b = plug("b-peer", requires=(POOL, NODE))
    y = plug("y-db", provides=(DB,))
    z = plug("z-lake", provides=(NODE,))
    assert names([a, b, y, z]) == ["y-db", "z-lake", "a-jobs", "b-peer"]
    assert names([b, a, z, y]) == ["z-lake", "y-db", "a-jobs", "b-peer"]


def test_plugins_without_a_dependency_keep_their_order() -> None:
    given = [plug("c"), plug("a"), plug("b")]
    assert names(given) == ["c", "a", "b"]


def test_a_missing_provider_names_the_plugin_and_the_key() -> None:
    with pytest.raises(PluginError) as caught:
        plugin_order([plug("jobs", requires=(NODE, DB)), plug("db", provides=(DB,))])
    message = str(caught.value)
    assert "'jobs' requires 'test.node' (the test node)" in message
    assert "test.db" not in message  # provided
    assert "install the package that provides it" in message


def test_two_providers_of_one_key_are_refused() -> None:
    with pytest.raises(
        PluginError, match=re.escape("plugins 'one' and 'two' both provide 'test.node'")
    ):
        plugin_order([plug("one", provides=(NODE,)), plug("two", provides=(NODE,))])


def test_a_cycle_names_each_plugin_and_key_on_it() -> None:
    a = plug("a", provides=(NODE,), requires=(DB,))
    b = plug("b", provides=(DB,), requires=(POOL,))
    c = plug("c", provides=(POOL,), requires=(NODE,))
    free = plug("free")
    with pytest.raises(PluginError) as caught:
        plugin_order([free, a, b, c])
    assert str(caught.value) == (
        "plugins require each other's services in a cycle, so none can start first: "
        "'a' requires 'test.db' from 'b', 'b' requires 'test.pool' from 'c', "
        "'c' requires 'test.node' from 'a'"
    )


def test_a_plugin_cannot_require_what_it_provides_or_provide_without_a_lifespan() -> None:
    with pytest.raises(PluginError, match="requires a service it provides itself"):
        Plugin(name="x", lifespan=_nothing, provides=(NODE,), requires=(NODE,))
    with pytest.raises(PluginError, match=re.escape("provides test.node but has no lifespan")):
        Plugin(name="x", provides=(NODE,))
    with pytest.raises(PluginError, match=re.escape("tuple of platform_core.ServiceKey")):
        Plugin(name="x", requires=["test.node"])  # type: ignore[arg-type]


def test_services_give_declared_keys_typed_and_refuse_the_rest() -> None:
    registry = ServiceRegistry()
    provider = plug("lake", provides=(NODE,))
    user = plug("jobs", requires=(NODE,))
    view = registry.view(user)
    with pytest.raises(UnavailableError, match="the test node is not running"):
        view.get(NODE)
    assert not view.running(NODE)
    node = Node()
    registry.provide(provider, {NODE: node})
    assert view.get(NODE) is node
    with pytest.raises(
        PluginError, match=re.escape("'jobs' asked for 'test.db', which it does not declare")
    ):
        view.get(DB)
    registry.withdraw(provider)
    assert not view.running(NODE)


def test_what_a_lifespan_yields_must_match_its_provides_and_types() -> None:
    registry = ServiceRegistry()
    p = plug("lake", provides=(NODE, POOL))
    with pytest.raises(PluginError, match=re.escape("did not yield test.pool it declares")):
        registry.provide(p, {NODE: Node()})
    with pytest.raises(PluginError, match=re.escape("yielded test.db it does not declare")):
        registry.provide(p, {NODE: Node(), POOL: [], DB: {}})
    with pytest.raises(PluginError, match=re.escape("provided 'test.pool' as dict, not the list")):
        registry.provide(p, {NODE: Node(), POOL: {}})
    with pytest.raises(PluginError, match=re.escape("did not yield test.node, test.pool")):
        registry.provide(p, None)
    registry.provide(p, {NODE: Node(), POOL: []})  # the named type resolves: builtins:list


def test_keys_compare_by_name() -> None:
    assert ServiceKey("test.node", object) == NODE
    assert len({NODE, ServiceKey("test.node", Node)}) == 1
    assert repr(NODE) == "ServiceKey('test.node')"


def test_hooks_written_before_services_still_work() -> None:
    services = Services.of({NODE: Node()})
    assert call_hook(lambda settings: settings, "s", services) == "s"
    assert call_hook(lambda settings, services: services, "s", services) is services
    assert call_hook(lambda: "old status", services) == "old status"
    assert call_hook(lambda *args: args, "s", services) == ("s", services)
