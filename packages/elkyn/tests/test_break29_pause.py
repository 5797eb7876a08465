"""SIGSTOP of the primary for a while, then SIGCONT, amid six clients racing on shared
registers (issue 29, break test; ``break29_history.py`` holds the clients and the checks).

A pause shorter than the coordinator's checks (3 misses of a 1 s check, 0.25 s apart) must
change nothing; a longer one deposes the paused primary, which resumes into a cluster with a
newer term. Either way: the exports agree, every register is linearizable, no acknowledged
push is lost, no term has two primaries. The default session pauses once, past the checks;
``PLATFORM_TESTS_LONG=1`` also pauses around them and far past them.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from break29_history import Log, check_history, start_clients, start_streams
from election_cluster import ElectionCluster, wait_for

LONG = os.environ.get("PLATFORM_TESTS_LONG") == "1"
PAUSES = [0.5, 0.8, 1.2, 2.5, 3.5, 4.5, 6.0, 10.0] if LONG else [4.5]

pytestmark = pytest.mark.slow


def pause_round(cluster: ElectionCluster, log: Log, seconds: float) -> None:
    """Writes; SIGSTOP of the primary for ``seconds``; SIGCONT; writes acknowledged again."""
    primary = wait_for(lambda: cluster.primary(), "a primary")
    stop = threading.Event()
    clients = start_clients(cluster, log, stop)
    try:
        wait_for(lambda: log.terms, "a write acknowledged before the pause")
        time.sleep(0.3)
        cluster.kill(primary, signal.SIGSTOP)
        time.sleep(seconds)
        cluster.kill(primary, signal.SIGCONT)
        resumed = time.monotonic()
        wait_for(lambda: log.acked_since(resumed), "a write acknowledged after the pause")
        time.sleep(0.5)
        wait_for(log.acked_every_key, "an acknowledged operation on every register", 60)
    finally:
        stop.set()
        for t in clients:
            t.join(60)


def test_pauses_of_the_primary_keep_the_registers_linearizable(cluster: ElectionCluster) -> None:
    wait_for(lambda: cluster.primary(), "a primary")
    stop = threading.Event()
    streams, log = start_streams(cluster, stop), Log()
    for seconds in PAUSES:
        pause_round(cluster, log, seconds)
    check_history(cluster, log, streams, one_failover=len(PAUSES) == 1)
    stop.set()
    for term, databases in log.databases.items():
        assert len(databases) == 1, f"two primaries acknowledged writes in term {term}"
