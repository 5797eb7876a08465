"""<home>/platform.json: a running platform is found; a dead one's record is ignored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from platform_core import announce, find_running, withdraw


def test_this_process_is_found_until_it_withdraws(tmp_path: Path) -> None:
    assert find_running(tmp_path) is None
    announce(tmp_path, "http://127.0.0.1:1234")
    assert find_running(tmp_path) == "http://127.0.0.1:1234"
    withdraw(tmp_path)
    assert find_running(tmp_path) is None
    assert not (tmp_path / "platform.json").exists()


def test_a_record_left_by_a_dead_process_is_ignored(tmp_path: Path) -> None:
    code = f"from platform_core import announce; announce({str(tmp_path)!r}, 'http://x:1')"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert json.loads((tmp_path / "platform.json").read_text())["url"] == "http://x:1"
    assert find_running(tmp_path) is None  # that process has exited
    withdraw(tmp_path)  # not ours: left alone
    assert (tmp_path / "platform.json").exists()
    (tmp_path / "platform.json").write_text("{not json")
    assert find_running(tmp_path) is None
