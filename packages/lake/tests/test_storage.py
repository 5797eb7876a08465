"""Chunk store, manifests and catalog: content addressing, verification, snapshots, GC."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake import Catalog, ChunkRef, ChunkStore, CorruptChunkError, Manifest, merge
from lake.errors import DatasetNotFoundError, InvalidNameError
from platform_core import ConflictError, Schema, sha256_file

SCHEMA = Schema.from_arrow(pa.schema([("x", pa.int64())]))


def parquet_bytes(values: list[int]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": pa.array(values, pa.int64())}), sink)
    return sink.getvalue().to_pybytes()


def test_chunks_are_content_addressed_deduplicated_and_verified(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "chunks")
    data = parquet_bytes([1, 2, 3])
    sha, size = store.put_bytes(data)
    assert store.path(sha).read_bytes() == data
    assert sha256_file(store.path(sha)) == sha
    assert size == len(data)
    again, _ = store.put_bytes(data)
    assert again == sha
    assert store.all() == [sha]  # stored once
    assert not list((tmp_path / "chunks").glob(".tmp-*"))
    # Corrupt the file in place: the next read notices (its stat changed) and refuses it.
    raw = bytearray(data)
    raw[len(raw) // 2] ^= 0xFF
    time.sleep(0.01)
    store.path(sha).write_bytes(bytes(raw))
    with pytest.raises(CorruptChunkError, match=sha):
        store.verify(sha)
    with pytest.raises(CorruptChunkError):
        store.read_bytes(sha)


def test_a_wrong_expected_hash_stores_nothing(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path)
    with pytest.raises(CorruptChunkError):
        store.put_bytes(b"abc", sha="0" * 64)
    assert store.all() == []
    assert list(tmp_path.iterdir()) == []


def test_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "chunks")
    catalog = Catalog(tmp_path / "m", store)
    for bad in ["../etc", "a/b", "", "x" * 64, "1abc", "a.b", "é"]:
        with pytest.raises(InvalidNameError):
            catalog.head(bad)
    with pytest.raises(InvalidNameError):
        store.path("../../etc/passwd")


def test_commits_append_snapshots_tombstones_and_gc(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "chunks")
    catalog = Catalog(tmp_path / "manifests", store, "n1")
    sha1, b1 = store.put_bytes(parquet_bytes([1]))
    sha2, b2 = store.put_bytes(parquet_bytes([2, 3]))
    v1 = catalog.commit("t", SCHEMA, [ChunkRef(sha1, 1, b1)])
    v2 = catalog.commit("t", SCHEMA, [ChunkRef(sha2, 2, b2)], append=True)
    assert (v1.version, v2.version) == (1, 2)
    assert [c.sha256 for c in v2.chunks] == [sha1, sha2]
    assert v2.rows == 3
    # The old version stays readable (a running query keeps its snapshot).
    assert catalog.get("t", 1).chunks == v1.chunks
    with pytest.raises(ConflictError, match="version 2"):
        catalog.commit("t", SCHEMA, [], expected_version=1)
    other = Schema.from_arrow(pa.schema([("y", pa.utf8())]))
    with pytest.raises(ConflictError, match="schema"):
        catalog.commit("t", other, [], append=True)
    # Replace with only chunk 2: chunk 1 is still referenced by v1 and v2 until GC drops them.
    v3 = catalog.commit("t", SCHEMA, [ChunkRef(sha2, 2, b2)])
    assert catalog.gc(retention_seconds=3600) == {"versions": 0, "chunks": 0}
    assert catalog.gc(retention_seconds=0) == {"versions": 2, "chunks": 1}
    assert catalog.versions("t") == [3]
    assert store.all() == [sha2]
    assert catalog.get("t") == v3
    # Delete: a tombstone version; readers get 404, the chunks go after retention.
    tomb = catalog.delete("t")
    assert tomb.deleted
    assert tomb.version == 4
    assert catalog.names() == []
    with pytest.raises(DatasetNotFoundError):
        catalog.get("t")
    catalog.gc(retention_seconds=0)
    assert store.all() == []
    assert catalog.head("t") == tomb  # the tombstone stays so peers honour it


def test_pending_chunks_survive_gc(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "chunks")
    catalog = Catalog(tmp_path / "manifests", store)
    with catalog.pending() as held:
        sha, _ = store.put_bytes(parquet_bytes([5]), hold=held.add)
        catalog.gc(retention_seconds=0)
        assert store.has(sha)
    catalog.gc(retention_seconds=0)
    assert not store.has(sha)


def test_head_pointer_is_atomic_and_manifests_immutable(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "chunks")
    catalog = Catalog(tmp_path / "manifests", store)
    sha, size = store.put_bytes(parquet_bytes([1]))
    catalog.commit("t", SCHEMA, [ChunkRef(sha, 1, size)])
    first = (tmp_path / "manifests" / "t" / "v0000000001.json").read_bytes()
    catalog.commit("t", SCHEMA, [])
    assert (tmp_path / "manifests" / "t" / "v0000000001.json").read_bytes() == first
    assert (tmp_path / "manifests" / "t" / "HEAD").read_text() == "2"
    leftovers = [p.name for p in (tmp_path / "manifests" / "t").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    with pytest.raises(ConflictError, match="not stored"):
        catalog.commit("t", SCHEMA, [ChunkRef("f" * 64, 1, 1)])


# --- manifest merge (what gossip relies on) ----------------------------------------------

manifests = st.builds(
    lambda name, version, deleted, origin, rows: Manifest(
        name=name,
        version=version,
        schema=None if deleted else SCHEMA,
        chunks=() if deleted else (ChunkRef("a" * 64, rows, rows * 8),),
        deleted=deleted,
        origin=origin,
    ),
    st.sampled_from(["a", "b", "c"]),
    st.integers(1, 5),
    st.booleans(),
    st.sampled_from(["n1", "n2"]),
    st.integers(0, 3),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(manifests), st.lists(manifests), st.lists(manifests))
def test_merge_is_commutative_associative_idempotent(a, b, c) -> None:  # type: ignore[no-untyped-def]
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b).values(), c) == merge(a, merge(b, c).values())
    assert merge(a, a) == merge(a)
    for name, m in merge(a, b, c).items():
        assert m.version == max(x.version for x in [*a, *b, *c] if x.name == name)


@settings(max_examples=100, deadline=None)
@given(manifests)
def test_manifest_json_round_trip(m: Manifest) -> None:
    assert Manifest.from_json(m.to_json()) == m


# --- placement ---------------------------------------------------------------------------

node_sets = st.lists(
    st.text("abcdef0123", min_size=1, max_size=6), min_size=1, max_size=8, unique=True
)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20), node_sets, st.integers(1, 4))
def test_rendezvous_placement(key: str, nodes: list[str], k: int) -> None:
    from lake.cluster.placement import rank, replicas

    chosen = replicas(key, nodes, k)
    assert len(chosen) == min(k, len(nodes))
    assert len(set(chosen)) == len(chosen)
    assert chosen == replicas(
        key, list(reversed(nodes)), k
    )  # order of the member list is irrelevant
    assert chosen == rank(key, nodes)[: len(chosen)]
    # Removing a node that does not hold the key changes nothing; removing a holder moves
    # only its share, to the next-ranked node.
    for gone in nodes:
        rest = [n for n in nodes if n != gone]
        after = replicas(key, rest, k)
        if gone not in chosen:
            assert after == chosen
        else:
            assert [n for n in chosen if n != gone] == after[: len(chosen) - 1]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(["alive", "suspect", "dead"]), min_size=1),
    st.lists(st.integers(0, 5), min_size=1),
)
def test_membership_merge_prefers_incarnation_then_worse_state(
    states: list[str], incs: list[int]
) -> None:
    from lake.cluster.membership import Member, Membership

    views = [Member("b", "h:1", "h:2", i, s) for s, i in zip(states, incs, strict=False)]
    order_a = Membership(Member("a", "h:0", "h:0", 0))
    order_b = Membership(Member("a", "h:0", "h:0", 0))
    order_a.merge(views)
    order_b.merge(list(reversed(views)))
    assert order_a.get("b") == order_b.get("b")
    best = max(views, key=lambda m: (m.incarnation, ["alive", "suspect", "dead"].index(m.state)))
    assert order_a.get("b") == best
    # Hearing of its own suspicion, a member refutes with a higher incarnation.
    me = Membership(Member("a", "h:0", "h:0", 3))
    me.merge([Member("a", "h:0", "h:0", 3, "suspect")])
    assert me.me.incarnation == 4
    assert me.me.state == "alive"
    assert me.refutations == 1
