"""<home>/platform.json: a running platform is found; a dead one's record, and one its
process does not serve or another user wrote, is ignored."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from platform_core import announce, find_running, withdraw
from platform_core.running import _started


@pytest.fixture
def listener() -> Iterator[int]:
    """A port this process listens on, as a serving platform does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_this_process_is_found_until_it_withdraws(tmp_path: Path, listener: int) -> None:
    assert find_running(tmp_path) is None
    announce(tmp_path, f"http://127.0.0.1:{listener}")
    assert find_running(tmp_path) == f"http://127.0.0.1:{listener}"
    withdraw(tmp_path)
    assert find_running(tmp_path) is None
    assert not (tmp_path / "platform.json").exists()


def _plant(home: Path, pid: int, url: str) -> None:
    record = {"url": url, "pid": pid, "proc_start": _started(pid), "at": 0}
    (home / "platform.json").write_text(json.dumps(record))


def test_a_record_whose_process_does_not_serve_its_url_is_not_believed(
    tmp_path: Path, listener: int
) -> None:
    # A planted record: a live process (pid 1, or this one) and a URL it does not listen
    # on (a listener of whoever wrote the file): the CLIs and connect() would send it a token
    _plant(tmp_path, 1, f"http://127.0.0.1:{listener}")
    assert find_running(tmp_path) is None
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        free_port = other.getsockname()[1]  # bound, not listening
        _plant(tmp_path, os.getpid(), f"http://127.0.0.1:{free_port}")
        assert find_running(tmp_path) is None
    _plant(tmp_path, os.getpid(), "http://127.0.0.1")  # no port at all
    assert find_running(tmp_path) is None
    _plant(tmp_path, os.getpid(), f"http://127.0.0.1:{listener}")
    assert find_running(tmp_path) == f"http://127.0.0.1:{listener}"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_record_another_user_wrote_is_not_believed(tmp_path: Path, listener: int) -> None:
    _plant(tmp_path, os.getpid(), f"http://127.0.0.1:{listener}")
    assert find_running(tmp_path) is not None
    os.chown(tmp_path / "platform.json", 4242, -1)
    assert find_running(tmp_path) is None


def test_a_record_left_by_a_dead_process_is_ignored(tmp_path: Path) -> None:
    code = f"from platform_core import announce; announce({str(tmp_path)!r}, 'http://x:1')"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert json.loads((tmp_path / "platform.json").read_text())["url"] == "http://x:1"
    assert find_running(tmp_path) is None  # that process has exited
    withdraw(tmp_path)  # not ours: left alone
    assert (tmp_path / "platform.json").exists()
    (tmp_path / "platform.json").write_text("{not json")
    assert find_running(tmp_path) is None
