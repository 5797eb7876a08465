"""One owner process per database directory: ``platform_core.ownership``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from platform_core import DirectoryInUseError, lock_directory
from platform_core.ownership import LOCK_FILE

HOLD = """
import sys, time
from platform_core import lock_directory
lock = lock_directory(sys.argv[1], what="the test data", setting="TEST_DIR")
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_opener_gets_one_line_naming_the_owner(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(holder.pid)
        with pytest.raises(DirectoryInUseError) as caught:
            lock_directory(tmp_path, what="the test data", setting="TEST_DIR")
        message = caught.value.message
        assert "\n" not in message
        assert f"the test data at {tmp_path} is in use by process {holder.pid}" in message
        assert "set TEST_DIR to another directory" in message
        assert caught.value.status == 409
    finally:
        holder.send_signal(signal.SIGKILL)  # the kernel releases the lock of a killed owner
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    with lock_directory(tmp_path, what="the test data", setting="TEST_DIR"):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_the_lock_is_per_opener_even_in_one_process(tmp_path: Path) -> None:
    first = lock_directory(tmp_path / "db", what="x", setting="X")
    with pytest.raises(DirectoryInUseError, match=f"in use by process {os.getpid()}"):
        lock_directory(tmp_path / "db", what="x", setting="X")
    first.release()
    first.release()  # idempotent
    assert not first.held
    lock_directory(tmp_path / "db", what="x", setting="X").release()
