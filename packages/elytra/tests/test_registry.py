"""The gateway's job registry: a per-user running limit, results kept within a byte budget."""

from __future__ import annotations

import pyarrow as pa
import pytest

from elytra.api import JobRegistry
from elytra.errors import TooManyJobsError
from elytra.jobs import Job
from platform_core import ForbiddenError
from platform_core.auth import Claims


def _claims(sub: str, admin: bool = False) -> Claims:
    return Claims(sub=sub, admin=admin, exp=0)


def test_running_jobs_are_limited_per_user_and_old_results_are_dropped() -> None:
    reg = JobRegistry(per_user=2, result_bytes=1500)
    a, b = Job("a", owner="alice"), Job("b", owner="alice")
    reg.add(a)
    reg.add(b)
    with pytest.raises(TooManyJobsError) as too_many:
        reg.admit("alice")
    assert too_many.value.status == 429
    reg.admit("bob")  # another user is not held back
    table = pa.table({"x": list(range(100))})  # 800 bytes
    a.finish(table, None)
    b.finish(table, None)
    reg.add(Job("c", owner="alice"))  # trims: two results of 800 bytes exceed 1500
    assert a.table is None
    assert a.record["result"]["dropped"] is True
    assert b.table is not None
    assert [j.id for j in reg.list(_claims("alice"))] == ["c", "b", "a"]
    assert reg.list(_claims("bob")) == []
    assert len(reg.list(_claims("ops", admin=True))) == 3
    with pytest.raises(ForbiddenError):
        reg.get("a", _claims("bob"))
