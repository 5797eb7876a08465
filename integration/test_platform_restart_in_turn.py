"""A whole cluster that ran past its election's first log compaction, stopped and started
again one platform after the other with the commands it was first started with (found by
`bench/tpch_bench.py --engine 3platforms`, whose three platforms had run an hour).

pysyncobj compacts the Raft log (here after 1 s, `ELKYN_ELECTION_COMPACT_SECONDS`; 5 minutes by
default) by dropping the journal's entries up to a snapshot of the state, which it kept in
memory only: restarted, every platform's election state was empty (no members, term 0). The
first, started alone, made a Raft cluster of one and named no member; the others could not
join it ("names no election member yet") and, through the members they remembered, formed a
cluster of two: no platform took a write again. The snapshot is now `election.dump` beside the
journal, and a restarted member whose `--join` platform names no member rejoins through the
members it remembers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from platform_cluster import COMPACT, FAST, exports_hold, join, start_cluster, wait_for, write_ok
from servers import command, launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_cluster_restarted_one_platform_after_the_other_takes_writes_again(
    tmp_path: Path,
) -> None:
    cluster = start_cluster(tmp_path, 3, env=COMPACT)
    try:
        want = {}
        for i, url in enumerate(cluster.urls):
            wait_for(lambda url=url, i=i: write_ok(url, f"before{i}", i, cluster), f"a write {i}")
            want[f"before{i}"] = i
        first = cluster.urls[0]
        time.sleep(3)  # past a compaction of each election's log
        for node in cluster.nodes:
            node.stop()  # SIGTERM: as a user stops them
        started = time.monotonic()
        argv = [
            str(command("platform")),
            *("up", "--port", first.rsplit(":", 1)[1], "--home", str(cluster.homes[0])),
        ]
        cluster.nodes[0] = launch(argv, tmp_path / "p0", env={**FAST, **COMPACT})
        for i in (1, 2):  # each once the one before it answers, as a script would start them
            cluster.nodes[i] = join(tmp_path, f"p{i}", first, env=COMPACT)
        print(f"all three up again in {time.monotonic() - started:.1f} s")
        for i, url in enumerate(cluster.urls):
            wait_for(lambda url=url, i=i: write_ok(url, f"after{i}", i, cluster), f"via {url}", 60)
            want[f"after{i}"] = i

        wait_for(lambda: exports_hold(cluster, want), "every export to hold every write")
    finally:
        cluster.stop()
