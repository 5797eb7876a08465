"""`elkyn serve` over HTTPS: a primary and a read replica following it over TLS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from platform_core import load_settings
from platform_core.testing import make_certificates
from platform_core.tls import client_context


@pytest.mark.slow
def test_primary_and_replica_over_tls(launch: Any, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    env = certs.server_env()
    primary = launch(tmp_path / "p", "--port", "0", **env)
    assert primary.url.startswith("https://127.0.0.1:")
    replica = launch(tmp_path / "r", "--port", "0", "--replica-of", primary.url, **env)
    admin = primary.signer.issue("ops", admin=True)
    headers = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(verify=client_context(load_settings(tls_ca=certs.ca)), headers=headers) as h:
        assert h.put(f"{primary.url}/jobs/1.json", json={"state": "done"}).status_code == 200
        deadline = time.monotonic() + 30
        while h.get(f"{replica.url}/jobs/1.json").json() != {"state": "done"}:
            assert time.monotonic() < deadline, "the replica did not follow over TLS"
            time.sleep(0.1)
    # A replica given the primary's URL without the CA cannot follow, and says why.
    other_ca = make_certificates(tmp_path / "other", "other").ca
    blind = launch(
        tmp_path / "b", "--port", "0", "--replica-of", primary.url, PLATFORM_TLS_CA=str(other_ca)
    )  # serves plain HTTP, trusts another CA
    deadline = time.monotonic() + 30
    while "is not trusted" not in blind.process.stderr():
        assert time.monotonic() < deadline, blind.process.stderr()
        time.sleep(0.1)
