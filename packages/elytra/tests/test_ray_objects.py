"""Exchange partitions as Ray objects (``backends.rayobjects``), without Ray: what a placed task
packs, what the reading task unpacks, and the driver's registry. The whole path on a real Ray
cluster is ``test_ray_locality.py``'s exchange test."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from elytra.backends.rayobjects import (
    ObjectRegistry,
    is_object,
    object_keys,
    pack,
    placement_view,
    ship_files,
    unpack,
)
from elytra.errors import ExchangeLostError, PipelineError
from elytra.task import Task


def _task(files: tuple[str, ...] = (), plan: str = "{}") -> Task:
    return Task("job1-s0-t2", 0, plan, 1 << 20, "/nowhere", attempt=2, files=files)


def test_pack_sends_each_written_partition_and_renames_its_files(tmp_path: Path) -> None:
    files = []
    for p in (0, 2):
        path = tmp_path / f"{p}.parquet"
        pq.write_table(pa.table({"k": [p, p]}), path)
        files.append(path)
    written = {
        "directory": str(tmp_path),
        "files": [[str(files[0])], [], [str(files[1])]],
        "rows": [2, 0, 2],
        "bytes": [16, 0, 16],
    }
    stats = {"exchange": written}
    parts = pack(_task(), stats, 3)
    assert parts[1] is None
    assert parts[0] == [files[0].read_bytes()]
    assert parts[2] == [files[1].read_bytes()]
    names = stats["exchange"]["files"]
    assert names == [["ray-object:job1-s0-t2-a2-p0-f0"], [], ["ray-object:job1-s0-t2-a2-p2-f0"]]
    assert object_keys([n for ns in names for n in ns]) == ["job1-s0-t2-a2-p0", "job1-s0-t2-a2-p2"]
    assert stats["exchange"]["rows"] == [2, 0, 2]  # the counts stay
    assert pack(_task(), {}, 2) == [None, None]  # a task that did not partition


def test_unpack_writes_the_objects_and_the_plan_reads_them(tmp_path: Path) -> None:
    src = tmp_path / "src.parquet"
    pq.write_table(pa.table({"k": [1, 2, 3]}), src)
    name = "ray-object:job1-s0-t0-a1-p1-f0"
    plan = json.dumps({"op": "scan", "path": name, "format": "parquet"})
    task = _task(files=(name, "lake-chunk:" + "a" * 64), plan=plan)
    ready = unpack(task, {"job1-s0-t0-a1-p1": [src.read_bytes()]}, tmp_path / "objects")
    path = json.loads(ready.plan)["path"]
    assert Path(path).parent == tmp_path / "objects"
    assert ready.files == (path, "lake-chunk:" + "a" * 64)  # other names as they were
    assert duckdb.sql(f"SELECT sum(k) FROM '{path}'").fetchall() == [(6,)]
    with pytest.raises(PipelineError, match="was not given"):
        unpack(task, {}, tmp_path / "o2")
    # Ray rebuilt it by running its task again on a node that lacked the chunks: lost
    with pytest.raises(ExchangeLostError, match="submit the job again"):
        unpack(task, {"job1-s0-t0-a1-p1": None}, tmp_path / "o3")
    assert unpack(_task(files=("/x.parquet",)), {}, tmp_path) == _task(files=("/x.parquet",))


@pytest.mark.parametrize(
    "name", ["ray-object:", "ray-object:x-p1-f0", "ray-object:a b-a1-p1-f0", "ray-object:j-a1-p1"]
)
def test_a_malformed_object_name_is_refused(name: str) -> None:
    assert is_object(name)
    with pytest.raises(PipelineError, match="not an exchange object"):
        object_keys([name])


def test_the_registry_places_by_bytes_and_lets_go() -> None:
    objects = ObjectRegistry()
    objects.add("j1-s0-t0-a1-p0", "ref-a", "node-a", 100)
    objects.add("j1-s0-t1-a1-p0", "ref-b", "node-b", 300)
    objects.add("j1-s0-t2-a1-p0", "ref-c", "node-a", 250)
    objects.add("j10-s0-t0-a1-p0", "ref-d", "node-b", 1)
    keys = ["j1-s0-t0-a1-p0", "j1-s0-t1-a1-p0", "j1-s0-t2-a1-p0"]
    assert objects.nearest(keys) == "node-a"  # 350 bytes there against 300
    assert objects.refs(keys) == ["ref-a", "ref-b", "ref-c"]
    objects.drop(keys[:1])
    assert objects.nearest(keys) == "node-b"
    with pytest.raises(PipelineError, match="is gone"):
        objects.refs(keys)
    assert objects.release("j1") == 2  # not job j10's
    assert len(objects) == 1
    assert objects.nearest(["nothing"]) is None


def test_partition_tasks_spread_over_the_nodes_by_their_bytes() -> None:
    """Node a made most bytes of every partition: its tasks still spread, each to the node
    holding the most of its own bytes among those with the fewest tasks (found measuring:
    all four partition tasks of a join went to one node)."""
    objects = ObjectRegistry()
    readers = {}
    for p in range(4):
        objects.add(f"j-s0-t0-a1-p{p}", None, "a", 100 + p)
        objects.add(f"j-s0-t1-a1-p{p}", None, "b", 60 - p)
        objects.add(f"j-s0-t2-a1-p{p}", None, "c", 40 + (p == 0) * 30)
        readers[f"j-s1-t{p}"] = [f"j-s0-t{t}-a1-p{p}" for t in range(3)]
    where = objects.place(readers)
    assert where["j-s1-t0"] == "a"  # the biggest first, to where most of it is
    assert where["j-s1-t1"] == "b"  # then the idle nodes, the one with more of it first
    assert where["j-s1-t2"] == "c"
    assert where["j-s1-t3"] == "a"
    assert objects.place({}) == {}


class _LosesOnce:
    """The inline backend, but its first ``losses`` runs lose an exchange's partitions (as a
    Ray node dying with them would)."""

    name = "inline"

    def __init__(self, losses: int) -> None:
        from elytra.backends import InlineBackend

        self.inner, self.losses, self.runs = InlineBackend(), losses, 0

    def run(self, tasks, cancel, started=None):  # type: ignore[no-untyped-def]
        self.runs += 1
        if self.runs <= self.losses:
            raise ExchangeLostError("exchange partition j-s0-t0-a1-p0 was lost; submit again")
        return self.inner.run(tasks, cancel, started)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("losses", [1, 2])
def test_a_job_that_lost_an_exchange_runs_again_once(tmp_path: Path, losses: int) -> None:
    """The driver runs a job whose exchange partitions were lost again from its sources, once:
    then it has DuckDB's answer; a second loss fails it as unavailable (submit again)."""
    import elytra

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": [i % 7 for i in range(5000)], "v": list(range(5000))}), path)
    backend = _LosesOnce(losses)
    with elytra.connect(home=tmp_path, backend=backend, progress=False) as s:  # type: ignore[arg-type]
        job = s.read_parquet(path).group_by("k").agg("sum(v) AS total").submit()
        job.wait(60)
        assert job.record["reruns"] == 1
        if losses == 1:
            tasks = job.record["tasks"]  # the run again's, not the lost run's too
            assert tasks["done"] == tasks["total"], tasks
            assert tasks.get("running", 0) == 0, tasks
            got = sorted(tuple(r.values()) for r in job.result().to_pylist())
            want = duckdb.sql(f"SELECT k, sum(v) FROM '{path}' GROUP BY k").fetchall()
            assert got == sorted(want)
        else:
            with pytest.raises(ExchangeLostError, match="submit again"):
                job.result()
    assert backend.runs == losses + (losses == 1)  # the run lost, then the one run again


CHUNK = "lake-chunk:" + "c" * 64


def test_a_side_file_is_shipped_once_and_read_back_where_the_task_runs(tmp_path: Path) -> None:
    """Every task of a stage reads its chunk and the same side file of the driver's machine:
    the file becomes one object (put once), each task names it, and unpacking gives the
    task a file with the same rows. Tasks without a chunk, or with too big a file, stay."""
    side = tmp_path / "side.parquet"
    pq.write_table(pa.table({"k": [1, 2, 3]}), side)
    plan = json.dumps({"op": "join", "inputs": [{"op": "scan", "path": str(side)}]})
    tasks = [
        Task(f"j-s0-t{i}", 0, plan, 1 << 20, "/nowhere", files=(CHUNK, str(side)), shared_files=1)
        for i in range(3)
    ]
    alone = Task("j-s0-t9", 0, plan, 1 << 20, "/nowhere", files=(str(side),))
    put: list[list[bytes]] = []
    out, objects, nbytes = ship_files([*tasks, alone], lambda b: put.append(b) or len(put))
    assert put == [[side.read_bytes()]]  # one object for every reader
    assert nbytes == side.stat().st_size
    assert objects == {"ship0-a0-p0": 1}
    name = "ray-object:ship0-a0-p0-f0"
    assert all(t.files == (CHUNK, name) for t in out[:3])
    assert out[3] is alone  # no chunk: nothing to go with
    ready = unpack(out[0], {"ship0-a0-p0": put[0]}, tmp_path / "there")
    path = json.loads(ready.plan)["inputs"][0]["path"]
    assert duckdb.sql(f"SELECT sum(k) FROM '{path}'").fetchall() == [(6,)]
    view = placement_view(out[0])
    assert (view.files, view.shared_files) == ((CHUNK,), 0)  # the side was the shared one
    big, _, _ = ship_files(tasks, lambda b: 1, limit=side.stat().st_size - 1)
    assert big == tasks  # over the limit: they stay on the driver's node
    gone, _, _ = ship_files([replace(tasks[0], files=(CHUNK, "/no/such.parquet"))], lambda b: 1)
    assert gone[0].files == (CHUNK, "/no/such.parquet")
