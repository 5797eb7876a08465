"""Test helpers: run ``lake node`` as a real child process on 127.0.0.1 (standard library only)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .node import LakeNode

__all__ = ["NodeProcess", "ingest", "peak_rss_bytes", "start_node", "stop_node"]


@dataclass
class NodeProcess:
    """A ``lake node`` child: its process, base URL, home and log file."""

    proc: subprocess.Popen[str]
    url: str
    home: Path
    log: Path
    node_id: str = ""
    flight: str = ""

    @property
    def addr(self) -> str:
        """``host:port`` of its HTTP API (what ``--join`` takes)."""
        return self.url.removeprefix("http://")

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def start_node(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> NodeProcess:
    """Start ``lake node --port 0 *args`` with ``PLATFORM_HOME=home``; wait until healthy."""
    home.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PLATFORM_HOME": str(home), **(env or {})}
    log = home / f"node-{time.time_ns()}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lake", "node", "--port", "0", "--log-level", "warning", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=full_env,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"lake node did not start (it printed {line!r}): {log.read_text()}")
    m = re.search(r"lake node (\S+) serving at (http://\S+) \(flight grpc://(\S+)\)", line)
    if m is None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"unexpected banner {line!r}")
    node_id, url, flight = m.group(1), m.group(2), m.group(3)
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
            raise RuntimeError(f"lake node did not become healthy: {log.read_text()}")
        time.sleep(0.05)
    return NodeProcess(proc, url, home, log, node_id, flight)


def stop_node(node: NodeProcess, timeout: float = 10.0) -> int:
    """SIGTERM, wait, SIGKILL if it hangs; returns the exit code."""
    if node.proc.poll() is not None:
        return node.proc.returncode
    node.proc.terminate()
    try:
        return node.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        return node.proc.wait()


def peak_rss_bytes(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process from ``/proc/<pid>/status`` (Linux)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def ingest(node: LakeNode, path: Path, name: str, **kw: Any) -> None:
    """Upload a local file into an in-process node through the upload protocol; wait for it."""
    node.ingest(path, name, **kw)
