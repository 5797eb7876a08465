"""Three ``platform up`` processes on 127.0.0.1 made one platform with ``--join`` (for benches).

The first is started alone, the others join it through its gateway's address; all share one
secret. Ports are chosen once and kept with the homes (``ports.json``), so a later run restarts
the same cluster on the same addresses (its members remember each other's). On a restart all
three start together: a platform may wait for its Elkyn peers before it answers ``/health``.
What the bench needs of ``integration/platform_cluster.py``, which benches may not import.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

JOIN_ATTEMPTS = 5
START_TIMEOUT = 180.0
"""Seconds for a platform's banner and ``/health`` (the machine is shared and loaded)."""


def machine_address() -> str | None:
    """This machine's own IPv4 address (where Ray's nodes can reach each other), or None when
    it has only loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))  # no packet is sent: only the route is looked up
            address: str = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _command() -> str:
    path = Path(sys.executable).parent / "platform"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; install the workspace (scripts/setup.sh)")
    return str(path)


def _ports(base: Path, n: int) -> list[int]:
    """The gateways' ports of the platforms under ``base``: chosen once, then kept."""
    from platform_core.testing import free_port

    saved = base / "ports.json"
    if saved.exists():
        ports: list[int] = json.loads(saved.read_text())
        return ports
    ports = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    base.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(ports))
    return ports


def _launch(
    home: Path, port: int, join: str | None, env: dict[str, str], extra: Sequence[str] = ()
) -> Any:
    from platform_core.testing import launch

    run_dir = home.parent / f"{home.name}-run"
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [_command(), "up", "--port", str(port), "--home", str(home), *extra]
    if join is not None:
        argv += ["--join", join]
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PLATFORM_")}
    return launch(
        argv,
        env={**unset, **env},
        timeout=START_TIMEOUT,
        stderr=run_dir / "server.log",
        cwd=run_dir,
    )


def _retried(
    home: Path, port: int, join: str, env: dict[str, str], extra: Sequence[str] = ()
) -> Any:
    """A restarted member joining ``join``: tried again while the first one's election is
    not yet back ("names no election member yet", seen on a loaded machine)."""
    from platform_core.testing import ServerStartError

    for attempt in range(JOIN_ATTEMPTS):
        try:
            return _launch(home, port, join, env, extra)
        except ServerStartError as exc:
            if "no election member yet" not in str(exc) or attempt == JOIN_ATTEMPTS - 1:
                raise
            time.sleep(3)
    raise AssertionError("unreachable")


@contextmanager
def platforms(
    base: Path, n: int, env: dict[str, str], host: str = "127.0.0.1", ray: bool = False
) -> Iterator[list[Any]]:
    """``n`` platforms with homes ``base/a``, ``base/b``, ...; the others join the first, on
    ``host``, each with ``--ray`` when ``ray`` (the others' Ray nodes join the first's head,
    so ``host`` must be this machine's own address: Ray's nodes do not join over loopback).

    Yields their :class:`platform_core.testing.ServerProcess` (the first is the one to query);
    all are stopped on exit, whatever happened."""
    homes = [base / c for c in "abcdefgh"[:n]]
    ports = _ports(base, n)
    first = f"{host}:{ports[0]}"
    extra = ["--host", host, *(["--ray"] if ray else [])]
    fresh = not homes[0].is_dir() or not any(homes[0].iterdir())
    procs: list[Any] = []
    try:
        if fresh or ray:  # the first alone, then the others join it (and its Ray head)
            procs.append(_launch(homes[0], ports[0], None, env, extra))
            for home, port in zip(homes[1:], ports[1:], strict=True):
                procs.append(_retried(home, port, first, env, extra))
        else:  # a restart: together, each may wait for the others' Elkyn
            with ThreadPoolExecutor(n) as pool:
                futures = [pool.submit(_launch, homes[0], ports[0], None, env, extra)]
                futures += [
                    pool.submit(_retried, h, p, first, env, extra)
                    for h, p in zip(homes[1:], ports[1:], strict=True)
                ]
                errors = []
                for f in futures:
                    try:
                        procs.append(f.result())
                    except Exception as exc:
                        errors.append(exc)
                if errors:
                    raise errors[0]
        yield procs
    finally:
        for p in reversed(procs):
            p.stop(timeout=90 if ray else 20)  # a Ray head's stop takes its nodes' with it
