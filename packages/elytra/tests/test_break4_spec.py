"""Break-tests (round 4) of the JSON form's error messages: a bad pipeline nested in a union
(itself in a join, or at the top) must be named where it is, not as the outer pipeline."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import PipelineError
from elytra.spec import build


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
