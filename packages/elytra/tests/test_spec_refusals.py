"""What the JSON form of a pipeline (what a user sends over /api/jobs) refuses, and how it
names it: counts out of range, unions and nesting past the bounds, booleans given as numbers,
and a bad pipeline nested in a union named where it is, not as the outer pipeline.

(Break-tests of round 4 and of issue 4's review, merged.)"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import PipelineError
from elytra.spec import MAX_SOURCES, MAX_STEPS, build


@pytest.fixture
def data(tmp_path: Path) -> str:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3]}), path)
    return str(path)


def test_a_bad_union_input_is_named_by_its_step(session: elytra.Session, data: str) -> None:
    bad_union = {"union": [{"source": {"dataset": 7}}]}
    nested = {
        "source": {"parquet": data},
        "steps": [{"join": {"source": {"parquet": data}, "steps": [bad_union]}, "on": "id"}],
    }
    with pytest.raises(PipelineError) as info:
        build(nested, session, files=True)
    assert "union" in info.value.message, info.value.message
    top = {"source": {"parquet": data}, "steps": [bad_union]}
    with pytest.raises(PipelineError) as info:
        build(top, session, files=True)
    assert "union" in info.value.message, info.value.message


def test_booleans_are_not_numbers_in_a_submit() -> None:
    from pydantic import ValidationError

    from elytra.jobs_routes import SubmitRequest

    ok = {"source": {"dataset": "nums"}}
    with pytest.raises(ValidationError):
        SubmitRequest.model_validate({"pipeline": ok, "timeout": True})
    with pytest.raises(ValidationError):
        SubmitRequest.model_validate({"pipeline": {"source": {"dataset": "nums", "version": True}}})


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
    session: elytra.Session, data: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every source would be looked up and planned: 5000 of them took 17 s in the request.
    # Counted, not timed (CI under load took past a 1 s bound): no dataset is looked up.
    looked: list[str] = []

    def lookup(name: str, version: int | None = None) -> elytra.Pipeline:
        looked.append(name)
        raise AssertionError("a source was looked up before the size was checked")

    monkeypatch.setattr(session, "dataset", lookup)
    many = [{"source": {"dataset": "nope"}}] * 5000
    with pytest.raises(PipelineError, match="sources"):
        build({"source": {"parquet": data}, "steps": [{"union": many}]}, session, files=True)
    assert looked == []
    monkeypatch.undo()
    fits = [{"source": {"parquet": data}}] * (MAX_SOURCES - 1)
    spec = {"source": {"parquet": data}, "steps": [{"union": fits}]}
    assert build(spec, session, files=True).count() == 3 * MAX_SOURCES


def test_steps_are_counted_across_nested_pipelines(session: elytra.Session, data: str) -> None:
    inner = {"source": {"parquet": data}, "steps": [{"filter": "id > 0"}] * 60}
    spec = {"source": {"parquet": data}, "steps": [{"union": [inner, inner]}]}
    assert MAX_STEPS < 120
    with pytest.raises(PipelineError, match="steps"):
        build(spec, session, files=True)
