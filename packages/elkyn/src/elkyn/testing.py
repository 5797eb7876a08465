"""Test helpers: run ``elkyn serve`` as a real child process on 127.0.0.1 (standard library only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerProcess", "start_server", "stop_server"]


@dataclass
class ServerProcess:
    """An ``elkyn serve`` child: its process, base URL and home directory."""

    proc: subprocess.Popen[str]
    url: str
    home: Path


def start_server(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> ServerProcess:
    """Start ``elkyn serve --port 0 *args`` with ``PLATFORM_HOME=home``; wait until healthy."""
    full_env = {**os.environ, "PLATFORM_HOME": str(home), **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "elkyn", "serve", "--port", "0", "--log-level", "warning", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=full_env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"elkyn serve did not start (it printed {line!r})")
    url = line.rsplit(" ", 1)[1].strip()
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                if resp.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            proc.wait()
            raise RuntimeError("elkyn serve did not become healthy")
        time.sleep(0.05)
    return ServerProcess(proc, url, home)


def stop_server(server: ServerProcess, timeout: float = 10.0) -> int:
    """SIGTERM, wait, SIGKILL if it hangs; returns the exit code."""
    server.proc.terminate()
    try:
        return server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        return server.proc.wait()
