"""Plugins: discovery, lifespans in order, and clear PluginErrors for broken or clashing ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from platform_core import PlatformSettings, Plugin, PluginError, discover_plugins
from platform_gateway import create_app
from platform_gateway.testing import TEST_PLUGIN_NAMES, write_plugin_dist

MakeLifespan = Callable[..., Any]


def router_plugin(name: str, prefix: str) -> Plugin:
    return Plugin(name=name, prefix=prefix, router=lambda settings: APIRouter())


def test_discovery_finds_the_test_plugins() -> None:
    found = {p.name: p for p in discover_plugins()}
    assert set(TEST_PLUGIN_NAMES) <= found.keys()
    assert found["testplug"].prefix == "/api/testplug"
    assert found["testplug"].router is not None
    assert found["testplug"].cli is not None
    assert found["testmount"].prefix == "/mounted"
    assert found["testmount"].app is not None


def test_create_app_discovers_installed_plugins_by_default(settings: PlatformSettings) -> None:
    app = create_app(settings)
    assert set(TEST_PLUGIN_NAMES) <= {p.name for p in app.state.plugins}
    assert app.state.settings is settings


def test_lifespans_enter_in_order_and_exit_in_reverse(
    app: object, events: list[str], test_plugins: list[Plugin]
) -> None:
    assert [p.name for p in test_plugins] == ["testmount", "testplug"]
    with TestClient(app):  # type: ignore[arg-type]
        assert events == ["enter testmount", "enter testplug"]
    assert events == ["enter testmount", "enter testplug", "exit testplug", "exit testmount"]


def test_a_failing_lifespan_stops_those_started_and_fails_startup(
    settings: PlatformSettings,
    test_plugins: list[Plugin],
    events: list[str],
    caplog: pytest.LogCaptureFixture,
    recording_lifespan: MakeLifespan,
) -> None:
    mount, plug = test_plugins
    broken = Plugin(name="broken", lifespan=recording_lifespan(events, "broken", fail_on="enter"))
    app = create_app(settings, [mount, broken, plug])
    with pytest.raises(PluginError, match="plugin 'broken' failed to start"), TestClient(app):
        pass
    # testmount was started and then stopped; testplug (after the broken one) never started.
    assert events == ["enter testmount", "exit testmount"]
    assert "plugin 'broken' failed to start: RuntimeError: broken cannot open" in caplog.text


def test_a_lifespan_failing_on_exit_is_logged_and_the_others_still_stop(
    settings: PlatformSettings,
    test_plugins: list[Plugin],
    events: list[str],
    caplog: pytest.LogCaptureFixture,
    recording_lifespan: MakeLifespan,
) -> None:
    mount, plug = test_plugins
    sloppy = Plugin(name="sloppy", lifespan=recording_lifespan(events, "sloppy", fail_on="exit"))
    with TestClient(create_app(settings, [mount, sloppy, plug])):
        pass
    assert events == [
        "enter testmount",
        "enter sloppy",
        "enter testplug",
        "exit testplug",
        "exit testmount",
    ]
    assert "plugin 'sloppy' failed to stop cleanly" in caplog.text
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


def test_duplicate_plugin_names_are_refused(settings: PlatformSettings) -> None:
    plugins = [router_plugin("lake", "/api/lake"), router_plugin("lake", "/api/lake2")]
    with pytest.raises(PluginError, match="two installed plugins are named 'lake'"):
        create_app(settings, plugins)


@pytest.mark.parametrize(
    ("first", "second"),
    [("/api/lake", "/api/lake"), ("/api/lake", "/api/lake/sql"), ("/db/x", "/db")],
)
def test_overlapping_prefixes_are_refused(
    settings: PlatformSettings, first: str, second: str
) -> None:
    plugins = [router_plugin("one", first), router_plugin("two", second)]
    with pytest.raises(PluginError, match="serve overlapping URL prefixes"):
        create_app(settings, plugins)


def test_prefixes_that_only_share_a_start_do_not_clash(settings: PlatformSettings) -> None:
    app = create_app(settings, [router_plugin("a", "/api/lake"), router_plugin("b", "/api/lakes")])
    assert [p.name for p in app.state.plugins] == ["a", "b"]


@pytest.mark.parametrize("prefix", ["/docs", "/api/login", "/health/deep", "/api"])
def test_a_prefix_over_a_gateway_route_is_refused(settings: PlatformSettings, prefix: str) -> None:
    with pytest.raises(PluginError, match="overlaps the reserved route"):
        create_app(settings, [router_plugin("greedy", prefix)])


def test_a_router_factory_that_raises_names_the_plugin(settings: PlatformSettings) -> None:
    def factory(settings: PlatformSettings) -> APIRouter:
        raise RuntimeError("lake home is not writable")

    plugin = Plugin(name="lake", prefix="/api/lake", router=factory)
    with pytest.raises(PluginError, match="plugin 'lake': its router factory failed: lake home"):
        create_app(settings, [plugin])


def test_an_app_factory_that_raises_names_the_plugin(settings: PlatformSettings) -> None:
    def factory(settings: PlatformSettings) -> object:
        raise OSError("cannot open LMDB")

    plugin = Plugin(name="elkyn", prefix="/db", app=factory)
    with pytest.raises(PluginError, match="plugin 'elkyn': its app factory failed: cannot open"):
        create_app(settings, [plugin])


def test_a_router_factory_returning_something_else_is_refused(settings: PlatformSettings) -> None:
    plugin = Plugin(name="odd", prefix="/api/odd", router=lambda settings: object())
    with pytest.raises(PluginError, match=r"not a fastapi\.APIRouter"):
        create_app(settings, [plugin])


def test_an_entry_point_whose_factory_raises_is_a_clear_plugin_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "def plugin():\n    raise ImportError('needs lmdb, which is not installed')\n"
    write_plugin_dist(
        tmp_path,
        dist="gateway-broken-factory",
        module="gateway_broken_factory",
        source=source,
        entry_points={"broken": "gateway_broken_factory:plugin"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        PluginError, match=r"could not load plugin entry point 'broken'.*needs lmdb"
    ):
        discover_plugins()
