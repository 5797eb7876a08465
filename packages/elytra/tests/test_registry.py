"""The gateway's job registry: a per-user running limit (held under concurrent submits, a
failed submit giving its slot back); a job of an earlier run read back from its record
(results live on disk, not here: see test_result_store)."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pytest

from elytra import PipelineError
from elytra.errors import TooManyJobsError
from elytra.jobs import Job
from elytra.jobs_routes import JobRegistry
from platform_core import ForbiddenError, NotFoundError
from platform_core.auth import Claims


def _claims(sub: str, admin: bool = False) -> Claims:
    return Claims(sub=sub, admin=admin, exp=0)


def test_running_jobs_are_limited_per_user() -> None:
    reg = JobRegistry(per_user=2)
    a, b = Job("a", owner="alice"), Job("b", owner="alice")
    reg.add(a)
    reg.add(b)
    with pytest.raises(TooManyJobsError) as too_many:
        reg.admit("alice")
    assert too_many.value.status == 429
    reg.admit("bob")  # another user is not held back
    table = pa.table({"x": list(range(100))})
    a.finish(table, None)
    b.finish(table, None)
    reg.add(Job("c", owner="alice"))
    assert [j.id for j in reg.list(_claims("alice"))] == ["c", "b", "a"]
    assert reg.list(_claims("bob")) == []
    assert len(reg.list(_claims("ops", admin=True))) == 3
    with pytest.raises(ForbiddenError):
        reg.get("a", _claims("bob"))


def test_a_job_of_an_earlier_run_is_read_from_its_record() -> None:
    done = "01JQ0000000000000000000000"
    running = "01JQ0000000000000000000001"
    records: dict[str, dict[str, Any]] = {
        done: {"id": done, "owner": "alice", "state": "succeeded", "plan": "scan"},
        running: {"id": running, "owner": "alice", "state": "running", "plan": "scan"},
    }
    reg = JobRegistry(records=records.get)
    job = reg.get(done, _claims("alice"))
    assert job.done()
    assert job.state == "succeeded"
    assert job.error is None
    assert reg.get(done, _claims("ops", admin=True)).owner == "alice"
    with pytest.raises(ForbiddenError):
        reg.get(done, _claims("bob"))
    with pytest.raises(NotFoundError):  # not final: not one of an earlier run's results
        reg.get(running, _claims("alice"))
    with pytest.raises(NotFoundError):  # never a lookup for what is not a job id
        reg.get("../x", _claims("alice"))


def test_a_failed_job_of_an_earlier_run_keeps_its_kind_of_error() -> None:
    over = "01JQ0000000000000000000002"
    record = {
        "id": over,
        "owner": "alice",
        "state": "failed",
        "error": {"type": "over_budget", "message": "the result passed the limit per job"},
    }
    job = JobRegistry(records={over: record}.get).get(over, _claims("alice"))
    assert job.error is not None
    assert getattr(job.error, "status", None) == 413
    assert "limit per job" in str(job.error)


def test_the_jobs_of_an_earlier_run_are_listed_again_before_new_ones() -> None:
    reg = JobRegistry(keep=2)
    new = Job("new", owner="alice")
    reg.add(new)
    old = [
        {"id": f"old{i}", "owner": "alice", "state": "succeeded", "created": float(i)}
        for i in range(3)
    ]
    reg.restore(old)  # the newest two of them
    assert [j.id for j in reg.list(_claims("alice"))] == ["new", "old2", "old1"]
    assert reg.get("old2", _claims("alice")).done()
    reg.admit("alice")  # finished: they hold none of alice's running slots


def test_concurrent_submits_cannot_pass_the_per_user_limit_together() -> None:
    reg = JobRegistry(per_user=4)
    barrier = threading.Barrier(8, timeout=10)
    outcomes: list[str] = []

    def submit(i: int) -> None:
        try:
            with reg.admitting("alice") as add:
                barrier.wait()  # everyone admitted is here at once, before any add
                add(Job(f"j{i}", owner="alice"))
            outcomes.append("202")
        except TooManyJobsError:
            outcomes.append("429")
            barrier.wait()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(outcomes) == ["202"] * 4 + ["429"] * 4
    assert len(reg.jobs) == 4
    with pytest.raises(TooManyJobsError):
        reg.admit("alice")


def test_a_failed_submit_gives_its_slot_back() -> None:
    reg = JobRegistry(per_user=1)
    with pytest.raises(PipelineError), reg.admitting("alice"):
        raise PipelineError("bad plan")
    with reg.admitting("alice") as add:
        add(Job("ok", owner="alice"))
    assert list(reg.jobs) == ["ok"]
