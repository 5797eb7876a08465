"""First-hour items 1 and 6 for `lake node` alone, as real processes.

1. A Flight port that is set and taken is one line naming the port and ``LAKE_FLIGHT_PORT``
   (the default, any free port, is covered with a gateway in ``integration/``).
6. A node started with another secret than the member it joins through says "cluster secret
   mismatch with NODE" once (not once per gossip round) and ``--join`` exits non-zero.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake.testing import start_node, stop_node

from .conftest import SECRET

pytestmark = pytest.mark.slow


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no LAKE_*/PLATFORM_* settings but the ones given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "PLATFORM_"))}
    return {**env, "PLATFORM_HOME": str(home), **extra}


def test_a_taken_flight_port_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "lake", "node", "--port", "0"],
            env=_env(tmp_path, PLATFORM_SECRET=SECRET, LAKE_FLIGHT_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"Flight port {port}" in lines[0]
    assert "LAKE_FLIGHT_PORT" in lines[0]
    assert "serving" not in r.stdout


def test_a_secret_mismatch_is_said_once_and_join_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith(("LAKE_", "PLATFORM_"))]:
        monkeypatch.delenv(key)
    a = start_node(tmp_path / "a", env={"PLATFORM_SECRET": SECRET})
    try:
        b = start_node(
            tmp_path / "b",
            "--join",
            a.addr,
            "--log-level",
            "info",  # what a user sees by default (the later --log-level wins)
            env={"PLATFORM_SECRET": "t" * 40, "LAKE_JOIN_TIMEOUT_SECONDS": "4"},
        )
        try:
            code = b.proc.wait(timeout=60)
        finally:
            stop_node(b)
        said = [line for line in b.output().splitlines() if "cluster secret mismatch" in line]
        # one log record (of ~4 refused join attempts) and the exit line
        assert len(said) == 2, b.output()
        assert f"cluster secret mismatch with {a.addr}" in said[0]
        assert not [line for line in b.output().splitlines() if "Unauthorized" in line], b.output()
        assert said[1].startswith(f"error: could not join the cluster through {a.addr}")
        assert "PLATFORM_SECRET" in said[1]
        assert code != 0
        assert b.output().strip().splitlines()[-1] == said[1]
        assert a.proc.poll() is None  # the member it failed to join runs on
    finally:
        stop_node(a)


def test_join_through_a_node_that_is_not_there_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith(("LAKE_", "PLATFORM_"))]:
        monkeypatch.delenv(key)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{s.getsockname()[1]}"
    b = start_node(
        tmp_path / "b",
        "--join",
        nobody,
        env={"PLATFORM_SECRET": SECRET, "LAKE_JOIN_TIMEOUT_SECONDS": "2"},
    )
    try:
        code = b.proc.wait(timeout=60)
    finally:
        stop_node(b)
    last = b.output().strip().splitlines()[-1]
    assert code != 0
    assert last.startswith(
        f"error: could not join the cluster through {nobody} (or a peer this node saw alive "
        "before) within 2 s"
    )
    assert "did not answer" in last


def test_a_node_prints_the_command_to_give_clients_and_it_works(tmp_path: Path) -> None:
    """First-hour item 4: ``lake node`` says which URL the clients take; the command it
    prints runs as printed (with the cluster secret to mint a token)."""
    node = start_node(tmp_path / "n", env={"PLATFORM_SECRET": SECRET})
    try:
        deadline = 30.0
        start = time.monotonic()
        while not any("clients:" in line for line in node.stdout_lines):
            assert time.monotonic() - start < deadline, node.stdout_lines
            time.sleep(0.05)
        line = next(x for x in node.stdout_lines if "clients:" in x)
        command = line.split("clients: ", 1)[1].split(" (", 1)[0].split()
        assert command[:2] == ["lake", "ls"]
        assert command[-1] == node.url
        r = subprocess.run(
            [sys.executable, "-m", "lake", *command[1:]],
            env=_env(tmp_path, PLATFORM_SECRET=SECRET),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        stop_node(node)
