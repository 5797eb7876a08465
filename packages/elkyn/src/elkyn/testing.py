"""Test helpers: run ``elkyn serve`` as a real child process on 127.0.0.1.

A thin wrapper of the platform's one launcher (``platform_core.testing``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from platform_core.testing import ServerProcess as _Launched
from platform_core.testing import launch

__all__ = ["ServerProcess", "start_server", "stop_server"]


@dataclass
class ServerProcess(_Launched):
    """An ``elkyn serve`` child: its process, base URL and home directory."""

    home: Path = Path()


def start_server(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> ServerProcess:
    """Start ``elkyn serve --port 0 *args`` with ``PLATFORM_HOME=home``; wait until healthy."""
    argv = [sys.executable, "-m", "elkyn", "serve", "--port", "0", "--log-level", "warning"]
    launched = launch(
        [*argv, *args], env={"PLATFORM_HOME": str(home), **(env or {})}, timeout=timeout
    )
    return ServerProcess(**vars(launched), home=home)


def stop_server(server: _Launched, timeout: float = 10.0) -> int:
    """SIGTERM, wait, SIGKILL if it hangs; returns the exit code."""
    return server.stop(timeout)
