"""Shared registers written by clients of all three servers across a SIGKILL of the primary
and its restart on its old LMDB (issue 29, break test).

Unlike ``test_failover.py`` (one writer per register), six clients, two per server, race on
three registers with ``PUT``, multi-path ``PATCH`` and ``DELETE``, and push ids with ``POST``
(``break29_history.py``). Checked afterwards: every server's whole export is the same; each
register's history (the final value as a read) passes the linearizability checker; every
acknowledged push is there and none refused; and an SSE stream that stayed open saw each
acknowledged write's value, in an order that respects real time. ``PLATFORM_TESTS_LONG=1``
runs three rounds.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from break29_history import Log, check_history, start_clients, start_streams
from election_cluster import ElectionCluster, wait_for

ROUNDS = 3 if os.environ.get("PLATFORM_TESTS_LONG") == "1" else 1

pytestmark = pytest.mark.slow


def kill_round(cluster: ElectionCluster, log: Log) -> None:
    """Writes from six clients; SIGKILL of the primary; writes resume; the dead one restarts."""
    primary = wait_for(lambda: cluster.primary(), "a primary")
    old_term = cluster.status(primary)["term"]  # type: ignore[index]
    stop = threading.Event()
    clients = start_clients(cluster, log, stop)
    try:
        wait_for(lambda: old_term in log.terms, "a write acknowledged before the kill")
        time.sleep(0.5)
        cluster.kill(primary)
        wait_for(lambda: max(log.terms, default=0) > old_term, "a write acked in a newer term")
        time.sleep(0.5)
        cluster.start(primary)  # on its old LMDB, with what it wrote past the acknowledged
        time.sleep(0.5)
        wait_for(log.acked_every_key, "an acknowledged operation on every register", 60)
    finally:
        stop.set()
        for t in clients:
            t.join(60)


def test_shared_registers_stay_linearizable_across_a_failover(cluster: ElectionCluster) -> None:
    wait_for(lambda: cluster.primary(), "a primary")
    stop = threading.Event()
    streams, log = start_streams(cluster, stop), Log()
    for _ in range(ROUNDS):
        kill_round(cluster, log)
    check_history(cluster, log, streams, one_failover=ROUNDS == 1)
    stop.set()
    assert len(log.terms) >= 2, "no write was acknowledged after the failover"
