"""Storage: legal paths at Firebase's limits, bad input, map growth, group commit, memory mode."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from elkyn import InvalidDataError, Store

KEY_768 = "é" * 384  # 768 UTF-8 bytes


def test_deepest_longest_path_round_trips(tmp_path: Path) -> None:
    keys = [f"{i:02d}" + "x" * 766 for i in range(32)]
    path = "/" + "/".join(keys)
    with Store(tmp_path / "db") as db:
        db.set(path, "deep")
        assert db.get(path) == "deep"
        node: object = db.get("/" + keys[0])
        for key in keys[1:]:
            assert isinstance(node, dict)
            node = node[key]
        assert node == "deep"
        db.set("/long/" + KEY_768, {KEY_768: 1})
        assert db.get("/long") == {KEY_768: {KEY_768: 1}}
    with Store(tmp_path / "db") as db:  # and it survives a reopen
        assert db.get(path) == "deep"


def test_long_keys_sharing_a_prefix_stay_apart(memory_store: Store) -> None:
    a, b = "p" * 700 + "a", "p" * 700 + "b"
    memory_store.set("/x", {a: 1, b: 2})
    assert memory_store.get("/x") == {a: 1, b: 2}
    memory_store.delete("/x/" + a)
    assert memory_store.get("/x") == {b: 2}


@pytest.mark.parametrize("key", ["a.b", "a$", "a#", "a[", "a]", "a\x01", "a\x7f", "é" * 385])
def test_invalid_keys_are_refused_and_nothing_written(memory_store: Store, key: str) -> None:
    with pytest.raises(InvalidDataError, match="Invalid key"):
        memory_store.set("/ok", {"fine": 1, key: 2})
    with pytest.raises(InvalidDataError, match="Invalid key"):
        memory_store.set("/" + key, 1)
    assert memory_store.get("/") is None


def test_depth_over_32_is_refused(memory_store: Store) -> None:
    with pytest.raises(InvalidDataError, match="32"):
        memory_store.set("/" + "/".join(["a"] * 33), 1)
    nested: object = 1
    for _ in range(32):
        nested = {"a": nested}
    with pytest.raises(InvalidDataError, match="deeper than 32"):
        memory_store.set("/a", nested)
    assert memory_store.get("/") is None


def test_bad_numbers_and_server_values_write_nothing(memory_store: Store) -> None:
    with pytest.raises(InvalidDataError, match="not a JSON number"):
        memory_store.set("/a", {"b": float("nan")})
    with pytest.raises(InvalidDataError, match="unknown server value"):
        memory_store.set("/a", {"b": {".sv": "now"}})
    assert memory_store.get("/") is None


def test_overlapping_update_paths_are_refused(memory_store: Store) -> None:
    with pytest.raises(InvalidDataError, match="child of"):
        memory_store.update("/", {"a": 1, "a/b": 2})
    assert memory_store.get("/") is None


def test_server_values(memory_store: Store) -> None:
    memory_store.set("/n", 5)
    memory_store.update("/", {"n": {".sv": {"increment": 2}}, "t": {".sv": "timestamp"}})
    got = memory_store.get("/")
    assert got["n"] == 7
    assert isinstance(got["t"], int)
    assert got["t"] > 1_700_000_000_000


def test_map_grows_as_needed(tmp_path: Path) -> None:
    with Store(tmp_path / "db", map_size=256 << 10) as db:
        blob = "x" * 4000
        for i in range(300):  # ~1.2 MB of values into a 256 KiB map
            db.set(f"/blobs/{i}", blob)
        assert db.writer.stats.grows >= 1
        assert db.env.map_size() > 256 << 10
        assert len(db.get("/blobs")) == 300


def test_group_commit_shares_commits_and_loses_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as db:

        def work(t: int) -> None:
            for i in range(100):
                db.set(f"/w/{t}/{i}", i)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        stats = db.writer.stats
        assert stats.writes == 800
        assert stats.commits < 800  # concurrent writers shared commits
        assert db.get("/w") == [list(range(100)) for t in range(8)]
        assert db.last_seq() == 800


def test_a_failing_write_in_a_batch_does_not_spoil_the_others(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as db:
        futures = [db._submit_set(("ok", str(i)), i, db.caller(None)) for i in range(50)]
        bad = db._submit_set(("bad",), {"x": float("inf")}, db.caller(None))
        more = [db._submit_set(("ok2", str(i)), i, db.caller(None)) for i in range(50)]
        for f in futures + more:
            f.result()
        with pytest.raises(InvalidDataError):
            bad.result()
        assert len(db.get("/ok")) == 50
        assert len(db.get("/ok2")) == 50
        assert db.get("/bad") is None


def test_memory_mode_leaves_nothing_behind() -> None:
    db = Store(memory=True)
    db.set("/a", 1)
    where = db.env.path
    assert where.exists()
    db.close()
    assert not where.exists()


def test_operation_log_records_every_change(memory_store: Store) -> None:
    memory_store.set("/a", {"b": 1})
    memory_store.update("/a", {"c": 2})
    memory_store.delete("/a/b")
    first, entries = memory_store.log_since(0)
    assert first == 1
    assert [(e.seq, e.kind, e.path, e.data) for e in entries] == [
        (1, "put", ("a",), {"b": 1}),
        (2, "patch", ("a",), {"c": 2}),
        (3, "put", ("a", "b"), None),
    ]


def test_log_is_trimmed(tmp_path: Path) -> None:
    with Store(tmp_path / "db", log_size=10) as db:
        for i in range(30):
            db.set("/a", i)
        first, entries = db.log_since(0)
        assert first == 21
        assert [e.seq for e in entries] == list(range(21, 31))


def test_env_dir_contains_lmdb_files(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as db:
        db.set("/a", 1)
    assert {"data.mdb", "lock.mdb"} <= set(os.listdir(tmp_path / "db"))


def test_the_root_holds_only_an_object(memory_store: Store) -> None:
    with pytest.raises(InvalidDataError, match="root"):
        memory_store.set("/", 5)
    with pytest.raises(InvalidDataError, match="root"):
        memory_store.transaction("/", lambda v: "x")
    memory_store.set("/", [1, 2])  # an array is an object with integer keys
    assert memory_store.get("/") == [1, 2]


def test_a_bounded_read_gives_up_past_its_limit_and_not_before(tmp_path: Path) -> None:
    """``Tree.read(path, limit=N)`` counts every record of the subtree, nested ones too."""
    from elkyn.paths import parse_path
    from elkyn.storage import ReadTooLarge, Tree

    with Store(str(tmp_path / "db")) as db:
        db.set("/t", {"a": 1, "b": {"c": 2, "d": 3}})  # 4 records: a, b, c, d
        with db.env.read() as txn:
            tree = Tree(db.env, txn)
            assert tree.read(parse_path("/t"), 4) == tree.read(parse_path("/t"))
            with pytest.raises(ReadTooLarge):
                tree.read(parse_path("/t"), 3)
            assert tree.read(parse_path("/t/a"), 0) == 1  # a leaf is no member read
