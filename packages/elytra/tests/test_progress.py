"""Progress lines for jobs that run longer than a second (stderr is not a terminal here)."""

from __future__ import annotations

import io
import time

from elytra.jobs import Job
from elytra.progress import watch


def test_a_slow_job_prints_lines_and_a_quick_one_prints_nothing() -> None:
    quick, out = Job("quick"), io.StringIO()
    shown = watch(quick, out, interval=0.01, after=0.2)
    quick.finish(None, None)
    if shown.ident is not None:
        shown.join(5)
    assert out.getvalue() == ""

    slow, out = Job("slow"), io.StringIO()
    shown = watch(slow, out, interval=0.01, after=0.05)
    slow.update(state="running", tasks={"total": 4, "done": 1, "running": 3, "failed": 0})
    time.sleep(0.2)
    slow.finish(None, None)
    shown.join(5)
    lines = out.getvalue().splitlines()
    assert lines[0] == "elytra job slow: running, tasks 1/4"
    assert lines[-1].startswith("elytra job slow: succeeded")
