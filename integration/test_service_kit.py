"""The service kit as a user meets it: start failures in one line, one owner per database.

Real processes: ``platform up``, ``elkyn serve`` and ``lake node`` as installed console
scripts, a port held by another process, ``kill -9``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake import lake_settings, open_catalog
from platform_core.testing import launch

BIN = Path(sys.executable).parent


def clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "LAKE_", "ELKYN_"))
    }
    env["PLATFORM_HOME"] = str(home)
    env["LAKE_FLIGHT_PORT"] = "0"
    return env


def run(
    argv: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another process listens on (like a second `make up`)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,time\n"
            "s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    port = int(holder.stdout.readline())
    yield port
    holder.kill()
    holder.wait()
    holder.stdout.close()


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        (["platform", "up"], "set PLATFORM_PORT or --port"),
        (["elkyn", "serve"], "pass --port"),
        (["lake", "node"], "pass --port"),
    ],
)
def test_a_port_in_use_is_one_line_and_a_nonzero_exit(
    command: list[str], setting: str, held_port: int, tmp_path: Path
) -> None:
    argv = [str(BIN / command[0]), *command[1:], "--port", str(held_port)]
    done = run(argv, clean_env(tmp_path / "home"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {held_port} on 127.0.0.1 is in use" in lines[0]
    assert setting in lines[0]


def test_elkyn_serve_beside_a_running_gateway_names_the_owner_until_it_dies(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    env = clean_env(home)
    gateway = launch([str(BIN / "platform"), "up", "--port", "0"], env=env, timeout=120)
    try:
        second = run([str(BIN / "elkyn"), "serve", "--port", "0"], env)
        assert second.returncode != 0
        assert "Traceback" not in second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert (
            f"the Elkyn database at {home / 'elkyn'} is in use by process {gateway.pid}"
            in (lines[0])
        )
        assert "ELKYN_PATH or --path" in lines[0]
    finally:
        gateway.proc.send_signal(signal.SIGKILL)  # the kernel releases its lock
        gateway.stop()
    elkyn = launch([str(BIN / "elkyn"), "serve", "--port", "0"], env=env, timeout=120)
    try:
        assert elkyn.banner.startswith("elkyn is up at http://127.0.0.1:")
    finally:
        assert elkyn.stop() == 0


def test_a_second_lake_node_on_a_directory_names_the_owner_and_readers_still_read(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    env = clean_env(home)
    argv = [str(BIN / "lake"), "node", "--port", "0", "--log-level", "warning"]
    first = launch(argv, env=env, timeout=120)
    try:
        second = run(argv, env)
        assert second.returncode != 0
        assert "Traceback" not in second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"is in use by process {first.pid}" in lines[0]
        assert "LAKE_DATA_DIR or --home" in lines[0]
        # a reader beside the node (elytra's open_catalog) takes no lock
        assert open_catalog(lake_settings(None, home=home)).names() == []
    finally:
        first.proc.send_signal(signal.SIGKILL)
        first.stop()
    again = launch(argv, env=env, timeout=120)
    assert again.stop() == 0


def test_elkyn_serve_on_a_bad_host_is_one_line(tmp_path: Path) -> None:
    done = run(
        [str(BIN / "elkyn"), "serve", "--host", "no-such-host.invalid", "--port", "0"],
        clean_env(tmp_path),
    )
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "'no-such-host.invalid'" in done.stderr
