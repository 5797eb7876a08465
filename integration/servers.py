"""Launch an installed server command (`platform up`, `elkyn serve`, `lake node`) on port 0.

The command prints the URL it bound in a banner; this waits for the banner and ``/health``,
then hands back the URL. Output goes to files, so a chatty server never blocks on a pipe.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from platform_gateway.testing import wait_healthy

__all__ = ["BANNERS", "Server", "command", "launch"]

BANNERS = {
    "platform": re.compile(r"platform is up at (http://\S+)"),
    "elkyn": re.compile(r"elkyn serving \S+ at (http://\S+)"),
    "lake": re.compile(r"lake node \S+ serving at (http://\S+)"),
}
"""The line each command prints once it listens, with its URL as group 1."""
START_TIMEOUT = 90.0
"""Seconds to wait for the banner and then ``/health`` (generous: CI machines are shared)."""


def command(name: str) -> Path:
    """The console script ``name`` installed next to this interpreter."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; install the workspace (make setup)")
    return path


@dataclass
class Server:
    """A running server process and where it serves."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def launch(
    args: list[str], banner: re.Pattern[str], run_dir: Path, env: dict[str, str] | None = None
) -> Server:
    """Run ``args`` in ``run_dir`` with a clean ``PLATFORM_*`` environment plus ``env``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    full_env.setdefault("LAKE_FLIGHT_PORT", "0")
    full_env.update(env or {})
    log = run_dir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=run_dir
        )
    server = Server(proc, "", log)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while (match := banner.search(server.output())) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} printed no banner (exit {proc.poll()})")
            time.sleep(0.05)
        server.url = match.group(1).rstrip("/")
        wait_healthy(server.url, proc, timeout=START_TIMEOUT)
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        raise RuntimeError(f"{exc}\n--- output ---\n{server.output()}") from None
    return server
