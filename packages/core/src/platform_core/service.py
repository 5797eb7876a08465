"""Starting a server process: the listener, the start banner, logging, the run under uvicorn.

Every server (``platform up``, ``elkyn serve``, ``lake node``) starts the same way:

1. :func:`bind` the listener before anything else, so ``--port 0`` can report the real port and
   an expected failure (port in use, no permission, unknown host) is one :class:`StartError`
   line naming the port and the setting to change, never a traceback;
2. :func:`configure_service_logging` once: one JSON object per line on stderr, the same fields
   in every process, credentials redacted;
3. :func:`serve` the app on that socket, printing :func:`banner` (what, URL, pid, home) once it
   accepts connections. The first Ctrl-C/SIGTERM stops gracefully, a second one forces it.
   Given ``tls`` (``platform_core.tls.server_tls(settings)``) it serves HTTPS on the socket,
   and the banner, ``<home>/platform.json`` and ``find_running`` say ``https://``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import PlatformError, UnavailableError
from .listeners import port_holder
from .logs import configure_logging
from .redact import install_log_redaction
from .running import announce, withdraw
from .tls import ServerTLS

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "KEEP_ALIVE_SECONDS",
    "KEEP_ALIVE_VARIABLE",
    "Outcome",
    "StartError",
    "banner",
    "bind",
    "configure_service_logging",
    "exit_on_start_error",
    "keep_alive_seconds",
    "port_holder",
    "serve",
    "url_of",
]

log = logging.getLogger(__name__)


class StartError(UnavailableError):
    """A server cannot start for an expected reason; the message is the one line to print."""


def url_of(host: str, port: int, *, tls: bool = False) -> str:
    """``http://host:port`` (``https://`` with ``tls``), brackets around an IPv6 address."""
    host = host.strip("[]")
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _where_to_change(setting: str | None, option: str) -> str:
    return f"set {setting} or {option}" if setting else f"pass {option}"


def bind(
    host: str,
    port: int,
    *,
    port_setting: str | None = "PLATFORM_PORT",
    host_setting: str | None = "PLATFORM_HOST",
    port_option: str = "--port",
    host_option: str = "--host",
) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port; read it with
    ``getsockname()``), ready for uvicorn to listen on.

    Raises :class:`StartError` with one line naming the port and the setting to change when
    the port is taken, not allowed, or the host is not an address of this machine.
    """
    change_port = _where_to_change(port_setting, port_option)
    change_host = _where_to_change(host_setting, host_option)
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StartError(
            f"cannot listen on host {host!r}: {reason}; {change_host} to an address of this "
            "machine (127.0.0.1 for this machine only)"
        ) from None
    family, kind, _, _, address = infos[0]
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP; with proto 0, Nagle + delayed ACKs cost ~40 ms per keep-alive response.
    sock = socket.socket(family, kind, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise _start_error(exc, host, port, change_port, change_host) from None
    return sock


def _start_error(
    exc: OSError, host: str, port: int, change_port: str, change_host: str
) -> StartError:
    if exc.errno == errno.EADDRINUSE:
        pid = port_holder(port)
        holder = f" (PID {pid} holds it?)" if pid is not None else ""
        return StartError(
            f"port {port} on {host} is in use{holder}; {change_port} (0 picks a free port)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StartError(
            f"no permission to listen on port {port} on {host} (ports below 1024 need root); "
            f"{change_port} to a port above 1023"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartError(f"cannot listen on {host}: not an address of this machine; {change_host}")
    return StartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; {change_port}")


def banner(
    what: str, url: str, *, home: str | os.PathLike[str] | None = None, **extra: object
) -> str:
    """The one start line: ``<what> is up at <url> (<extra: value>, pid N, home H)``; users and
    tests read the URL from it (the first ``http://`` or ``https://`` of the line)."""
    details = [f"{name}: {value}" for name, value in extra.items()]
    details.append(f"pid {os.getpid()}")
    if home is not None:
        details.append(f"home {home}")
    return f"{what} is up at {url} ({', '.join(details)})"


def configure_service_logging(level: str) -> None:
    """Logging for a server process, once: JSON lines on stderr (``platform_core.logs``), and
    credentials redacted from uvicorn's loggers and every root handler.

    If the root logger has handlers already (a program embedding the server, a test runner),
    they are kept and only get the redaction filter.
    """
    if not logging.getLogger().handlers:
        configure_logging(level)
    install_log_redaction()


def exit_on_start_error(exc: StartError, code: int = 1) -> NoReturn:
    """Print ``error: <the one line>`` on stderr and exit with ``code`` (no traceback)."""
    print(f"error: {exc.message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


class Outcome(enum.Enum):
    """How :func:`serve` ended."""

    STOPPED = "stopped"
    """Stopped cleanly (by a signal, or the server's own decision)."""
    FORCED = "forced"
    """A second signal cut the shutdown short."""
    FAILED = "failed"
    """The app did not start for an unexpected reason (the log's traceback says why); an
    expected one (a ``PlatformError``) raises :class:`StartError` with its message."""


def _server_class() -> Any:  # defined on first use: importing uvicorn is slow
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, printing the banner once up and giving in to a second signal."""

        def __init__(
            self, config: uvicorn.Config, line: str, url: str, announce_home: Path | None
        ) -> None:
            super().__init__(config)
            self.line = line
            self.url = url
            self.announce_home = announce_home
            self.forced = False

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                if self.announce_home is not None:
                    announce(self.announce_home, self.url)  # find_running() finds us
                if self.line:
                    print(self.line, flush=True)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # uvicorn forces the exit only on a second SIGINT; a second SIGTERM counts too.
            second = self.should_exit
            super().handle_exit(sig, frame)
            if second:
                self.force_exit = True

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn checks force_exit while waiting for connections, but then waits for
            # the app's lifespan shutdown for as long as it takes; stop waiting once forced.
            task = asyncio.ensure_future(super().shutdown(sockets=sockets))
            while not task.done():
                await asyncio.wait({task}, timeout=0.1)
                if self.force_exit and not task.done():
                    log.warning("second signal: exiting without waiting for the app to stop")
                    self.forced = True
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    return
            task.result()
            # Forced while waiting for connections: uvicorn then skipped the lifespan shutdown.
            self.forced = self.force_exit

    return Server


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Swallows the signals uvicorn re-raises after its shutdown, so ``serve`` returns."""


@contextlib.contextmanager
def _quiet_reraise() -> Iterator[None]:
    in_main_thread = threading.current_thread() is threading.main_thread()
    signals = (signal.SIGINT, signal.SIGTERM) if in_main_thread else ()
    previous = {sig: signal.signal(sig, _ignore) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


KEEP_ALIVE_SECONDS = 75.0
"""How long a server keeps an idle keep-alive connection by default (nginx's default). Longer
than a client pool keeps one (httpx: 5 s), so the client always drops it first: with
uvicorn's 5 s, both sides' equal timers raced, and a request sent as the server closed its
connection met a reset (httpx.ReadError on a PUT, seen in the soak test)."""

KEEP_ALIVE_VARIABLE = "PLATFORM_KEEP_ALIVE_SECONDS"


def keep_alive_seconds() -> float:
    """``PLATFORM_KEEP_ALIVE_SECONDS`` (0.1 to 3600), else :data:`KEEP_ALIVE_SECONDS`; a
    :class:`StartError` naming the variable for anything else."""
    raw = os.environ.get(KEEP_ALIVE_VARIABLE)
    if raw is None or raw == "":
        return KEEP_ALIVE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0.1 <= seconds <= 3600:  # NaN fails too
        raise StartError(
            f"{KEEP_ALIVE_VARIABLE}={raw!r} is not a number of seconds from 0.1 to 3600 "
            f"(how long an idle keep-alive connection stays open; default {KEEP_ALIVE_SECONDS:g})"
        )
    return seconds


def serve(
    app: Any,
    sock: socket.socket,
    *,
    what: str,
    host: str,
    log_level: str,
    home: str | os.PathLike[str] | None = None,
    line: str | None = None,
    announce_home: bool = False,
    before_run: Callable[[Any], None] | None = None,
    tls: ServerTLS | None = None,
    **uvicorn_options: Any,
) -> Outcome:
    """Serve ``app`` on ``sock`` until Ctrl-C/SIGTERM; closes ``sock``.

    Prints ``line`` (default: :func:`banner` of ``what``; ``""``: none, the app prints its own)
    once connections are accepted, and not at all if a signal arrived during startup. With ``announce_home``, ``<home>/platform.json``
    says where it serves meanwhile (``platform_core.find_running``). ``before_run(server)`` is
    called with the ``uvicorn.Server`` before it runs (a watcher thread may set its
    ``should_exit``). ``uvicorn_options`` go to ``uvicorn.Config`` (``http="httptools"``,
    ``timeout_graceful_shutdown`` ...). With ``tls`` it serves HTTPS with that certificate; a
    plain-HTTP client is then disconnected at once (the TLS handshake fails), never left hanging.
    """
    from ._extras import require
    from .http.codings import TransferCodingGuard

    uvicorn = require("uvicorn", what="platform_core.service.serve")
    url = url_of(host, sock.getsockname()[1], tls=tls is not None)
    # Client addresses are the connection's: X-Forwarded-For is trusted from no one (uvicorn
    # trusts it from 127.0.0.1 by default, where `platform up` itself listens, so any local
    # client could name another address to the login throttle and the audit trail).
    options: dict[str, Any] = {
        "log_config": None,
        "lifespan": "on",
        "proxy_headers": False,
        "timeout_keep_alive": keep_alive_seconds(),
        **uvicorn_options,
    }
    if tls is not None:
        options.update(tls.uvicorn_options())
    # Every server refuses bodies framed with codings uvicorn would pass on still encoded.
    guarded = _ExpectedStartFailure(TransferCodingGuard(app))
    config = uvicorn.Config(guarded, log_level=log_level, **options)
    where = Path(home) if home is not None else None
    server = _server_class()(
        config,
        banner(what, url, home=home) if line is None else line,
        url,
        where if announce_home else None,
    )
    if before_run is not None:
        before_run(server)
    # uvicorn restores the handlers it found and then re-raises the Ctrl-C/SIGTERM it caught;
    # with these in place that re-raise is a no-op and serve() returns normally.
    try:
        with _quiet_reraise():
            server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits this way when the app fails to start
        if exc.code not in (0, None):
            if guarded.reason is not None:  # the last line a user reads says why, too
                raise StartError(f"cannot start: {guarded.reason}") from None
            return Outcome.FAILED
        raise
    finally:
        if announce_home and where is not None:
            withdraw(where)
        sock.close()
    return Outcome.FORCED if server.forced else Outcome.STOPPED


class _ExpectedStartFailure:
    """Wraps an ASGI app so a ``PlatformError`` raised while it starts (a database directory
    another process owns, a bad setting) is logged as its one-line message, not as the
    traceback Starlette puts in ``lifespan.startup.failed``; anything else keeps its
    traceback. Starlette sends that message from inside its ``except`` block, so the error
    being handled is the one that failed the start."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reason: str | None = None
        """The one-line message of the ``PlatformError`` that failed the start, if one did."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def one_line(message: Any) -> None:
            if message["type"] == "lifespan.startup.failed":
                error = sys.exc_info()[1]
                if isinstance(error, PlatformError):
                    self.reason = error.message
                    message = {**message, "message": f"cannot start: {error.message}"}
            await send(message)

        await self.app(scope, receive, one_line)
