"""Jobs whose driver's platform died: the primary's platform marks them failed (issue 29)."""

from __future__ import annotations

from pathlib import Path

from elkyn import Store
from elytra.jobs import StoreRecorder, fail_orphans


def test_only_the_unfinished_jobs_of_a_dead_driver_are_marked_failed(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    try:
        StoreRecorder(store, driver="n1").write("a", {"id": "a", "state": "running", "created": 1})
        StoreRecorder(store, driver="n2").write("b", {"id": "b", "state": "running", "created": 1})
        StoreRecorder(store, driver="n1").write(
            "c", {"id": "c", "state": "succeeded", "created": 1}
        )
        StoreRecorder(store, driver="n1").write("a", {"state": "running"})  # later writes
        assert store.get("/jobs/a/driver") == "n1"  # the first write names the driver
        assert fail_orphans(store, store, {"n1"}) == ["a"]
        a = store.get("/jobs/a")
        assert a["state"] == "failed"
        assert a["error"]["message"] == (
            "the platform running this job's driver (node n1) died; submit it again"
        )
        assert store.get("/jobs/b/state") == "running"  # its driver lives
        assert store.get("/jobs/c/state") == "succeeded"  # finished: left as it was
        assert fail_orphans(store, store, {"n1"}) == []  # once
    finally:
        store.close()
