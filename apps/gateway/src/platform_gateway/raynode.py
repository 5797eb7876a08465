"""The Ray node ``platform up --ray`` runs beside the gateway, as a supervised child.

``ray start --block`` runs in a session (process group) of its own, so every process Ray
starts for the node (GCS, raylet, monitor.py, log_monitor.py, ray::DashboardAgent,
ray::RuntimeEnvAgent, workers) is stopped together: a whole-group SIGTERM, then SIGKILL,
then a sweep of ``/proc`` for any process still naming the node's temp dir in its command
line or environment (one that left the group). A watcher thread notices when the node dies
on its own (``ray start --block`` exits once its GCS or raylet dies), stops what is left of
it and logs one line; the gateway keeps serving storage and its API.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from platform_core.service import StartError

from .raystart import (
    NODE_MARK,
    TOKEN_FILE,
    RaySpec,
    ray_dir,
    start_command,
    start_env,
    temp_dir_for,
)

__all__ = ["RayNode", "leftovers"]

log = logging.getLogger("platform.ray")

START_TIMEOUT = 120.0
"""Seconds ``ray start`` may take to say ``Ray runtime started`` (a shared CI machine)."""
STOP_GRACE = 10.0
_READY_LINE = "Ray runtime started"


class RayNode:
    """One Ray node (head or worker) of this platform; :meth:`start`, then :meth:`stop`."""

    def __init__(self, spec: RaySpec) -> None:
        self.spec = spec
        self.temp_dir = temp_dir_for(spec.home)
        self.log_path = ray_dir(spec.home) / "ray-start.log"
        self.state = "stopped"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    @property
    def head(self) -> bool:
        return self.spec.head_address is None

    @property
    def token_path(self) -> Path:
        """The file with the Ray token of this node's cluster (``raystart.make_token``)."""
        return ray_dir(self.spec.home) / TOKEN_FILE

    @property
    def address(self) -> str:
        """The cluster's GCS address (``HOST:PORT``) drivers and worker nodes connect to."""
        if self.spec.head_address is not None:
            return self.spec.head_address
        return f"{_advertised(self.spec.host)}:{self.spec.ports.gcs}"

    def start(self) -> None:
        """Run ``ray start --block`` and wait until Ray says it runs; raises ``StartError``
        with the log's last line when it does not."""
        command = start_command(self.spec, self.temp_dir)
        env = start_env(self.spec, self.temp_dir, dict(os.environ))
        with self.log_path.open("wb") as out:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ray_dir(self.spec.home),
                start_new_session=True,  # its own group: stopped whole (module docstring)
                preexec_fn=_end_with_parent,
            )
        self.state = "starting"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.state = "running"
        threading.Thread(target=self._watch, name="ray-node-watch", daemon=True).start()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if _READY_LINE in text:
                return
            if self._proc.poll() is not None:
                raise StartError(f"cannot start Ray: {_last_line(text)} (log: {self.log_path})")
            time.sleep(0.2)
        raise StartError(f"Ray did not start within {START_TIMEOUT:.0f} s (log: {self.log_path})")

    def _watch(self) -> None:
        """Notice the node's own death (not a stop): stop the rest and say so once. The
        gateway's Ray driver is left alone: with its raylet gone, ``ray.shutdown()`` would end
        the gateway's process (rayup)."""
        assert self._proc is not None
        while not self._stopping.wait(1.0):
            code = self._proc.poll()
            if code is None:
                continue
            if self._stopping.is_set():
                return
            self._kill_group()
            self.state = "gone"
            log.error(
                "the Ray %s at %s died (ray start exited with %s); its processes are stopped "
                "and the platform keeps serving storage and its API without Ray (log: %s)",
                "head" if self.head else "worker node",
                self.address,
                code,
                self.log_path,
            )
            return

    def stop(self) -> None:
        """Stop the node's whole process set (group, then the ``/proc`` sweep)."""
        self._stopping.set()
        if self._proc is None:
            return
        log.info("stopping the Ray %s (process group %d)", self.status()["role"], self._proc.pid)
        if self._proc.poll() is None:
            _signal_group(self._proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(STOP_GRACE)
        self._kill_group()
        if self.state != "gone":
            self.state = "stopped"
        if self.temp_dir.is_symlink():  # the short link of a long home (raystart.temp_dir_for)
            self.temp_dir.unlink(missing_ok=True)
        log.info("the Ray node's processes are stopped")

    def _kill_group(self) -> None:
        """SIGKILL what is left of the group and of anything naming the temp dir."""
        assert self._proc is not None
        _signal_group(self._proc.pid, signal.SIGKILL)
        try:
            self._proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            log.warning("ray start (pid %d) did not end after SIGKILL", self._proc.pid)
        deadline = time.monotonic() + STOP_GRACE
        while (left := leftovers(self.temp_dir)) and time.monotonic() < deadline:
            for pid in left:
                _kill(pid)
            time.sleep(0.1)
        if left:
            log.warning("Ray processes %s of %s outlived SIGKILL", left, self.temp_dir)

    def status(self) -> dict[str, Any]:
        """For the banner and ``platform status``."""
        return {
            "role": "head" if self.head else "worker",
            "address": self.address,
            "state": self.state,
            "ports": self.spec.ports.as_dict(),
            "temp_dir": str(ray_dir(self.spec.home)),
        }


def _end_with_parent() -> None:
    """In the child before ``exec``: SIGTERM it when ``platform up`` dies, even by SIGKILL
    (Linux's ``PR_SET_PDEATHSIG``), so ``ray start --block`` stops its node then too."""
    import ctypes

    pr_set_pdeathsig = 1
    # not Linux (no prctl): the platform's own stop still runs
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _advertised(host: str) -> str:
    """The host part of the address others reach the head at."""
    if host in ("localhost", ""):
        return "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        import socket

        return socket.gethostbyname(socket.gethostname())
    return f"[{host}]" if ":" in host else host


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def leftovers(temp_dir: Path) -> list[int]:
    """Pids of live processes naming ``temp_dir`` in their command line, or marked with it
    in their environment (``raystart.NODE_MARK``), this process excluded."""
    needle = str(temp_dir).encode()
    mark = f"{NODE_MARK}={temp_dir}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (
                needle in (entry / "cmdline").read_bytes()
                or mark in (entry / "environ").read_bytes() + b"\0"
            ) and _alive(entry):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _alive(entry: Path) -> bool:
    """False for a zombie (dead, waiting for its parent to reap it)."""
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "it printed nothing"
