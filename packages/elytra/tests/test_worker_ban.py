"""A worker's ban holds for its token, across reconnects. Break-test "break15": a banned worker
came back under the same token and was trusted again.

A ban was per connection (worker id): a worker caught lying reconnected with the same worker
token, got a new id and new tasks of the same job, and its results were again checked only at
the verify fraction (so lying once per connection, then reconnecting, beat the re-run of "every
result it gave"). The ban is now per token subject: the job's tasks no longer go to any
connection of that subject, and every result given under it is run again.
"""

from __future__ import annotations

import time
from pathlib import Path

import elytra
from elytra import BrowserBackend, InlineBackend
from elytra.browser import WorkerHub
from elytra.browser.reference import ReferenceWorker

from .test_browser import (  # noqa: F401  (lake_home is a fixture)
    AGG,
    _agg,
    _duckdb,
    _flip,
    _rows,
    _worker_token,
    lake_home,
    serving,
)


def test_a_banned_worker_reconnecting_with_its_token_gets_no_more_of_the_job(
    lake_home: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    home, csv = lake_home
    hub = WorkerHub(heartbeat_seconds=0.5)
    backend = BrowserBackend(InlineBackend(), hub, wait_seconds=120, verify_fraction=1.0)
    token = _worker_token("liar")
    with serving(hub, tmp_path) as url:
        liar = ReferenceWorker(url, token, 1, tamper=_flip).start()
        again: ReferenceWorker | None = None
        honest: ReferenceWorker | None = None
        try:
            with elytra.connect(home=home, backend=backend, task_bytes=1, progress=False) as s:
                job = _agg(s).submit()
                assert liar.banned.wait(60), "the liar was not banned"
                liar.stop()  # ... and comes back with the same token
                again = ReferenceWorker(url, token, 2, tamper=_flip).start()
                time.sleep(1.0)
                assert not again.started, "the banned subject got tasks of the job again"
                honest = ReferenceWorker(url, _worker_token("honest"), 2).start()
                assert job.wait(120) == "succeeded", job.record.get("error")
                assert _rows(job.result()) == _duckdb(csv, AGG)
            assert not again.started
            assert honest.accepted
        finally:
            for w in (liar, again, honest):
                if w is not None:
                    w.stop()
    backend.close()
