"""Test utilities for the gateway and any package that plugs into it.

- :func:`write_plugin_dist` registers a throw-away plugin: it writes a module and a
  ``*.dist-info`` with an ``entry_points.txt`` into a directory; put that directory on
  ``sys.path`` (in-process) or ``PYTHONPATH`` (a subprocess) and ``discover_plugins`` finds it.
- :func:`write_test_plugin` writes the gateway's own test plugins (see :data:`TEST_PLUGIN_SOURCE`).
- :func:`free_port` and :func:`wait_healthy` start real servers in tests (the platform's
  launcher, ``platform_core.testing``, re-exported here).

This module uses only the standard library and ``platform_core`` (no test framework).
"""

from __future__ import annotations

import importlib
import re
import textwrap
from collections.abc import Mapping
from pathlib import Path

from platform_core.testing import free_port, wait_healthy

__all__ = [
    "EVENTS_DIR_ENV",
    "SLOW_ENTER_ENV",
    "SLOW_EXIT_ENV",
    "TEST_PLUGIN_MODULE",
    "TEST_PLUGIN_NAMES",
    "TEST_PLUGIN_SOURCE",
    "free_port",
    "wait_healthy",
    "write_plugin_dist",
    "write_test_plugin",
]

TEST_PLUGIN_MODULE = "gateway_testplug"
TEST_PLUGIN_NAMES = ("testmount", "testplug")
"""The two test plugins, in discovery (name) order."""
EVENTS_DIR_ENV = "TESTPLUG_EVENTS_DIR"
"""If set, the test plugins also append their lifespan events to ``$TESTPLUG_EVENTS_DIR/events.log``."""
SLOW_ENTER_ENV = "TESTPLUG_SLOW_ENTER_SECONDS"
"""If set, ``testplug``'s lifespan sleeps this many seconds on enter (a slow startup)."""
SLOW_EXIT_ENV = "TESTPLUG_SLOW_EXIT_SECONDS"
"""If set, ``testplug``'s lifespan sleeps this many seconds on exit (a slow shutdown)."""

TEST_PLUGIN_SOURCE = textwrap.dedent(
    '''
    """Throw-away plugins written by platform_gateway.testing.write_test_plugin.

    testplug:  an APIRouter at /api/testplug (behind the gateway's token check), with an echo
               WebSocket at /api/testplug/ws, and a Typer app.
    testmount: a Starlette app mounted at /mounted, with its own error shape.
    Both lifespans record "enter <name>" / "exit <name>" in EVENTS (and the events file).
    With TESTPLUG_SLOW_ENTER_SECONDS / TESTPLUG_SLOW_EXIT_SECONDS set, testplug records
    "starting testplug slowly" / "stopping testplug slowly" and sleeps that long first.
    """

    import asyncio
    import os
    from contextlib import asynccontextmanager
    from pathlib import Path

    import typer
    from fastapi import APIRouter, Request, WebSocket
    from pydantic import BaseModel
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from platform_core import NotFoundError, Plugin

    EVENTS = []


    def record(event):
        EVENTS.append(event)
        folder = os.environ.get("TESTPLUG_EVENTS_DIR")
        if folder:
            with open(Path(folder) / "events.log", "a") as f:
                f.write(event + "\\n")


    def lifespan_of(name):
        @asynccontextmanager
        async def lifespan(settings):
            slow = os.environ.get("TESTPLUG_SLOW_ENTER_SECONDS")
            if slow and name == "testplug":
                record(f"starting {name} slowly")
                await asyncio.sleep(float(slow))
            record(f"enter {name}")
            try:
                yield
            finally:
                slow = os.environ.get("TESTPLUG_SLOW_EXIT_SECONDS")
                if slow and name == "testplug":
                    record(f"stopping {name} slowly")
                    await asyncio.sleep(float(slow))
                record(f"exit {name}")

        return lifespan


    class Item(BaseModel):
        n: int


    def make_router(settings):
        router = APIRouter()

        @router.get("/secret")
        async def secret(request: Request):
            return {"sub": request.state.claims.sub, "admin": request.state.claims.admin}

        @router.get("/missing")
        async def missing():
            raise NotFoundError("no thing named 'missing' (there are none)")

        @router.get("/boom")
        async def boom():
            raise RuntimeError("boom: a bug in the test plugin")

        @router.post("/items")
        async def items(item: Item):
            return {"n": item.n}

        @router.post("/echo")
        async def echo(request: Request):
            return {"bytes": len(await request.body())}

        @router.websocket("/ws")
        async def ws_echo(websocket: WebSocket):
            await websocket.accept()
            await websocket.send_json({"sub": websocket.state.claims.sub})
            async for text in websocket.iter_text():
                await websocket.send_text(f"echo: {text}")

        return router


    cli = typer.Typer(help="The gateway's test plugin.")


    @cli.command()
    def hello(name: str = "world"):
        """Say hello."""
        typer.echo(f"hello {name} from testplug")


    @cli.command()
    def bye():
        """Say bye."""
        typer.echo("bye from testplug")


    class MountedError(Exception):
        pass


    def make_app(settings):
        async def index(request):
            return JSONResponse({"mounted": True, "path": request.url.path})

        async def fail(request):
            raise MountedError("the mounted app's own error")

        async def echo(request):
            return JSONResponse({"bytes": len(await request.body())})

        async def on_error(request, exc):
            return JSONResponse({"mounted_error": str(exc)}, status_code=418)

        return Starlette(
            routes=[
                Route("/", index),
                Route("/fail", fail),
                Route("/echo", echo, methods=["POST"]),
            ],
            exception_handlers={MountedError: on_error},
        )


    def router_plugin():
        return Plugin(
            name="testplug",
            prefix="/api/testplug",
            router=make_router,
            lifespan=lifespan_of("testplug"),
            cli=cli,
        )


    def mounted_plugin():
        return Plugin(
            name="testmount", prefix="/mounted", app=make_app, lifespan=lifespan_of("testmount")
        )
    '''
)


def write_plugin_dist(
    directory: Path,
    *,
    dist: str,
    module: str,
    source: str,
    entry_points: Mapping[str, str],
    version: str = "0.1.0",
) -> Path:
    """Write ``module.py`` and a ``dist``'s ``*.dist-info`` registering ``entry_points``.

    ``entry_points`` maps a plugin's entry point name to ``"module:function"``, in the group
    ``platform.plugins``. Returns ``directory`` (to put on ``sys.path`` or ``PYTHONPATH``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{module}.py").write_text(source)
    info = directory / f"{re.sub(r'[-.]+', '_', dist)}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("[platform.plugins]\n" + "\n".join(lines) + "\n")
    importlib.invalidate_caches()  # the import system may have cached this directory's listing
    return directory


def write_test_plugin(directory: Path) -> Path:
    """Write the gateway's test plugins (``testplug``, ``testmount``) into ``directory``."""
    return write_plugin_dist(
        directory,
        dist="gateway-testplug",
        module=TEST_PLUGIN_MODULE,
        source=TEST_PLUGIN_SOURCE,
        entry_points={
            "testplug": f"{TEST_PLUGIN_MODULE}:router_plugin",
            "testmount": f"{TEST_PLUGIN_MODULE}:mounted_plugin",
        },
    )
