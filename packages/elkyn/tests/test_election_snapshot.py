"""The election record survives a Raft log compaction: pysyncobj snapshots it into
``election.dump`` and drops the journal's entries, so a restart (or a follower sent the
snapshot) must find term, primary, databases and members in the snapshot itself. Before, the
record's fields were set before pysyncobj's ``__init__``, which left them out of every
snapshot: a cluster restarted after its first compaction (5 minutes) had no members and term 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pysyncobj import SyncObjConf

from elkyn import platform_election
from elkyn.election import Primaryship
from elkyn.membership import ElectionDumpError
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


def _compacted_home(where: Path) -> str:
    """A home whose election (of one member) compacted its log into ``election.dump``."""
    addr = f"127.0.0.1:{free_port()}"
    node = _node(addr, where)
    try:
        _leader(node)
        assert node.admit(addr, "http://a/db", sync=True, timeout=10) is True
        assert node.designate(1, "http://a/db", "db-a", sync=True, timeout=10) is True
        node.forceLogCompaction()
        deadline = time.monotonic() + 20
        while not (where / "election.dump").exists():
            assert time.monotonic() < deadline, "no snapshot was written"
            time.sleep(0.05)
        time.sleep(0.5)  # the journal's entries up to it are dropped
    finally:
        node.destroy()
    return addr


def test_a_truncated_dump_is_a_clear_error_not_an_empty_record(tmp_path: Path) -> None:
    """pysyncobj logs a dump it cannot load and starts without it: the platform came back
    with term 0, no members, and as the Raft leader of itself (found by break44)."""
    addr = _compacted_home(tmp_path)
    dump = tmp_path / "election.dump"
    platform_election._check_dump(tmp_path, {addr: "http://a/db"})  # its own: fine
    whole = dump.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"", b"not a gzip at all"):
        dump.write_bytes(damaged)
        with pytest.raises(ElectionDumpError, match=r"election\.dump"):
            platform_election._check_dump(tmp_path, {addr: "http://a/db"})
    dump.write_bytes(whole[: len(whole) // 2])
    again = _node(addr, tmp_path)  # what the platform started on before: silently empty
    try:
        time.sleep(1)
        assert again.term == 0
        assert dict(again.members) == {}
    finally:
        again.destroy()


def test_a_dump_of_another_cluster_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    _compacted_home(tmp_path / "other")
    with pytest.raises(ElectionDumpError, match="another cluster"):
        platform_election._check_dump(tmp_path / "other", {"127.0.0.1:1": "http://b/db"})
