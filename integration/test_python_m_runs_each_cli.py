"""``python -m <package>`` runs each package's CLI, as the console script does: the same
help, ``--version`` and a bad option's one-line error with exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

MODULES = {
    "lake": "lake",
    "elkyn": "elkyn",
    "elytra": "elytra",
    "emsqrt": "emsqrt",
    "platform_gateway": "platform",
}


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_python_m_prints_help_and_version(module: str) -> None:
    helped = _run(module, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Usage:" in helped.stdout
    assert "Commands" in helped.stdout
    version = _run(module, "--version")
    assert version.returncode == 0, version.stderr
    assert MODULES[module] in version.stdout


@pytest.mark.parametrize("module", sorted(MODULES))
def test_python_m_bad_option_is_one_error_not_a_traceback(module: str) -> None:
    done = _run(module, "--no-such-option")
    assert done.returncode == 2
    assert "No such option" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
