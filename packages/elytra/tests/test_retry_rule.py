"""The retry rule in one place (issue 33 item 7): ``backends.base.next_attempt`` decides, for
every backend, whether a failed attempt runs again or fails the job, and with what error.

The fault tests (``test_faults``, ``test_backends``, ``test_cluster_backend``) check the rule
through real workers; these pin each branch of it with real errors from emsqrt and Arrow.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from elytra import TaskFailedError
from elytra.backends.base import describe_error, next_attempt
from elytra.task import Task
from emsqrt import CapTooSmallError, PlanError


def _task(attempt: int = 1) -> Task:
    return Task(id="t1", stage=0, plan="{}", mem_cap=64 << 20, spill_dir="/tmp", attempt=attempt)


def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_lost_attempt_runs_again_until_the_last(attempt: int) -> None:
    again = next_attempt(_task(attempt), "the worker died", max_attempts=3)
    assert (again.id, again.attempt) == ("t1", attempt + 1)


def test_the_last_lost_attempt_fails_the_job_with_the_reason_and_traceback() -> None:
    with pytest.raises(TaskFailedError, match=r"task t1 failed on attempt 3: the lease") as info:
        next_attempt(_task(3), "the lease ran out", max_attempts=3, tb="Traceback: here")
    assert info.value.attempts == 3
    assert info.value.remote_traceback == "Traceback: here"


def test_an_unexpected_error_is_retried_then_fails_as_a_task_failure() -> None:
    err = _raised(OSError("disk hiccup"))
    assert next_attempt(_task(1), err, max_attempts=2).attempt == 2
    with pytest.raises(TaskFailedError, match="attempt 2: OSError: disk hiccup"):
        next_attempt(_task(2), err, max_attempts=2)


def test_the_tasks_own_error_fails_at_once_as_itself() -> None:
    cap = _raised(CapTooSmallError("raise the cap to at least 1 GiB"))
    with pytest.raises(CapTooSmallError) as info:
        next_attempt(_task(1), cap, max_attempts=3)
    assert info.value is cap
    with pytest.raises(TaskFailedError, match="attempt 1: ArrowInvalid"):
        next_attempt(_task(1), _raised(pa.ArrowInvalid("cast out of range")), max_attempts=3)


def test_a_workers_description_is_ruled_the_same_way() -> None:
    """What a remote worker sends (``describe_error``) gets the rule an exception here gets."""
    own = describe_error(_raised(PlanError("no column 'x'")))
    with pytest.raises(PlanError, match="no column 'x'") as info:
        next_attempt(_task(1), own, max_attempts=3, where="a Ray worker")
    assert "on a Ray worker" in "".join(getattr(info.value, "__notes__", []))
    passing = describe_error(_raised(OSError("flaky disk")))
    assert next_attempt(_task(1), passing, max_attempts=3).attempt == 2
    with pytest.raises(TaskFailedError, match="attempt 3: OSError: flaky disk") as failed:
        next_attempt(_task(3), passing, max_attempts=3)
    assert "flaky disk" in failed.value.remote_traceback
