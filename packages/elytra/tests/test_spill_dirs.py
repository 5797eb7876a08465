"""A job's spill directory outlives a SIGKILLed process only until the next driver on that
home starts; a running job's directory and directories that are not a job's are never removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import elytra
from elytra.errors import ElytraError
from elytra.spilldirs import JobDir, sweep
from platform_core import new_id

KILLED_JOB = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    import elytra

    def slow(batch):
        time.sleep(600 if batch.num_rows else 0)  # not while learning the schema
        return batch

    with elytra.connect(home=sys.argv[1], backend="inline", progress=False) as s:
        t = pa.table({"x": list(range(1000))})
        s.from_arrow(t).map_batches(slow).sort("x").collect()
    """
)


def test_a_killed_run_leaves_its_spill_directory_to_the_next_driver(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = home / "spill" / "elytra"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_JOB, str(home)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(root.glob(".elytra-job-*.lock")):
            time.sleep(0.05)
        locks = list(root.glob(".elytra-job-*.lock"))
        assert locks, "the job never started"
        job_dir = root / locks[0].name[len(".elytra-job-") : -len(".lock")]
        job_dir.mkdir(exist_ok=True)  # what its tasks would have spilled
        (job_dir / "run0.arrow").write_bytes(b"x" * 1000)
        assert sweep(root) == 0  # held by the live job
        assert job_dir.exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert job_dir.exists()  # SIGKILL removed nothing
    unrelated = root / "not-a-job"
    unrelated.mkdir()
    with elytra.connect(home=home, backend="inline", progress=False):
        pass
    assert not job_dir.exists()
    assert not list(root.glob(".elytra-job-*.lock"))
    assert unrelated.exists()


def test_a_job_dir_is_locked_while_held_and_gone_after(tmp_path: Path) -> None:
    held = JobDir(tmp_path, new_id())
    path = held.acquire()
    path.mkdir()
    (path / "f").write_bytes(b"1")
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from elytra.spilldirs import sweep; print(sweep({str(tmp_path)!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == "0"
    assert path.exists()
    held.release()
    assert not path.exists()
    assert not os.listdir(tmp_path)


def test_a_spill_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a directory")
    with pytest.raises(ElytraError, match=r"spill directory .*plain.* ELYTRA_SPILL_DIR"):
        elytra.connect(home=tmp_path / "home", backend="inline", spill_dir=plain)
    assert plain.read_text() == "not a directory"
