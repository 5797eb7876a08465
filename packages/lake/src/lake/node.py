"""A lake node: its directories, chunk store, catalog, uploads and query engine.

``LakeNode`` is what the HTTP API, the CLI and the gateway plugin drive. It owns one data
directory (``<home>/lake/<node-id>/`` by default) and a background thread that runs garbage
collection now and then.

It is also the one place that wires the parts: each is built after what it needs and given
that as a narrow interface (:mod:`lake.interfaces`), so no part reaches into the node or sets
another's attributes, and no lake module imports one that imports it back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from platform_core import ForbiddenError, new_id
from platform_core.auth import TokenSigner
from platform_core.ownership import lock_directory
from platform_core.tls import client_context, flight_root_certs, scheme_of, server_tls

from .cluster.flight import LakeFlightServer
from .cluster.gossip import Gossip
from .cluster.group import Cluster
from .cluster.membership import Member, Membership
from .cluster.peer_link import PeerLinks
from .cluster.remembered import RememberedPeers
from .cluster.replication import Replication
from .errors import IngestError
from .interfaces import Distributor, SQLExecutor
from .settings import LakeSettings
from .sql.admission import QueryAdmission
from .sql.distributed import Coordinator
from .sql.engine import QueryEngine
from .storage.backup import BackupReport, take_backup
from .storage.catalog import Catalog
from .storage.chunks import ChunkStore
from .storage.dataformat import check_format, ensure_format
from .storage.scrub import Scrub
from .storage.uploads import UploadInfo, UploadManager

CHUNK_DIR = "chunks"
"""A node's chunk files, under its directory (``<home>/lake/<node-id>/chunks``)."""

__all__ = ["CHUNK_DIR", "LakeNode", "node_identity", "open_catalog"]

log = logging.getLogger(__name__)


def _use_system_arrow_pool() -> None:
    """Arrow's mimalloc/jemalloc pools keep freed memory, which counts against the ingest
    budget; the system pool gives it back. (glibc's own arenas are bounded by the server
    CLIs before any thread starts: ``platform_core.mallocarenas``.)"""
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())


def _node_id(settings: LakeSettings) -> str:
    """The configured id, or one made once and kept in ``<home>/lake/node-id``."""
    if settings.node_id:
        return settings.node_id
    path = Path(settings.home) / "lake" / "node-id"
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    tmp = path.with_name(f".node-id.{os.getpid()}")
    tmp.write_text(new_id().lower())
    with contextlib.suppress(FileExistsError):
        os.link(tmp, path)
    tmp.unlink()
    return path.read_text().strip()


def node_identity(settings: LakeSettings) -> tuple[str, Path]:
    """The id of the node on ``settings.home`` (made and kept on first use) and its chunk
    directory: what a process beside the node (a platform's Ray node) needs to find its
    chunks without opening it."""
    node_id = _node_id(settings)
    return node_id, settings.node_dir(node_id) / CHUNK_DIR


def open_catalog(settings: LakeSettings) -> Catalog:
    """The catalog of the node on ``settings.home``, for a reader beside it (elytra in the same
    process or on the same machine): manifests and verified chunk files, nothing started."""
    node_id = _node_id(settings)
    root = settings.node_dir(node_id)
    check_format(root, "the lake node's data")  # a newer lake's files are not read
    return Catalog(root / "manifests", ChunkStore(root / CHUNK_DIR), node_id)


class LakeNode:
    """One node's storage, ingest and SQL."""

    def __init__(self, settings: LakeSettings) -> None:
        _use_system_arrow_pool()
        self.settings = settings
        self.node_id = _node_id(settings)
        self.root = settings.node_dir(self.node_id)
        self.owner = lock_directory(  # one writer per node directory; open_catalog() reads
            self.root, what="the lake node's data", setting="LAKE_DATA_DIR or --home"
        )
        try:  # a newer format is refused before anything is written; an older one is marked
            ensure_format(self.root)
        except BaseException:
            self.owner.release()
            raise
        self.chunks = ChunkStore(self.root / CHUNK_DIR)
        self.chunks.clean_temp()
        self.catalog = Catalog(self.root / "manifests", self.chunks, self.node_id)
        self.uploads = UploadManager(
            self.root / "uploads",
            self.catalog,
            chunk_bytes=settings.chunk_bytes,
            memory_bytes=settings.ingest_memory_bytes,
            max_part_bytes=settings.max_part_bytes,
            max_upload_bytes=settings.max_upload_bytes,
            compression=settings.chunk_compression,
        )
        self.engine = self._engine()
        self.queries = QueryAdmission(settings.query_workers, settings.max_queries_per_user)
        self.cluster: Cluster | None = None
        self.sql_executor: SQLExecutor | None = None
        """Another engine the query route tries first (elytra's plugin sets it while it runs;
        None: the lake's own planner answers every query, as a bare ``lake node`` does)."""
        self._stop = threading.Event()
        self._gc_thread: threading.Thread | None = None

    def ingest(
        self,
        path: Path,
        name: str,
        *,
        owner: str | None = None,
        admin: bool = False,
        append: bool = False,
        overrides: dict[str, str] | None = None,
        part_size: int | None = None,
        timeout: float = 3600.0,
    ) -> UploadInfo:
        """Upload a local file as a new version of ``name`` through the upload protocol (the
        same checks, conversion and atomic commit as over HTTP); waits for the commit."""
        import hashlib

        head = self.catalog.head(name)
        if head is not None and not head.deleted and not admin and head.owner != owner:
            raise ForbiddenError(
                f"dataset {name!r} belongs to {head.owner!r}; only its owner or an admin may "
                "add a version"
            )
        size = path.stat().st_size
        info = self.uploads.start(
            name,
            size,
            filename=path.name,
            owner=owner,
            admin=admin,
            append=append,
            overrides=overrides,
            part_size=part_size,
        )
        try:
            with open(path, "rb") as f:
                for n in range(info.parts):
                    part = f.read(info.part_size)
                    self.uploads.put_part(info.id, n, part, hashlib.sha256(part).hexdigest())
            self.uploads.complete(info.id)
        except BaseException:
            with contextlib.suppress(Exception):
                self.uploads.abort(info.id)
            raise
        done = self.uploads.wait(info.id, timeout)
        if done.state != "committed":
            raise IngestError(f"ingesting {path.name} as {name!r} ended {done.state}: {done.error}")
        return done

    def start(self, gc_interval: float = 300.0) -> None:
        """Resume interrupted conversions and start the periodic GC."""
        self.uploads.resume()
        self._gc_thread = threading.Thread(
            target=self._gc_loop, args=(gc_interval,), name="lake-gc", daemon=True
        )
        self._gc_thread.start()

    def _engine(
        self, repair: Callable[[str], bool] | None = None, coordinator: Distributor | None = None
    ) -> QueryEngine:
        s = self.settings
        return QueryEngine(
            self.catalog,
            temp_dir=self.root / "tmp",
            node_id=self.node_id,
            threads=s.query_threads,
            memory_limit=s.query_memory,
            timeout=s.query_timeout_seconds,
            max_timeout=s.max_query_timeout_seconds,
            repair=repair,
            coordinator=coordinator,
        )

    def start_cluster(
        self, signer: TokenSigner, http_addr: str, join: str | None = None
    ) -> Cluster:
        """Join the peer group: Flight server, membership, gossip, replication, scrub.

        Built in dependency order: links and membership; replication over them; scrub over
        replication's fetch; the coordinator over replication (its peer group); a clustered
        engine over scrub's repair and the coordinator (it replaces the local one, which has
        run nothing yet); the Flight server over that engine, whose bound port becomes this
        member's gossiped Flight address; then the loops start.
        """
        s = self.settings
        tls = server_tls(s)  # every member of a TLS cluster serves TLS
        links = PeerLinks(
            signer,
            self.node_id,
            s.ping_timeout_seconds,
            scheme=scheme_of(tls),
            verify=client_context(s),
            flight_roots=flight_root_certs(s),
        )
        members = Membership(Member(self.node_id, http_addr, "", time.time_ns() // 1000))
        replication = Replication(members, self.chunks, self.catalog, links, s)
        scrub = Scrub(self.chunks, replication.fetch)
        coordinator = Coordinator(replication, self.chunks, s.max_gather_bytes)
        local, self.engine = self.engine, self._engine(scrub.repair, coordinator)
        local.close()
        flight = LakeFlightServer(self.engine, s.advertise_host, s.flight_port, signer, tls)
        members.locate(flight=flight.address(s.advertise_host))
        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lake-peer")
        remembered = RememberedPeers(self.root / "peers.json")  # a restart finds them again
        gossip = Gossip(members, self.catalog, links, s, pool, join, remembered)
        self.cluster = Cluster(
            settings=s,
            catalog=self.catalog,
            chunks=self.chunks,
            links=links,
            gossip=gossip,
            replication=replication,
            scrub=scrub,
            flight=flight,
            pool=pool,
        )
        self.cluster.start()
        return self.cluster

    def stop(self) -> None:
        self._stop.set()
        if self.cluster is not None:
            self.cluster.stop()
        self.queries.close()
        self.engine.close()
        if self._gc_thread is not None:
            self._gc_thread.join(5)
        self.owner.release()

    def backup(self, target: Path, *, all_versions: bool = False) -> BackupReport:
        """Back up the live datasets into ``target`` while serving; in a cluster, a chunk that
        is corrupt or not held here is read from a replica (checked)."""
        cluster = self.cluster
        repair = None if cluster is None else cluster.read_chunk
        return take_backup(
            self.catalog, target, node_id=self.node_id, all_versions=all_versions, repair=repair
        )

    def gc(self) -> dict[str, int]:
        out = self.catalog.gc(self.settings.retention_seconds)
        out["uploads"] = self.uploads.gc(self.settings.upload_ttl_seconds)
        return out

    def _gc_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.gc()
            except Exception:
                log.exception("lake garbage collection failed")

    def state(self) -> dict[str, Any]:
        names = self.catalog.names()
        return {
            "node_id": self.node_id,
            "datasets": len(names),
            "chunks": len(self.chunks.all()),
            "data_dir": str(self.root),
            "members": []
            if self.cluster is None
            else [m.to_dict() for m in self.cluster.members.all()],
            "stats": {}
            if self.cluster is None
            else {**self.cluster.stats, "refutations": self.cluster.members.refutations},
        }
