"""Break test (break44): a platform restarted on a home whose `election.dump` (the snapshot a
compaction of its election's Raft log wrote) is truncated, or is another cluster's.

Found broken: pysyncobj logged the dump it could not load and started without it; past a
compaction the journal no longer held the record, so the platform came back with term 0 and
no members, as the Raft leader of itself. Now `platform up` stops with one clear line naming
the file, and the cluster's election is not disturbed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from platform_cluster import (
    COMPACT,
    FAST,
    HELD_BREAK_TEST,
    Cluster,
    elkyn_status,
    join,
    start_cluster,
    wait_for,
    write_ok,
)
from servers import command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _up(home: Path, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`platform up --home HOME ARGS` as an operator runs it, expected to end by itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env.update({**FAST, **COMPACT, "LAKE_FLIGHT_PORT": "0"})
    argv = [str(command("platform")), "up", "--home", str(home), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=run_dir, timeout=120)


def test_a_truncated_or_foreign_election_dump_is_a_clear_error(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 2, env=COMPACT)
    try:
        first, second = cluster.urls
        wait_for(lambda: write_ok(second, "a", 1, cluster), "a write")
        dump = cluster.homes[1] / "elkyn" / "election.dump"
        wait_for(lambda: dump.exists() and time.sleep(2) is None, "a compaction's dump")
        term = elkyn_status(first, cluster)["term"]
        cluster.nodes[1].proc.send_signal(signal.SIGKILL)
        cluster.nodes[1].proc.wait()
        whole = dump.read_bytes()
        foreign = tmp_path / "foreign"
        for damaged in (whole[: len(whole) // 2], None):
            if damaged is None:  # a dump of another cluster: a lone platform's, compacted
                shutil.copy(_lone_dump(foreign, cluster), dump)
            else:
                dump.write_bytes(damaged)
            done = _up(cluster.homes[1], tmp_path / "p1", "--port", "0", "--join", first[7:])
            last = done.stderr.strip().splitlines()[-1]
            print(last)
            assert done.returncode == 1, done.stderr[-2000:]
            assert last.startswith("error: cannot start: "), last
            assert str(dump) in last, last
        st = elkyn_status(first, cluster)
        assert st["term"] == term  # the cluster's election was not disturbed
        assert len(st["election"]["members"]) == 2
    finally:
        cluster.stop()


def _lone_dump(base: Path, cluster: Cluster) -> Path:
    """The ``election.dump`` of a platform of a cluster of its own, past a compaction."""
    other = start_cluster(base, 1, env=COMPACT)
    try:
        wait_for(lambda: write_ok(other.urls[0], "x", 1, other), "a write on the other cluster")
        dump = other.homes[0] / "elkyn" / "election.dump"
        wait_for(lambda: dump.exists() and time.sleep(1.5) is None, "its dump")
        return dump
    finally:
        other.stop()


@HELD_BREAK_TEST
def test_the_advised_recovery_from_a_truncated_dump_rejoins(tmp_path: Path) -> None:
    """The error's advice: move the election's journal and dump away, start with --join."""
    cluster = start_cluster(tmp_path, 3, env=COMPACT)
    try:
        first = cluster.urls[0]
        wait_for(lambda: write_ok(first, "a", 1, cluster), "a write")
        elkyn = cluster.homes[2] / "elkyn"
        wait_for(lambda: (elkyn / "election.dump").exists(), "a compaction's dump")
        time.sleep(2)
        term = elkyn_status(first, cluster)["term"]
        cluster.nodes[2].proc.send_signal(signal.SIGKILL)
        cluster.nodes[2].proc.wait()
        dump = elkyn / "election.dump"
        dump.write_bytes(dump.read_bytes()[:10])
        aside = tmp_path / "aside"
        aside.mkdir()
        for name in ("election.dump", "election.journal", "election.journal.meta"):
            (elkyn / name).rename(aside / name)
        cluster.nodes[2] = join(tmp_path, "p2", first, env=COMPACT)
        again = cluster.urls[2]
        wait_for(lambda: write_ok(again, "b", 1, cluster), "a write through the rejoined platform")
        for u in cluster.urls:
            st = wait_for(lambda u=u: elkyn_status(u, cluster), u)
            assert st["term"] == term
            wait_for(lambda u=u: len(elkyn_status(u, cluster)["election"]["members"]) == 3, u)
    finally:
        cluster.stop()
