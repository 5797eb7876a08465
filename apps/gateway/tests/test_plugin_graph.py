"""The gateway starts plugins by the services graph, not by name, hands each its services,
and refuses a missing provider or a cycle with one start error."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from platform_core import PlatformSettings, Plugin, PluginError, ServiceKey, Services
from platform_gateway import create_app
from platform_gateway.cli import build_cli


class Node:
    def __init__(self, name: str) -> None:
        self.name = name


NODE: ServiceKey[Node] = ServiceKey("graph.node", Node, "the test node")
POOL: ServiceKey[list[str]] = ServiceKey("graph.pool", list, "the test pool")


def _plugin(
    events: list[str],
    name: str,
    provides: dict[ServiceKey[Any], Any] | None = None,
    requires: tuple[ServiceKey[Any], ...] = (),
    prefix: str = "",
) -> Plugin:
    given = provides or {}

    @asynccontextmanager
    async def lifespan(
        settings: PlatformSettings, services: Services
    ) -> AsyncIterator[dict[ServiceKey[Any], Any]]:
        seen = [f"{k.name}={services.get(k).name}" for k in requires if k is NODE]
        events.append(f"enter {name}" + (f" ({', '.join(seen)})" if seen else ""))
        yield given
        events.append(f"exit {name}")

    def router(settings: PlatformSettings, services: Services) -> APIRouter:
        routes = APIRouter()

        @routes.get("/node")
        def node() -> dict[str, str]:
            return {"node": services.get(NODE).name}

        return routes

    return Plugin(
        name=name,
        prefix=prefix,
        router=router if prefix else None,
        lifespan=lifespan,
        provides=tuple(given),
        requires=requires,
    )


def test_lifespans_start_by_the_graph_whatever_the_names(settings: PlatformSettings) -> None:
    events: list[str] = []
    # By name (and in the given order) the consumers come first: "a" < "b" < "z".
    jobs = _plugin(events, "a-jobs", {POOL: ["w1"]}, requires=(NODE,), prefix="/api/ajobs")
    peer = _plugin(events, "b-peer", requires=(POOL, NODE))
    lake = _plugin(events, "z-lake", {NODE: Node("n1")})
    app = create_app(settings, [jobs, peer, lake])
    assert [p.name for p in app.state.plugins] == ["z-lake", "a-jobs", "b-peer"]
    with TestClient(app) as client:
        assert events == [
            "enter z-lake",
            "enter a-jobs (graph.node=n1)",
            "enter b-peer (graph.node=n1)",
        ]
        token = app.state.signer.issue("ada")
        got = client.get("/api/ajobs/node", headers={"authorization": f"Bearer {token}"})
        assert got.status_code == 200, got.text
        assert got.json() == {"node": "n1"}
    assert events[3:] == ["exit b-peer", "exit a-jobs", "exit z-lake"]


def test_a_missing_provider_is_one_start_error_naming_plugin_and_key(
    settings: PlatformSettings,
) -> None:
    events: list[str] = []
    with pytest.raises(PluginError) as caught:
        create_app(settings, [_plugin(events, "a-jobs", requires=(NODE, POOL))])
    message = str(caught.value)
    assert "'a-jobs' requires 'graph.node' (the test node)" in message
    assert "'a-jobs' requires 'graph.pool' (the test pool)" in message
    assert events == []


def test_a_cycle_is_one_start_error_naming_the_plugins_and_keys(
    settings: PlatformSettings,
) -> None:
    events: list[str] = []
    one = _plugin(events, "one", {NODE: Node("n")}, requires=(POOL,))
    two = _plugin(events, "two", {POOL: []}, requires=(NODE,))
    with pytest.raises(PluginError) as caught:
        create_app(settings, [one, two])
    assert str(caught.value) == (
        "plugins require each other's services in a cycle, so none can start first: "
        "'one' requires 'graph.pool' from 'two', 'two' requires 'graph.node' from 'one'"
    )
    assert events == []


def test_platform_up_refuses_a_missing_provider_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        build_cli([_plugin([], "a-jobs", requires=(NODE,))]),
        ["up", "--home", str(tmp_path / "home"), "--port", "0"],
    )
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot start" in lines[0]
    assert "'a-jobs' requires 'graph.node' (the test node)" in lines[0]


def test_a_provider_yielding_the_wrong_type_stops_the_start(settings: PlatformSettings) -> None:
    events: list[str] = []
    lake = _plugin(events, "lake", {NODE: "not a node"})
    with (
        pytest.raises(PluginError, match=re.escape("provided 'graph.node' as str, not the Node")),
        TestClient(create_app(settings, [lake])),
    ):
        pass
    assert events == ["enter lake", "exit lake"]  # stopped again, nothing half-started


def test_a_service_is_withdrawn_before_its_provider_stops(settings: PlatformSettings) -> None:
    seen: list[str] = []

    @asynccontextmanager
    async def lake_span(settings: PlatformSettings, services: Services) -> AsyncIterator[Any]:
        yield {NODE: Node("n1")}
        seen.append(f"lake stopping, node running: {services.running(NODE)}")

    lake = Plugin(name="lake", lifespan=lake_span, provides=(NODE,))
    with TestClient(create_app(settings, [lake])):
        pass
    assert seen == ["lake stopping, node running: False"]
