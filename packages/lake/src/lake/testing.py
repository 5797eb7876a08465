"""Test helpers: run ``lake node`` as a real child process on 127.0.0.1.

The process is started by the platform's one launcher (``platform_core.testing``).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_core.testing import ServerProcess, launch

if TYPE_CHECKING:
    from .node import LakeNode

__all__ = ["NodeProcess", "ingest", "peak_rss_bytes", "start_node", "stop_node"]

_BANNER = re.compile(r"lake node (\S+) serving at (https?://\S+) \(flight grpc(?:\+tls)?://(\S+)\)")


@dataclass
class NodeProcess(ServerProcess):
    """A ``lake node`` child: its process, base URL, home, log file, node id, Flight address."""

    home: Path = Path()
    node_id: str = ""
    flight: str = ""

    @property
    def log(self) -> Path:
        """Its stderr (the JSON log)."""
        return self.stderr_path

    @property
    def addr(self) -> str:
        """``host:port`` of its HTTP API (what ``--join`` takes)."""
        return self.url.split("://", 1)[1]

    def output(self) -> str:
        return self.stderr()


def start_node(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> NodeProcess:
    """Start ``lake node --port 0 *args`` with ``PLATFORM_HOME=home``; wait until healthy."""
    home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "lake", "node", "--port", "0", "--log-level", "warning"]
    launched = launch(
        [*argv, *args],
        env={"PLATFORM_HOME": str(home), **(env or {})},
        timeout=timeout,
        stderr=home / f"node-{time.time_ns()}.log",
    )
    m = _BANNER.search(launched.banner)
    if m is None:
        launched.stop()
        raise RuntimeError(f"unexpected banner {launched.banner!r}")
    return NodeProcess(**vars(launched), home=home, node_id=m.group(1), flight=m.group(3))


def stop_node(node: ServerProcess, timeout: float = 10.0) -> int:
    """SIGTERM, wait, SIGKILL if it hangs; returns the exit code."""
    return node.stop(timeout)


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
