"""The one test-server launcher (``platform_core.testing``) against real processes."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from platform_core.testing import (
    ServerStartError,
    free_port,
    launch,
    running_server,
    stop_process,
    wait_healthy,
)

KIT_SERVER = Path(__file__).with_name("kit_server.py")


def kit(mode: str = "ok") -> list[str]:
    return [sys.executable, str(KIT_SERVER), mode]


def test_a_running_server_yields_its_url_and_is_stopped_after() -> None:
    with running_server(kit(), timeout=60) as server:
        assert server.url.startswith("http://127.0.0.1:")
        wait_healthy(server.url, server.proc, timeout=5)
        proc = server.proc
    assert proc.poll() == 0  # stopped by SIGTERM, cleanly, and reaped


def test_a_server_that_dies_at_start_shows_its_stderr(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError) as caught:
        launch(kit("die"), timeout=60, stderr=tmp_path / "err.log")
    text = str(caught.value)
    assert "exited with code 3" in text
    assert "kit_server: cannot start: the sample failure" in text


def test_a_server_that_prints_no_url_times_out(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ServerStartError, match=r"printed no URL in 2 s"):
        launch(kit("silent"), timeout=2, stderr=tmp_path / "err.log")
    assert time.monotonic() - started < 15


def test_a_server_never_healthy_times_out_with_the_last_answer(tmp_path: Path) -> None:
    log = tmp_path / "err.log"
    with log.open("w") as err:
        proc = subprocess.Popen(kit("unhealthy"), stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        url = re.search(r"http://\S+", proc.stdout.readline())
        assert url is not None
        with pytest.raises(ServerStartError) as caught:
            wait_healthy(url.group(0), proc, timeout=1, stderr=log)
        assert "/health was not healthy after 1 s (last: status 503)" in str(caught.value)
        assert "\nstderr:\n" in str(caught.value)
    finally:
        stop_process(proc)
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_given_url_is_polled_and_a_dead_process_fails_fast() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(5)"])
    with pytest.raises(ServerStartError, match="exited with code 5"):
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=30)


def test_stop_kills_a_process_that_ignores_sigterm() -> None:
    proc = subprocess.Popen(kit("stubborn"), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "stubborn" in proc.stdout.readline()  # its SIGTERM handler is in place
    code = stop_process(proc, timeout=0.5)
    assert code == -signal.SIGKILL
    proc.stdout.close()


def test_free_ports_are_bindable_and_outside_the_ephemeral_range() -> None:
    """An ephemeral port may be taken by any outgoing connection before the server binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert all(p < low for p in ports), ports
    assert len(set(ports)) > 40  # random picks, not one port over and over
    with socket.socket() as held:
        held.bind(("127.0.0.1", ports[0]))  # each was free: binding works
