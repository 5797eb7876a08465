"""The service kit: binding (port 0, one-line start failures), the banner, serving."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from platform_core import StartError, bind
from platform_core.service import banner, port_holder, url_of
from platform_core.testing import launch

KIT_SERVER = Path(__file__).with_name("kit_server.py")


def test_port_0_binds_a_free_port_and_reports_it() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0
        sock.listen()
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        sock.close()


def test_ipv6_loopback_binds_and_brackets_the_url() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        sock = bind("::1", 0)
    except StartError as exc:
        pytest.skip(f"::1 is not configured here: {exc}")
    with sock:
        assert url_of("::1", sock.getsockname()[1]).startswith("http://[::1]:")


def test_a_port_in_use_is_one_line_naming_port_holder_and_setting() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert port_holder(port) == os.getpid()
        with pytest.raises(StartError) as caught:
            bind("127.0.0.1", port)
    message = caught.value.message
    assert "\n" not in message
    assert f"port {port} on 127.0.0.1 is in use" in message
    assert f"PID {os.getpid()} holds it" in message
    assert "set PLATFORM_PORT or --port" in message


def test_the_setting_to_change_is_the_callers() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(StartError, match=r"; pass --port \(0 picks a free port\)$"):
            bind("127.0.0.1", port, port_setting=None)
        with pytest.raises(StartError, match="set LAKE_PORT or --http-port"):
            bind("127.0.0.1", port, port_setting="LAKE_PORT", port_option="--http-port")


def test_an_unknown_host_names_the_host_setting() -> None:
    with pytest.raises(StartError) as caught:
        bind("no-such-host.invalid", 0)
    assert "'no-such-host.invalid'" in caught.value.message
    assert "set PLATFORM_HOST or --host" in caught.value.message


def test_an_address_of_another_machine_is_refused_clearly() -> None:
    with pytest.raises(StartError, match=r"192\.0\.2\.1: not an address of this machine"):
        bind("192.0.2.1", 0)  # TEST-NET-1: never assigned to a host


def test_the_banner_says_what_where_pid_and_home() -> None:
    line = banner("lake node", "http://127.0.0.1:8700", home="/data", docs="http://x/docs")
    assert line == (
        f"lake node is up at http://127.0.0.1:8700 (docs: http://x/docs, pid {os.getpid()}, "
        "home /data)"
    )


def test_serve_prints_the_banner_once_up_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = launch([sys.executable, str(KIT_SERVER)], timeout=60)
    try:
        assert server.banner.startswith(f"kit is up at {server.url} (pid {server.pid}")
        assert server.banner.endswith("home /nowhere)")
    finally:
        code = server.stop()
    assert code == 0
    assert "Traceback" not in server.stderr() if server.stderr_path.exists() else True
