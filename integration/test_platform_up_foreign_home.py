"""`platform up` on a home that `elkyn serve` owns stops with one line. (Adversarial start-up
test of issue 13, a break-it pass: each test names the defect it found.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from platform_core.testing import running_server

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(300)


def test_platform_up_on_a_home_elkyn_serve_owns_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "ELKYN_"))}
    elkyn = [str(BIN / "elkyn"), "serve", "--port", "0", "--path", str(home / "elkyn")]
    with running_server(elkyn, env=env, timeout=60) as owner:
        done = subprocess.run(
            [str(BIN / "platform"), "up", "--port", "0", "--home", str(home)],
            capture_output=True,
            text=True,
            env=env | {"LAKE_FLIGHT_PORT": "0"},
            timeout=120,
            check=False,
        )
    assert done.returncode != 0
    assert f"in use by process {owner.pid}" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
