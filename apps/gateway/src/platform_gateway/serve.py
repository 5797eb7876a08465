"""Running the gateway under uvicorn for ``platform up``: socket, banner, signals, forced exit.

- The socket is bound before uvicorn starts, so ``--port 0`` can report the real port.
- The banner ``platform is up at ...`` is printed once the server accepts connections, and
  not at all if a Ctrl-C/SIGTERM arrived during startup.
- The first Ctrl-C or SIGTERM stops gracefully (open connections, then plugin lifespans); a
  second one forces the exit: uvicorn stops waiting for connections, and a plugin still
  stopping is cancelled (the others still stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from platform_core import announce, withdraw

__all__ = ["GatewayServer", "Outcome", "bind", "serve", "url_of"]

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """How :func:`serve` ended."""

    STOPPED = "stopped"
    """Stopped cleanly (by a signal, or the server's own decision)."""
    FORCED = "forced"
    """A second signal cut the shutdown short."""
    FAILED = "failed"
    """The app did not start (the log says why)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket bound to ``host:port`` (port 0: any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(host: str, port: int) -> str:
    """``http://host:port``, with brackets around an IPv6 address."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class GatewayServer(uvicorn.Server):
    """uvicorn's server, announcing the URL once up and giving in to a second signal."""

    def __init__(self, config: uvicorn.Config, url: str, home: Path | None = None) -> None:
        super().__init__(config)
        self.url = url
        self.home = home
        self.forced = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            if self.home is not None:
                announce(self.home, self.url)  # elytra.connect() on this home finds us
            print(f"platform is up at {self.url} (docs: {self.url}/docs)", flush=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn forces the exit only on a second SIGINT; a second SIGTERM counts too here.
        second = self.should_exit
        super().handle_exit(sig, frame)
        if second:
            self.force_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn checks force_exit while waiting for connections, but then waits for the
        # app's lifespan shutdown for as long as it takes; stop waiting once forced.
        task = asyncio.ensure_future(super().shutdown(sockets=sockets))
        while not task.done():
            await asyncio.wait({task}, timeout=0.1)
            if self.force_exit and not task.done():
                log.warning("second signal: exiting without waiting for the plugins to stop")
                self.forced = True
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return
        task.result()
        # Forced while waiting for connections: uvicorn then skipped the lifespan shutdown.
        self.forced = self.force_exit


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Swallows the signals uvicorn re-raises after its shutdown, so ``up`` returns normally."""


def serve(
    app: Any, sock: socket.socket, url: str, log_level: str, home: Path | None = None
) -> Outcome:
    """Serve ``app`` on ``sock`` until Ctrl-C/SIGTERM; closes ``sock``. While it serves,
    ``<home>/platform.json`` says where (``platform_core.find_running``)."""
    config = uvicorn.Config(app, log_config=None, log_level=log_level, lifespan="on")
    server = GatewayServer(config, url, home)
    # uvicorn restores the handlers it found and then re-raises the Ctrl-C/SIGTERM it caught;
    # with these in place that re-raise is a no-op and `up` returns normally.
    in_main_thread = threading.current_thread() is threading.main_thread()
    signals = (signal.SIGINT, signal.SIGTERM) if in_main_thread else ()
    previous = {sig: signal.signal(sig, _ignore) for sig in signals}
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits this way when the app fails to start
        if exc.code not in (0, None):
            return Outcome.FAILED
        raise
    finally:
        if home is not None:
            withdraw(home)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return Outcome.FORCED if server.forced else Outcome.STOPPED
