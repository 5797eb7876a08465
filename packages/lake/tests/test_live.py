"""The lake's live mirror over an in-process node: the first round replaces the subtrees,
catalog changes are published within a second as diffs only, a quiet node writes nothing, and
every published key is a valid store key (node ids escaped)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lake.api.live import LIVE_RULES, LiveMirror
from lake.node import LakeNode
from lake.settings import lake_settings
from platform_core import unescape_key

from .conftest import SECRET

_KEY = re.compile(r"[^.#$/\[\]\x00-\x1f\x7f]+")


class RecordingSink:
    """Applies writes to a dict tree the way the store does, checking every key."""

    def __init__(self) -> None:
        self.reserved: dict[str, Mapping[str, Any]] = {}
        self.writes: list[dict[str, Any]] = []
        self.tree: dict[str, Any] = {}
        self.changed = threading.Condition()

    def reserve(self, key: str, rules: Mapping[str, Any]) -> None:
        self.reserved[key] = rules

    def publish(self, path: str, value: Any) -> None:
        self.publish_many({path: value})

    def publish_many(self, values: Mapping[str, Any]) -> None:
        with self.changed:
            self.writes.append(dict(values))
            for path, value in values.items():
                keys = [k for k in path.split("/") if k]
                assert keys[0] in self.reserved, path
                for k in keys:
                    assert _KEY.fullmatch(k), f"{k!r} is not a store key"
                where = self.tree
                for k in keys[:-1]:
                    where = where.setdefault(k, {})
                if value is None:
                    where.pop(keys[-1], None)
                else:
                    where[keys[-1]] = value
            self.changed.notify_all()

    def wait(self, check: Any, timeout: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not check(self.tree):
                left = deadline - time.monotonic()
                assert left > 0, f"not within {timeout} s: {self.tree}"
                self.changed.wait(left)


@pytest.fixture
def odd_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PLATFORM_SECRET", SECRET)
    n = LakeNode(lake_settings(None, home=tmp_path / "home", node_id="host.example:7#1"))
    yield n
    n.stop()


def test_the_mirror_publishes_catalog_changes_as_diffs_with_escaped_node_ids(
    odd_node: LakeNode, sales_csv: Path
) -> None:
    sink = RecordingSink()
    sink.tree = {"datasets": {"stale": {"name": "stale"}}}  # what a previous run left
    mirror = LiveMirror(odd_node, sink, holdings_interval=0.2)
    mirror.start()
    try:
        assert set(sink.reserved) == {"datasets", "nodes", "cluster"}
        assert all(r == LIVE_RULES for r in sink.reserved.values())
        assert "stale" not in sink.tree.get("datasets", {})
        [key] = sink.tree["nodes"]
        assert key == "host%2Eexample:7%231"
        assert unescape_key(key) == odd_node.node_id
        assert sink.tree["nodes"][key]["state"] == "alive"

        t0 = time.monotonic()
        odd_node.ingest(sales_csv, "sales")
        sink.wait(lambda t: "sales" in t.get("datasets", {}))
        assert time.monotonic() - t0 < 1 + 5  # the ingest itself, then within a second
        sink.wait(lambda t: t["datasets"]["sales"]["replicas"] == 1, 2)
        sales = sink.tree["datasets"]["sales"]
        head = odd_node.catalog.get("sales")
        assert (sales["version"], sales["rows"], sales["chunks"]) == (
            1,
            head.rows,
            len(head.chunks),
        )
        assert sales["under_replicated"] == 0
        sink.wait(lambda t: t["nodes"][key]["chunks"] == len(head.chunks), 2)
        assert sink.tree["nodes"][key]["bytes"] == sum(c.bytes for c in head.chunks)
        assert sink.tree["cluster"] == {
            "replication_factor": 1,
            "chunks": len(head.chunks),
            "under_replicated": 0,
        }

        # Diffs only: a new version rewrites that dataset, nothing else.
        before = len(sink.writes)
        odd_node.ingest(sales_csv, "sales")
        sink.wait(lambda t: t["datasets"]["sales"]["version"] == 2)
        assert all(
            set(w) <= {"/datasets/sales", "/cluster", f"/nodes/{key}"} for w in sink.writes[before:]
        )

        # A quiet node writes nothing, round after round of holdings.
        time.sleep(0.6)
        quiet = len(sink.writes)
        time.sleep(0.6)
        assert len(sink.writes) == quiet

        odd_node.catalog.delete("sales")
        sink.wait(lambda t: "sales" not in t.get("datasets", {}))
    finally:
        mirror.stop()
    assert mirror._on_manifest not in odd_node.catalog.listeners
