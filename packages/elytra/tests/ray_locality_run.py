"""Run by ``test_ray_locality.py`` in a process of its own (the test session has its own Ray):
a Ray cluster of three nodes on this machine (Ray's ``cluster_utils``: three raylets), each
marked as a platform's Ray node is (``ray_node_marks``' resource and variables), over three
chunk directories that each hold two thirds of a lake dataset's chunks. Runs one group-by on
the Ray backend attached to that cluster and prints its rows, record and placement counts.

Usage: ``python ray_locality_run.py SPEC_JSON`` with ``home`` (the lake's home), ``dirs``
(lake node id -> its chunk directory), ``all`` (every chunk, where a fetch reads), ``work``
(each node's work directory's parent), ``job`` (``"join"``: a self-join through a hash
exchange before the group-by; ``"side"``: ``SIDE_SQL``, whose ``IN`` side runs first and is
broadcast to tasks that also read chunks; ``"dims"``: ``DIMS_SQL``, a join with a small
table on one node; ``"whole"``: the group-by as one task, twice, the driver's node of two
CPUs and a chunk cache), ``dims`` (that table's chunks and the node holding them), ``drop`` (chunks removed from a node after placement
was decided: ``[[node, sha], ...]``), ``kill`` (slow tasks, and a Ray node other than the
driver's SIGKILLed while they run; ``"head"``: the head, the GCS; ``"exchange"``: with
``job="join"``, a node once the exchange's partition tasks run).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

import elytra
from elytra.backends import RayBackend
from elytra.backends.chunkcluster import Peer
from elytra.backends.raynodes import CHUNKS_VAR, NODE_VAR, RESOURCE, WORK_VAR, lake_nodes


class DirCluster:
    """The lake cluster as the backend sees it, over chunk directories (one per node)."""

    def __init__(self, me: str, dirs: dict[str, Path], every: Path) -> None:
        self.id, self.dirs, self.every = me, dirs, every
        self.fetched: list[str] = []

    def me(self) -> str:
        return self.id

    def peers(self) -> list[Peer]:
        return [Peer(n, "http://127.0.0.1:9") for n in self.dirs if n != self.id]

    def holders(self, sha: str) -> list[str]:
        return [n for n, d in self.dirs.items() if (d / f"{sha}.parquet").is_file()]

    def locate(self, sha: str) -> str | None:
        path = self.dirs[self.id] / f"{sha}.parquet"
        return str(path) if path.is_file() else None

    def fetch(self, sha: str) -> bytes:
        self.fetched.append(sha)
        return (self.every / f"{sha}.parquet").read_bytes()

    def token(self) -> str:
        return ""


def _node_args(node: str, chunks: Path, work: Path, cpus: int = 1) -> dict[str, object]:
    return {
        "temp_dir": _temp_dir(node),  # its own, as each platform's node has
        "num_cpus": cpus,
        "resources": {RESOURCE + node: 1.0},
        "env_vars": {NODE_VAR: node, CHUNKS_VAR: str(chunks), WORK_VAR: str(work / node)},
    }


def _temp_dir(node: str) -> str:
    """A node's Ray temp dir: short (Ray's socket paths), one per node and run."""
    return f"/tmp/rl{os.getpid()}-{node}"


class Dropping(DirCluster):
    """Says a node holds the chunks in ``drop`` (placement sends their tasks there), while
    the node's directory no longer has them: the lake trimmed its copy after placement."""

    def __init__(self, me: str, dirs: dict[str, Path], every: Path, drop: list[list[str]]):
        super().__init__(me, dirs, every)
        self.dropped = {(n, s) for n, s in drop}
        for node, sha in self.dropped:
            (dirs[node] / f"{sha}.parquet").unlink(missing_ok=True)

    def holders(self, sha: str) -> list[str]:
        return sorted({*super().holders(sha), *(n for n, s in self.dropped if s == sha)})


SLOW_SECONDS = float(os.environ.get("RAY_LOCALITY_SLOW", "0.4"))
"""How long a slowed task sleeps per batch."""


DIMS_SQL = (
    "SELECT d.label, count(*) AS n, sum(s.amount) AS total FROM sales s "
    "JOIN grps d ON s.grp = d.grp WHERE s.amount > 50 GROUP BY d.label"
)
"""A query joining the chunks of ``sales`` with ``grps``, a small table on one node only."""

SIDE_SQL = (
    "SELECT grp, count(*) AS n, sum(amount) AS total FROM sales WHERE amount > 50 "
    "AND grp IN (SELECT grp FROM sales WHERE amount > 990 GROUP BY grp HAVING count(*) > 40) "
    "GROUP BY grp"
)
"""A query whose ``IN`` side (a small group-by) runs first: the main stage's tasks read their
chunks and the side's result, a file on the driver's machine."""


def _slowly(batch: Any) -> Any:
    time.sleep(SLOW_SECONDS)
    return batch


def _head_killed(cluster: Cluster, job: Any, again: Any) -> None:
    """SIGKILL the head (the GCS) once the job's first tasks are done; print how the job
    ended and when, and how a job submitted after it ended (``again``), then leave without ``ray.shutdown`` (with its raylet
    gone, Ray's disconnect ends the process)."""
    deadline = time.monotonic() + 60
    while job.record["tasks"]["done"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = time.monotonic()
    cluster.remove_node(cluster.head_node, allow_graceful=False)
    try:
        job.result(timeout=150)
        ended = {"error": None}
    except Exception as exc:
        ended = {"error": type(exc).__name__, "message": str(exc)}
    ended["seconds"] = time.monotonic() - killed
    submitted = time.monotonic()  # a job submitted once Ray is gone: an error, not a wait
    try:
        again().submit().result(timeout=150)
        ended["next"] = None
    except Exception as exc:
        ended["next"] = type(exc).__name__
    ended["next_seconds"] = time.monotonic() - submitted
    print(json.dumps(ended), flush=True)
    for node in cluster.worker_nodes:  # not shutdown(): it spares the driver's node
        node.kill_all_processes(check_alive=False, allow_graceful=False)
    _forget(cluster, [p.name.split("-", 1)[1] for p in Path("/tmp").glob(f"rl{os.getpid()}-*")])
    os._exit(0)


def _forget(cluster: Cluster, names: list[str]) -> None:
    """Remove the nodes' temp dirs, and the address Ray's ``cluster_utils`` wrote to
    ``/tmp/ray/ray_current_cluster``: a later ``ray.init()`` on this machine would try to
    join this dead cluster."""
    for n in names:
        shutil.rmtree(_temp_dir(n), ignore_errors=True)
    current = Path("/tmp/ray/ray_current_cluster")
    try:
        if current.read_text().strip() == cluster.address:
            current.unlink()
    except OSError:
        pass


def _kill_a_node(cluster: Cluster, driver_node: str, job: Any) -> None:
    """SIGKILL the processes of a Ray node other than the driver's once the job's first
    tasks are done (the others run on it or wait for it)."""
    deadline = time.monotonic() + 60
    while job.record["tasks"]["done"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = next(n for n in cluster.worker_nodes if n.node_id != driver_node)
    cluster.remove_node(victim, allow_graceful=False)


def _kill_after_producers(cluster: Cluster, driver_node: str, job: Any) -> None:
    """SIGKILL a Ray node other than the driver's once the exchange's producers are done and
    its partition tasks run: the objects it held are lost with it."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        stages = job.record["timeline"]["stages"]
        if any(k.startswith("s") and int(k[1:]) >= 2 and v["total"] for k, v in stages.items()):
            break
        time.sleep(0.02)
    time.sleep(0.3)
    victim = next(n for n in cluster.worker_nodes if n.node_id != driver_node)
    cluster.remove_node(victim, allow_graceful=False)


def main() -> None:
    spec = json.loads(sys.argv[1])
    dirs = {n: Path(d) for n, d in spec["dirs"].items()}
    work = Path(spec["work"])
    names = sorted(dirs)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**_node_args(names[0], dirs[names[0]], work), "include_dashboard": False},
    )
    try:
        whole = spec.get("job") == "whole"
        for n in names[1:]:
            cpus = 2 if whole and n == names[-1] else 1
            cluster.add_node(**_node_args(n, dirs[n], work, cpus))
        cluster.wait_for_nodes()
        # the driver on the last node, not the head's, as on a platform that joined others
        cache = {"chunk_cache": work / "cache", "chunk_cache_bytes": 1 << 30} if whole else {}
        backend = RayBackend(cluster.address, node_dir=_temp_dir(names[-1]), **cache)
        mine = [n for n, (rid, _) in lake_nodes(ray.nodes()).items() if rid == backend.node_id]
        lake = Dropping(mine[0], dirs, Path(spec["all"]), spec.get("drop", []))
        backend.attach(lambda: lake)
        knobs: dict[str, Any] = {"task_bytes": 1}
        if spec.get("job") == "join":  # every join and group-by through a hash exchange
            knobs |= {"broadcast_bytes": 0, "exchange_partitions": 3, "exchange_min_bytes": 1}
        if whole:
            knobs["whole_query_bytes"] = 1 << 30
        with elytra.connect(home=spec["home"], backend=backend, **knobs) as s:
            if spec.get("job") == "dims":  # as on a platform: what the home lacks, fetched
                s.fetch = s.driver.fetch = lambda sha, origin: lake.fetch(sha)
            source = s.dataset("sales").filter("amount > 50")
            if spec.get("job") == "join":
                other = s.dataset("sales").select("id", "grp AS g2", "amount AS a2")
                source = source.join(other, "id").filter("a2 > 20")
            if spec.get("kill"):  # slow tasks, so that a node dies while they run
                source = source.map_batches(_slowly, schema=source.schema)
                # (after a join: its partition tasks are the slow ones)
            grouped = source.group_by("grp").agg("count(*) AS n", "sum(amount) AS total")
            queries = {"side": SIDE_SQL, "dims": DIMS_SQL}
            chosen = spec.get("job")
            job = (s.sql(queries[chosen]) if chosen in queries else grouped).submit()
            if spec.get("kill") == "head":  # the GCS: the job cannot finish
                again = s.dataset("sales").group_by("grp").agg("count(*) AS n")
                return _head_killed(cluster, job, lambda: again)
            if spec.get("kill") == "exchange":
                _kill_after_producers(cluster, backend.node_id, job)
            elif spec.get("kill"):
                _kill_a_node(cluster, backend.node_id, job)
            rows = job.result(timeout=180).to_pylist()
            record = job.record
            if whole:  # again: what the first run fetched is in the cache
                first = len(lake.fetched)
                again = grouped.submit()
                rows_again = again.result(timeout=180).to_pylist()
                record = {**again.record, "first_fetched": first, "first_rows": rows}
                rows = rows_again
        print(
            json.dumps(
                {
                    "me": lake.id,
                    "rows": rows,
                    "record": record,
                    "stats": backend.stats,
                    "fetched": lake.fetched,
                    "held": len(backend.objects),
                },
                default=str,
            )
        )
        backend.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
        _forget(cluster, names)


if __name__ == "__main__":
    main()
