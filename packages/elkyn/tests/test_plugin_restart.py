"""The gateway plugin restarted on its home as a member of an election (of one): it provides
the database only once the election has named its role, so the plugins that start after it
(elytra's reconcile of killed jobs, the accounts' login counters) see the primary they are.

CI found the race: the plugins started while the election was still under way, took the
platform for a replica, and skipped their start-up work (a killed job stayed "running", a
login after a restart got 503). Each start runs in a process of its own, as a restart does
(the Raft node keeps its port until its process ends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SECRET = "s" * 40

START = """
import asyncio, json, sys
from elkyn.plugin import plugin
from elkyn.services import DB_STORE
from platform_core import PlatformSettings, load_settings
from platform_core.services import ServiceRegistry

p = plugin()
settings = load_settings(PlatformSettings)
services = ServiceRegistry().view(p)
app = p.app(settings, services)

async def run():
    async with p.lifespan(settings, services) as provided:
        serving = app.fence is not None and app.fence.serving()
        replica_of = provided[DB_STORE].replica_of
        await asyncio.sleep(float(sys.argv[1]))  # the election records its members meanwhile
        return serving, replica_of

print(json.dumps(asyncio.run(run())))
"""


def _start(home: Path, stay: float) -> tuple[bool, str | None]:
    """Start the plugin on ``home`` in a process, stay ``stay`` seconds, stop: whether its
    fence served as the primary, and the store's ``replica_of``, when it provided the store."""
    env = {**os.environ, "PLATFORM_HOME": str(home), "PLATFORM_SECRET": SECRET}
    out = subprocess.run(
        [sys.executable, "-c", START, str(stay)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    serving, replica_of = json.loads(out.stdout.strip().splitlines()[-1])
    return serving, replica_of


def test_a_restart_as_an_election_member_provides_the_database_as_its_primary(
    tmp_path: Path,
) -> None:
    assert _start(tmp_path, 1.5) == (True, None)  # fresh and alone: the primary at once
    db = next(tmp_path.rglob("election.journal")).parent
    # killed before the election wrote its members (as a kill -9 right after the start
    # does): the restart keeps the journal and runs an election of one
    (db / "election.members").unlink(missing_ok=True)  # may not be written yet
    assert _start(tmp_path, 0) == (True, None)
