"""Fixtures: the throw-away test plugins on sys.path, a clean environment, an app and a client."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI

from platform_core import PlatformSettings, Plugin, discover_plugins
from platform_gateway import create_app
from platform_gateway.testing import (
    EVENTS_DIR_ENV,
    TEST_PLUGIN_MODULE,
    TEST_PLUGIN_NAMES,
    write_test_plugin,
)

with warnings.catch_warnings():
    # Starlette nudges towards `httpx2`; the workspace pins httpx, which still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="session", autouse=True)
def test_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The test plugins, discoverable for the whole session (as if installed)."""
    directory = write_test_plugin(tmp_path_factory.mktemp("plugins"))
    sys.path.insert(0, str(directory))
    yield directory
    sys.path.remove(str(directory))
    sys.modules.pop(TEST_PLUGIN_MODULE, None)


@pytest.fixture(autouse=True)
def clean_env() -> Iterator[None]:
    """No PLATFORM_* from the shell leaks into a test, nor one a test set (`up --home`) out."""
    saved = os.environ.copy()
    for name in list(os.environ):
        if name.startswith("PLATFORM_") or name == EVENTS_DIR_ENV:
            del os.environ[name]
    yield
    os.environ.clear()
    os.environ.update(saved)


LifespanFactory = Callable[[PlatformSettings], AbstractAsyncContextManager[None]]


@pytest.fixture
def recording_lifespan() -> Callable[..., LifespanFactory]:
    """``recording_lifespan(events, name, fail_on="enter"|"exit"|"")``: a lifespan for a test plugin."""

    def make(events: list[str], name: str, *, fail_on: str = "") -> LifespanFactory:
        @asynccontextmanager
        async def lifespan(settings: PlatformSettings) -> AsyncIterator[None]:
            if fail_on == "enter":
                raise RuntimeError(f"{name} cannot open its database")
            events.append(f"enter {name}")
            yield
            if fail_on == "exit":
                raise RuntimeError(f"{name} cannot close its database")
            events.append(f"exit {name}")

        return lifespan

    return make


@pytest.fixture
def test_plugins() -> list[Plugin]:
    """Only the test plugins, so other installed packages' plugins do not start in unit tests."""
    return [p for p in discover_plugins() if p.name in TEST_PLUGIN_NAMES]


@pytest.fixture
def events(test_plugins: list[Plugin]) -> Iterator[list[str]]:
    """The test plugins' lifespan events ("enter testplug", ...), emptied for each test."""
    recorded: list[str] = sys.modules[TEST_PLUGIN_MODULE].EVENTS
    recorded.clear()
    yield recorded
    recorded.clear()


@pytest.fixture
def settings(tmp_path: Path) -> PlatformSettings:
    return PlatformSettings(home=tmp_path / "home", max_body_bytes=1024)


@pytest.fixture
def app(settings: PlatformSettings, test_plugins: list[Plugin]) -> FastAPI:
    return create_app(settings, test_plugins)


LOCAL_BASE_URL = "http://127.0.0.1:8080"
"""Where the test client says it connects: a loopback ``Host``, as a local browser sends."""
LOCAL_CLIENT = ("127.0.0.1", 50000)
"""The test client's address: loopback, as a process on the gateway's machine."""


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client on this machine (dev-mode login works); TestClient's default is neither."""
    # raise_server_exceptions=False: see the 500 answer a real client gets.
    with TestClient(
        app, base_url=LOCAL_BASE_URL, client=LOCAL_CLIENT, raise_server_exceptions=False
    ) as test_client:
        yield test_client


@pytest.fixture
def token(client: TestClient) -> str:
    response = client.post("/api/login", json={})
    assert response.status_code == 200, response.text
    value: str = response.json()["token"]
    return value


@pytest.fixture
def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
