"""``lake.cluster.remembered``: the peers a node last saw alive, kept for its restart."""

from __future__ import annotations

from pathlib import Path

from lake.cluster.remembered import MAX_PEERS, RememberedPeers


def test_peers_are_kept_across_a_restart_and_an_isolated_node_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    RememberedPeers(path).save(["10.0.0.6:8080", "10.0.0.5:8080", "10.0.0.6:8080"])
    restarted = RememberedPeers(path)
    assert restarted.load() == ["10.0.0.5:8080", "10.0.0.6:8080"]
    restarted.save([])  # alone for now: the old addresses are how it finds its cluster again
    assert RememberedPeers(path).load() == ["10.0.0.5:8080", "10.0.0.6:8080"]
    assert [p.name for p in tmp_path.iterdir()] == ["peers.json"]  # no temp file left


def test_a_damaged_or_strange_file_is_ignored_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    for text in ("{not json", '{"a": 1}', "null"):
        path.write_text(text)
        assert RememberedPeers(path).load() == []
    path.write_text('["10.0.0.5:8080", 7, "", "' + "x" * 400 + '"]')
    assert RememberedPeers(path).load() == ["10.0.0.5:8080"]
    many = [f"10.0.{i // 250}.{i % 250}:8080" for i in range(MAX_PEERS * 2)]
    RememberedPeers(path).save(many)
    assert len(RememberedPeers(path).load()) == MAX_PEERS
    assert RememberedPeers(None).load() == []  # an in-memory node keeps nothing
