"""A platform SIGKILLed right after its start and started again on its home: its election
(of one member) must have named it primary before it answers ``/health``.

Found by CI: the home kept its Raft journal (the kill came before the election recorded its
members), so the restart ran an election of one. The gateway answered before that election
named it primary, and the plugins that started meanwhile took it for a replica: a job its
killed run drove stayed unknown (404), and a login after the restart got 503. Now Elkyn's
plugin waits (bounded) for the election to name its role before the others start.

An outside tester then found the wait ending too early: killed after its election had
recorded it primary, and restarted on another port, the platform followed its own old (dead)
address, which counted as a role. A replica's role now counts once its primary answers.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from servers import command, launch

from platform_core import PlatformSettings, auth, load_settings

pytestmark = pytest.mark.timeout(180)


def test_a_restarted_election_of_one_serves_as_primary_from_its_first_answer(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    argv = [str(command("platform")), "up", "--port", "0", "--home", str(home)]
    server = launch(argv, tmp_path / "run1", env={"ELYTRA_WORKERS": "1"})
    signer = auth.signer(load_settings(PlatformSettings, home=home), create=False)
    admin = {"authorization": f"Bearer {signer.issue('admin', admin=True)}"}
    try:
        _wait_recorded(server.url, admin)  # its record names this address, soon to be dead
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(10)
    finally:
        server.stop()
    journal = next(home.rglob("election.journal"))
    # as when the kill comes before the election's first tick recorded its members
    (journal.parent / "election.members").unlink(missing_ok=True)
    server = launch(argv, tmp_path / "run2", env={"ELYTRA_WORKERS": "1"})  # another port
    try:
        status = httpx.get(f"{server.url}/db/.replication/status", headers=admin, timeout=30)
        assert status.status_code == 200, status.text
        body = status.json()
        assert (body["role"], body["serving"]) == ("primary", True), body
        r = httpx.put(f"{server.url}/db/x.json", json=1, headers=admin, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        server.stop()


def _wait_recorded(url: str, admin: dict[str, str]) -> None:
    """Until the election's record names the platform at ``url`` primary."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/db/.replication/status", headers=admin, timeout=30).json()
        if body.get("election", {}).get("elected_primary") == f"{url}/db":
            return
        time.sleep(0.1)
    raise AssertionError(f"the election recorded no primary within 30 s: {body}")
