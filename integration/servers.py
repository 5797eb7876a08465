"""Start an installed server command (`platform up`, `elkyn serve`, `lake node`) on port 0.

A thin layer over the platform's one launcher (``platform_core.testing.launch``): the command
runs in its own directory, with a clean ``PLATFORM_*`` environment, and stderr in a file there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from platform_core.testing import ServerProcess
from platform_core.testing import launch as launch_server

__all__ = ["START_TIMEOUT", "Server", "command", "launch"]

Server = ServerProcess
START_TIMEOUT = 90.0
"""Seconds to wait for the banner and then ``/health`` (generous: CI machines are shared)."""


def command(name: str) -> Path:
    """The console script ``name`` installed next to this interpreter."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; install the workspace (make setup)")
    return path


def launch(args: list[str], run_dir: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """Run ``args`` in ``run_dir`` with a clean ``PLATFORM_*`` environment plus ``env``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PLATFORM_")}
    return launch_server(
        args,
        env={**unset, "LAKE_FLIGHT_PORT": "0", **(env or {})},
        timeout=START_TIMEOUT,
        stderr=run_dir / "server.log",
        cwd=run_dir,
    )
