"""Helpers of the `platform up --ray` tests: start it with a fake ``$HOME``, find its Ray
processes from ``/proc`` (independently of the platform's own bookkeeping)."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from platform_cluster import FAST
from servers import Server, command, launch

__all__ = ["ray_processes", "start_with_ray"]


def start_with_ray(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None, run: str = "run"
) -> tuple[Server, Path, Path]:
    """``platform up --ray --port 0 --home <tmp>/home`` with ``HOME`` an empty directory (kept
    when the same ``tmp_path`` starts again, on the same home; ``run`` names the run's logs);
    returns the server, its home and the fake ``$HOME``."""
    home = tmp_path / "home"
    fake_home = tmp_path / "user-home"
    fake_home.mkdir(parents=True, exist_ok=True)
    argv = [str(command("platform")), "up", "--ray", "--port", "0", "--home", str(home), *extra]
    env = {**FAST, "HOME": str(fake_home), "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
    return launch(argv, tmp_path / run, env=env), home, fake_home


def ray_processes(home: Path, exclude: Collection[int] = ()) -> dict[int, str]:
    """Live processes (pid: command line) that are Ray's and carry ``home`` in their command
    line or environment: gcs_server, raylet, Ray's Python daemons and ``ray::`` workers."""
    found = {}
    needle = str(home).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in {*exclude, os.getpid()}:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or (needle not in cmdline and needle not in environ):
            continue
        text = cmdline.replace(b"\0", b" ").decode(errors="replace")
        if "ray" in text.lower():  # ray start, gcs_server, raylet, ray/..., ray::Name
            found[int(entry.name)] = text[:200]
    return found
