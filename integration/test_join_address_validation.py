"""`platform up --join` refuses addresses that are not HOST:PORT in one line (issue 16,
attacked from outside).

`--join http://example.org/x` is refused up front (exit 2, naming HOST:PORT). Addresses that
look like HOST:PORT but are not usable ones (an unclosed IPv6 bracket, an IPv4 octet over 255)
pass that check; the lake's gossip thread then dies with a Python traceback on stderr and the
platform ends 'no answer yet', which points at the network instead of the typo. Kept as
fixed since.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from platform_cluster import FAST, SECRET
from servers import command


@pytest.mark.parametrize("address", ["[::1", "256.1.1.1:80"])
def test_a_malformed_join_address_is_bad_input_in_one_line(address: str, tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    out = subprocess.run(
        [
            *(str(command("platform")), "up", "--port", "0"),
            *("--home", str(tmp_path / "home"), "--join", address),
        ],
        capture_output=True,
        text=True,
        env={**clean, **FAST, "PLATFORM_SECRET": SECRET, "LAKE_JOIN_TIMEOUT_SECONDS": "4"},
        timeout=120,
    )
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    last = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert last, out.stderr[-2000:]
    assert address in last[-1], last[-1]
