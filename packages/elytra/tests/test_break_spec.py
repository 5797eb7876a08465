"""Break-tests of the JSON form and of the job registry: what a user sends over /api/jobs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import PipelineError
from elytra.errors import TooManyJobsError
from elytra.jobs import Job
from elytra.jobs_routes import JobRegistry
from elytra.spec import MAX_SOURCES, MAX_STEPS, build


@pytest.fixture
def data(tmp_path: Path) -> str:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3]}), path)
    return str(path)


@pytest.mark.parametrize(
    "step",
    [
        {"limit": 1, "offset": "x"},  # was a TypeError (500 over HTTP)
        {"limit": 1, "offset": 1.5},
        {"limit": 10**30},
        {"limit": 1, "offset": 1 << 63},
        {"top_k": 10**30, "by": ["id"]},  # was an OverflowError in every task attempt
    ],
)
def test_bad_counts_are_refused_when_built(
    session: elytra.Session, data: str, step: dict[str, object]
) -> None:
    with pytest.raises(PipelineError, match=">= 0"):
        build({"source": {"parquet": data}, "steps": [step]}, session, files=True)


def test_the_largest_counts_still_work(session: elytra.Session, data: str) -> None:
    big = (1 << 63) - 1
    p = session.read_parquet(data)
    assert p.limit(big).collect().num_rows == 3
    assert p.limit(big, big).collect().num_rows == 0
    assert p.top_k(big, "id").collect().num_rows == 3


def test_a_wide_union_is_bounded_before_any_source_is_looked_up(
    session: elytra.Session, data: str
) -> None:
    # Every source would be looked up and planned: 5000 of them took 17 s in the request.
    many = [{"source": {"dataset": "nope"}}] * 5000
    started = time.monotonic()
    with pytest.raises(PipelineError, match="sources"):
        build({"source": {"parquet": data}, "steps": [{"union": many}]}, session, files=True)
    assert time.monotonic() - started < 1
    fits = [{"source": {"parquet": data}}] * (MAX_SOURCES - 1)
    spec = {"source": {"parquet": data}, "steps": [{"union": fits}]}
    assert build(spec, session, files=True).count() == 3 * MAX_SOURCES


def test_steps_are_counted_across_nested_pipelines(session: elytra.Session, data: str) -> None:
    inner = {"source": {"parquet": data}, "steps": [{"filter": "id > 0"}] * 60}
    spec = {"source": {"parquet": data}, "steps": [{"union": [inner, inner]}]}
    assert MAX_STEPS < 120
    with pytest.raises(PipelineError, match="steps"):
        build(spec, session, files=True)


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
