"""A platform restarted as a replica fails the jobs its killed run left unfinished, deciding by
their state at the primary: its own copy may lag (helper 32 found that a job whose
"succeeded" had not reached the replica when it was killed would be failed, its result
dropped), and it finds them by the results it holds as well as by its copy (CI found a job
whose record had not reached the copy when it was killed: its committed result stayed). Two
real stores stand for the primary and the replica's lagging copy."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

from elkyn import ADMIN, Store
from elkyn.services import DB_STORE, DB_WRITER
from elytra.plugin import _fail_own_jobs, _own_unfinished
from elytra.resultstore import ResultStore
from lake.services import LAKE_NODE
from platform_core import new_id


class _AtThePrimary:
    """The replica's writer: reads and writes go to ``primary`` (as its forwards do)."""

    role = "replica"

    def __init__(self, primary: Store) -> None:
        self.primary = primary

    def get(self, path: str) -> Any:
        return self.primary.get(path, caller=ADMIN)

    def update(self, path: str, values: dict[str, Any]) -> Any:
        return self.primary.update(path, values, caller=ADMIN)


def _committed(results: ResultStore, job_id: str) -> None:
    writer = results.writer(job_id, "alice")
    batch = pa.record_batch({"x": [1, 2, 3]})
    writer.write(batch)
    writer.commit(batch.schema)


def test_only_jobs_unfinished_at_the_primary_are_failed_and_succeeded_ones_keep_results(
    tmp_path: Path,
) -> None:
    at_primary = {
        "j-done": {"state": "succeeded", "driver": "n1"},  # its success did not reach the copy
        "j-run": {"state": "running", "driver": "n1"},
        "j-swept": {"state": "failed", "driver": "n1"},  # the primary's orphan sweep failed it
    }
    copy = {k: {**v, "state": "running"} for k, v in at_primary.items()}  # lagging
    results = ResultStore(tmp_path, max_bytes=1 << 20, quota_bytes=1 << 20, ttl_seconds=3600)
    for job_id in at_primary:
        _committed(results, job_id)
    with Store(memory=True) as primary, Store(memory=True) as replica:
        primary.set("/jobs", at_primary, caller=ADMIN)
        replica.set("/jobs", copy, caller=ADMIN)
        services = {
            DB_STORE: replica,
            DB_WRITER: _AtThePrimary(primary),
            LAKE_NODE: SimpleNamespace(node_id="n1"),
        }
        view = SimpleNamespace(get=services.__getitem__)  # the plugin's services, as it asks
        asyncio.run(_fail_own_jobs(view, set(copy), results))  # type: ignore[arg-type]
        states = {k: v["state"] for k, v in primary.get("/jobs", caller=ADMIN).items()}
    assert states == {"j-done": "succeeded", "j-run": "failed", "j-swept": "failed"}
    assert results.open("j-done").num_rows == 3  # kept
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["j-done"]


def test_a_result_whose_record_never_reached_the_copy_is_found_failed_and_dropped(
    tmp_path: Path,
) -> None:
    lost, done, other, bare = (new_id() for _ in range(4))
    at_primary = {
        lost: {"state": "running", "driver": "n1"},  # its record never reached the copy
        done: {"state": "succeeded", "driver": "n1"},
        other: {"state": "running", "driver": "n2"},  # another platform drives it
    }
    results = ResultStore(tmp_path, max_bytes=1 << 20, quota_bytes=1 << 20, ttl_seconds=3600)
    _committed(results, lost)
    _committed(results, done)
    (tmp_path / bare).mkdir()  # a directory a killed writer left, no record anywhere
    # no job's name (and no key the database takes): left alone, and it does not stop the
    # others' cleanup (helper 48 found it did, retried as if no primary answered)
    (tmp_path / "a.b").mkdir()
    with Store(memory=True) as primary, Store(memory=True) as replica:
        primary.set("/jobs", at_primary, caller=ADMIN)
        replica.set("/jobs", {done: at_primary[done]}, caller=ADMIN)
        replica.replica_of = "http://127.0.0.1:1"  # as a replica's store is
        services = {
            DB_STORE: replica,
            DB_WRITER: _AtThePrimary(primary),
            LAKE_NODE: SimpleNamespace(node_id="n1"),
        }
        view = SimpleNamespace(get=services.__getitem__)
        mine = asyncio.run(_own_unfinished(view, results))  # type: ignore[arg-type]
        assert mine == {lost, bare}
        asyncio.run(asyncio.wait_for(_fail_own_jobs(view, mine, results), 30))  # type: ignore[arg-type]
        states = {k: v["state"] for k, v in primary.get("/jobs", caller=ADMIN).items()}
    assert states == {lost: "failed", done: "succeeded", other: "running"}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        [done, "a.b"]
    )
