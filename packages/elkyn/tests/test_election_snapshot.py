"""The election record survives a Raft log compaction: pysyncobj snapshots it into
``election.dump`` and drops the journal's entries, so a restart (or a follower sent the
snapshot) must find term, primary, databases and members in the snapshot itself. Before, the
record's fields were set before pysyncobj's ``__init__``, which left them out of every
snapshot: a cluster restarted after its first compaction (5 minutes) had no members and term 0.
"""

from __future__ import annotations

import time
from pathlib import Path

from pysyncobj import SyncObjConf

from elkyn.election import Primaryship
from platform_core.testing import free_port


def _node(addr: str, where: Path) -> Primaryship:
    conf = SyncObjConf(
        useFork=False,
        journalFile=str(where / "election.journal"),
        fullDumpFile=str(where / "election.dump"),
        dynamicMembershipChange=True,
    )
    return Primaryship(addr, [], conf)


def _leader(node: Primaryship) -> None:
    deadline = time.monotonic() + 20
    while not node._isLeader():
        assert time.monotonic() < deadline, "a node alone never became its leader"
        time.sleep(0.05)


def test_the_record_is_whole_after_a_compaction_and_a_restart(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    node = _node(addr, tmp_path)
    try:
        _leader(node)
        assert node.admit(addr, "http://a/db", sync=True, timeout=10) is True
        assert node.admit("127.0.0.1:2", "http://b/db", sync=True, timeout=10) is True
        assert node.dismiss("127.0.0.1:2", sync=True, timeout=10) is True
        assert node.designate(1, "http://a/db", "db-a", sync=True, timeout=10) is True
        assert node.designate(2, "http://a/db", "db-a2", sync=True, timeout=10) is True
        node.forceLogCompaction()
        deadline = time.monotonic() + 20
        while not (tmp_path / "election.dump").exists():
            assert time.monotonic() < deadline, "no snapshot was written"
            time.sleep(0.05)
        time.sleep(0.5)  # the journal's entries up to it are dropped
    finally:
        node.destroy()
    again = _node(addr, tmp_path)
    try:
        deadline = time.monotonic() + 20
        while again.term != 2:
            assert time.monotonic() < deadline, f"the record came back as term {again.term}"
            time.sleep(0.05)
        assert again.primary == "http://a/db"
        assert dict(again.databases) == {"db-a": 1, "db-a2": 2}
        assert dict(again.members) == {addr: "http://a/db"}
        _leader(again)
        assert again.designate(2, "http://x/db", "db-x", sync=True, timeout=10) is False  # CAS
    finally:
        again.destroy()
