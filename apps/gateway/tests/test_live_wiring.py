"""Live state wiring: the one plugin's sink handed to every plugin's source, after every
lifespan started and stopped before any stops; no sink, no sources; two sinks refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from platform_core import LiveSink, PlatformSettings, Plugin, PluginError
from platform_gateway import create_app


class ListSink:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.values: dict[str, Any] = {}

    def reserve(self, key: str, rules: Mapping[str, Any]) -> None:
        self.events.append(f"reserve {key}")

    def publish(self, path: str, value: Any) -> None:
        self.values[path] = value

    def publish_many(self, values: Mapping[str, Any]) -> None:
        self.values.update(values)


def _store(events: list[str], sink: ListSink | None) -> Plugin:
    opened: dict[str, bool] = {}

    @asynccontextmanager
    async def lifespan(settings: PlatformSettings) -> AsyncIterator[None]:
        events.append("store open")
        opened["yes"] = True
        yield
        opened.pop("yes")
        events.append("store closed")

    return Plugin(
        name="store",
        lifespan=lifespan,
        live_sink=lambda: sink if opened.get("yes") else None,
    )


def _source(events: list[str], name: str = "source", fail: bool = False) -> Plugin:
    @asynccontextmanager
    async def lifespan(settings: PlatformSettings) -> AsyncIterator[None]:
        events.append(f"{name} open")
        yield
        events.append(f"{name} closed")

    @asynccontextmanager
    async def live(sink: LiveSink) -> AsyncIterator[None]:
        if fail:
            raise RuntimeError("no")
        sink.reserve(name, {".read": True})
        sink.publish(f"/{name}/state", "up")
        events.append(f"{name} publishing")
        yield
        events.append(f"{name} stopped publishing")

    return Plugin(name=name, lifespan=lifespan, live_source=live)


def test_sources_start_after_every_lifespan_and_stop_before_any(
    settings: PlatformSettings,
) -> None:
    events: list[str] = []
    sink = ListSink(events)
    # The source comes first in the plugin order; it still starts after the store opened.
    app = create_app(settings, [_source(events, "lake"), _store(events, sink)])
    with TestClient(app):
        assert events == ["lake open", "store open", "reserve lake", "lake publishing"]
        assert sink.values == {"/lake/state": "up"}
    assert events[4:] == ["lake stopped publishing", "store closed", "lake closed"]


def test_without_a_sink_sources_do_nothing(
    settings: PlatformSettings, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    with caplog.at_level("INFO"), TestClient(create_app(settings, [_source(events)])):
        assert events == ["source open"]
    assert "no plugin offers a live-state sink" in caplog.text


def test_a_source_failing_to_start_is_logged_and_the_gateway_serves(
    settings: PlatformSettings, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    sink = ListSink(events)
    plugins = [_source(events, "bad", fail=True), _source(events, "good"), _store(events, sink)]
    with TestClient(create_app(settings, plugins)) as client:
        assert client.get("/health").status_code == 200
        assert "good publishing" in events
    assert "plugin 'bad': its live-state source failed to start" in caplog.text
    assert "bad stopped publishing" not in events


def test_two_plugins_offering_a_sink_are_refused(settings: PlatformSettings) -> None:
    one = Plugin(name="one", live_sink=lambda: None)
    two = Plugin(name="two", live_sink=lambda: None)
    with pytest.raises(PluginError, match="'one', 'two' each offer a live-state sink"):
        create_app(settings, [one, two])
