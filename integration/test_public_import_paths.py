"""Public import paths kept when modules moved still import (in a fresh interpreter too).

(Part of the break-test of issue 27, "break27".)
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

# --------------------------------------------------------------------------------------------
# old import paths


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("elytra.driver", "write_table"),
        ("elytra.outfile", "write_table"),
        ("emsqrt.resolve", "right_output_names"),
        ("emsqrt.joinkeys", "right_output_names"),
        ("elkyn.catchup", "followed_database"),
        ("elkyn.forward", "follow"),
        ("elkyn.status", "serve_status"),
        ("elkyn.plugin", "replication_status"),
        ("elkyn", "replication_status"),
    ],
)
def test_public_import_paths_still_import(module: str, name: str) -> None:
    code = f"from {module} import {name}; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert importlib.import_module(module) is not None
