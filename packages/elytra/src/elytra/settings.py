"""Elytra settings: ``ELYTRA_*`` variables, falling back to ``PLATFORM_*`` (for ``home``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field
from pydantic_settings import SettingsConfigDict

from platform_core import MemCap, PackageSettings

__all__ = ["ElytraSettings"]

BackendName = Literal["inline", "local", "ray", "browser"]


class ElytraSettings(PackageSettings):
    """Where tasks run and under what bounds."""

    model_config = SettingsConfigDict(env_prefix="ELYTRA_", extra="ignore", frozen=True)

    backend: BackendName = "local"
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    """Worker processes of the local pool (one per core by default)."""
    worker_mem_cap: MemCap = MemCap(256 << 20)
    """The memory cap of each task (emsqrt's cap: it spills past it); > 0."""
    driver_mem_cap: MemCap = MemCap(512 << 20)
    """The cap of the merge stage, which runs in the driver; > 0."""
    task_bytes: ByteSize = ByteSize(64 << 20)
    """Small chunks are grouped into one task up to about this many bytes."""
    split_bytes: ByteSize = ByteSize(8 << 20)
    """A source of fewer parts than ``workers`` (one chunk, one file) holding at least this
    many bytes is cut by Parquet row groups into one part per worker; below it the extra
    tasks' fixed cost is more than they save. Measured (CPU of the task's run, a 100-group
    sum/avg): 4.1 MB whole 12.3 ms, halves 10.2 ms each; 8.3 MB 16.2 / 12.4; 15.4 MB
    28.0 / 18.6; 28.6 MB 46 / 30; an extra task costs about 3 ms more in the driver and pipes,
    so a split breaks even near 8 MB for the cheapest group-by and gains above it."""
    sql_route: Literal["always", "cluster", "off"] = "cluster"
    """Where the platform's SQL route (``POST /api/lake/query``) runs SELECTs on these stages
    (``elytra.sqlroute``): ``cluster`` (the default): only while the lake node has live peers,
    where the stages keep whole tables off the coordinator; alone, the lake's planner is one
    DuckDB over local chunks, about 4x faster than a job of stages on TPC-H (README), and
    issue 35 holds one platform to the lake's speed; ``always``; ``off``: the lake's planner
    answers every query."""
    chunk_cache_bytes: ByteSize = ByteSize(1 << 30)
    """Chunks a job fetched from replicas (a cluster without Ray: the pool of the platform
    that takes a query reads every chunk it lacks) are kept in ``<spill_dir>/chunk-cache`` up
    to this many bytes, the least recently used dropped first (``chunkcache.py``), so the
    next query over the same dataset reads them here; 0: none kept past the job that
    fetched them (the planner's copies of tables of at most 1 MiB too)."""
    whole_query_bytes: ByteSize = ByteSize(64 << 20)
    """A job whose sources' columns it reads hold at most this many bytes together (the
    Parquet footers' compressed sizes of those columns, a column's share of a row's width
    for files not here; each place a source is read counts) runs
    as one task that reads them all and runs the whole plan, on the node holding the
    biggest, with its cores: no stages, no rounds, no merge beyond its rows
    (``stages.whole_query``); at most a quarter of ``worker_mem_cap`` whatever this says (the
    plan's operators share one task's cap). 0: never. Below 64 MiB, splitting costs more than it gains:
    TPC-H q02, q11, q13, q16 and q22 at SF 1 (33-55 MB each) took 1.5-3x longer as stages
    on three platforms than as one task. Where Ray's nodes are all one machine (platforms
    joined on one host), the default bound is a quarter of a node's CPUs times
    ``worker_mem_cap``, and the one task gets that many caps (``Driver.whole_cap``): stages
    bring no more cores there. A value set here still bounds it there."""
    exchange_partitions: int = Field(0, ge=0, le=1024)
    """Partitions of a join's hash exchange (one join task each); 0: twice ``workers``, or
    one per 32 MiB of the stages it joins when more (``driver.EXCHANGE_PART_BYTES``: a
    partition's task holds its rows)."""
    broadcast_bytes: ByteSize = ByteSize(32 << 20)
    """A join side that reads at most this many bytes (the compressed Parquet columns its
    chain reads; whole files where the footer is not here), and at most an eighth of
    ``worker_mem_cap``, is read whole by every task of the other side: no exchange. 0: every
    join is exchanged."""
    exchange_min_bytes: ByteSize = ByteSize(128 << 20)
    """A group-by whose tasks' partial states pass this size is merged by partitions on the
    workers (a hash exchange), not in the driver. Below it the driver's merge is faster: the
    exchange writes and rereads the states (measured on 2 cores: q3's 1e5 groups took 3.3 s
    through the exchange, 1.8 s merged in the driver)."""
    reread_workers: int = Field(8, ge=0, le=256)
    """A group-by whose partial aggregate keeps about one group per row, or whose states are
    its values (median, quantiles), runs as one task per worker, each reading the whole
    input and aggregating one hash partition of the keys (``reread.py``), when there are at
    most this many workers (each task reads the input again: past a few workers the written
    exchange costs less). 0: never; such group-bys go through the written exchange."""
    range_sort_bytes: ByteSize = ByteSize(1 << 30)
    """A sort (without a limit) whose input is at least this size (the catalog's sizes) is
    sorted on the workers by range partitioning (``rangesort.py``: sampled splitters, one
    sort task per range, the driver only concatenates); a smaller one's tasks return sorted
    runs that the driver merges. 0: every sort is range-partitioned. Only on backends whose
    workers share the driver's disk (inline, local, Ray). On 2 cores the driver's merge was
    still faster at G1's 1e7 rows (193 MB of Parquet: 28.6 s against 38.4 s, DuckDB 10 s):
    range partitioning reads and writes the input twice and pays off with more workers than
    the driver's one merging thread can keep up with."""
    max_attempts: int = Field(3, ge=1, le=20)
    """Tries of a task (a dead worker, a lease past, a retryable error) before the job fails."""
    lease_seconds: float = Field(600.0, gt=0)
    """A task running longer than this is presumed hung: its worker is killed, it is retried
    (a browser worker's attempt ends then too, however it heartbeats)."""
    job_timeout_seconds: float = Field(3600.0, gt=0)
    ring_bytes: ByteSize = ByteSize(16 << 20)
    """Heap of each worker's strand ring; a larger result streams through it."""
    spill_dir: Path | None = None
    ray_address: str | None = None
    """With backend ``ray``: ``auto``, ``host:port`` or ``ray://host:port`` (none: start Ray
    on this machine)."""
    ray_node_dir: str | None = None
    """With ``ray_address``: the temp dir of the Ray node the driver attaches to (``platform
    up --ray`` sets its own node's): on a machine running several platforms' Ray nodes, Ray
    would attach every driver to the head's node, and its tasks "here" would run there."""
    browser_wait_seconds: float = Field(2.0, ge=0)
    """With backend ``browser``: a browser task no worker takes within this long runs on the
    local pool (so a job finishes with no browser connected)."""
    browser_lease_seconds: float = Field(15.0, gt=0)
    """A browser worker's lease on a task; each heartbeat extends it by this much."""
    browser_heartbeat_seconds: float = Field(3.0, gt=0)
    """How often workers are asked to heartbeat (well under the lease)."""
    browser_max_concurrency: int = Field(4, ge=1, le=64)
    """Tasks one browser worker runs at once at most (it asks for up to this many)."""
    browser_max_result_bytes: ByteSize = ByteSize(16 << 20)
    """The largest result (Arrow IPC bytes) a browser may send; a larger one is refused."""
    browser_messages_per_second: float = Field(50.0, gt=0)
    """Messages a worker may send a second (bursts of twice that); past it, it is dropped."""
    browser_max_workers: int = Field(256, ge=1)
    """Browser worker connections at most, in all (each may make the server buffer one
    WebSocket frame, up to 16 MiB)."""
    browser_max_workers_per_token: int = Field(16, ge=1)
    """Browser worker connections at most per worker-token subject."""
    browser_verify_fraction: float = Field(0.1, ge=0, le=1)
    """The share of each worker's results run again on the local pool and compared; a
    mismatch bans the worker for the job and reruns all its results of the job."""
    peers: bool = True
    """On Ray, in a cluster of platforms started with ``--ray``: place each task that reads
    only lake chunks on the Ray node of a platform holding them (``false``: every task runs on
    this platform's Ray node, the chunks it lacks fetched from replicas)."""
    ray_exchange: Literal["objects", "driver"] = "objects"
    """On Ray across platforms, how a hash exchange's rows move: ``objects`` (the default):
    each task partitions its rows on its own node and sends the partitions as Ray objects to
    the nodes that read them (``backends.rayobjects``); ``driver``: the tasks send their rows
    to the driver, which partitions them on its disk (the way before; for comparison)."""
    max_result_bytes: ByteSize = ByteSize(1 << 30)
    """The largest stored result of one job (Arrow IPC bytes on disk); past it the job fails
    saying so. A dataset written with ``write`` has no such limit."""
    result_quota_bytes: ByteSize = ByteSize(4 << 30)
    """Stored results one user may hold at once (bytes on disk, unexpired)."""
    result_ttl_seconds: float = Field(7 * 24 * 3600.0, gt=0)
    """A stored result is removed this long after its job finished."""
    result_dir: Path | None = None
    """Where finished jobs' results are stored (default ``<home>/results/elytra``)."""
    progress: bool = True
    """Show the progress of actions that take over a second on stderr (a bar in a terminal,
    a line otherwise)."""

    def resolved_result_dir(self) -> Path:
        """Where results are stored: ``result_dir`` if set, else ``<home>/results/elytra``."""
        return (self.result_dir or self.home / "results" / "elytra").expanduser()

    def resolved_spill_dir(self) -> Path:
        """Where tasks spill: ``spill_dir`` if set, else ``<home>/spill/elytra``."""
        return (self.spill_dir or self.home / "spill" / "elytra").expanduser()

    def chunk_cache_dir(self) -> Path:
        """The platform's chunk cache (``chunk_cache_bytes``, ``chunkcache.py``)."""
        return self.resolved_spill_dir() / "chunk-cache"
