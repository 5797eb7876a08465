"""Progress of a running job: a rich bar in a terminal, a plain line elsewhere (CI, notebooks).

A watcher thread reads the job's record (never the tasks themselves) a few times a second.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from .jobs import Job

__all__ = ["watch"]


def watch(
    job: Job, stream: TextIO | None = None, interval: float = 0.2, after: float = 1.0
) -> threading.Thread:
    """Show ``job``'s progress on ``stream`` (stderr) until it ends; nothing for a job that
    ends within ``after`` seconds."""
    out = stream or sys.stderr
    target = _bar if out.isatty() else _lines
    if job.done():
        return threading.Thread()

    def run() -> None:
        if not job._done.wait(after):
            target(job, out, interval)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _bar(job: Job, out: TextIO, interval: float) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[bold]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=out),
        transient=True,
    ) as bar:
        task = bar.add_task(f"job {job.id[-6:]}", total=None)
        while not job.done():
            tasks = job.status().get("tasks", {})
            bar.update(task, completed=tasks.get("done", 0), total=tasks.get("total") or None)
            time.sleep(interval)


def _lines(job: Job, out: TextIO, interval: float) -> None:
    """One line when the state or the count of done tasks changes, at most every 2 s."""
    last: tuple[str, int] | None = None
    shown = 0.0
    while True:
        status = job.status()
        tasks = status.get("tasks", {})
        now = (status.get("state", ""), tasks.get("done", 0))
        ended = job.done()
        if now != last and (
            ended or time.monotonic() - shown >= 2.0 or now[0] != (last or ("",))[0]
        ):
            out.write(f"elytra job {job.id}: {now[0]}, tasks {now[1]}/{tasks.get('total', 0)}\n")
            out.flush()
            last, shown = now, time.monotonic()
        if ended:
            return
        time.sleep(interval)
