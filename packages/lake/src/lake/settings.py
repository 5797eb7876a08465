"""Lake settings: ``LAKE_*`` first, then ``PLATFORM_*`` (``LAKE_HOME`` overrides the home)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ByteSize, Field, model_validator
from pydantic_settings import SettingsConfigDict

from platform_core import PackageSettings, PlatformSettings, package_settings

__all__ = ["LakeSettings", "lake_settings"]

MiB = 1 << 20


class LakeSettings(PackageSettings):
    """Settings of a lake node (env prefix ``LAKE_``)."""

    model_config = SettingsConfigDict(env_prefix="LAKE_", extra="ignore", frozen=True)

    node_id: str | None = None
    """Stable id of this node; default: one made once and kept under the node's directory."""
    data_dir: Path | None = None
    """Where this node keeps chunks, manifests and uploads; default ``<home>/lake/<node>``."""
    backup_dir: Path | None = None
    """Where ``POST /admin/backup`` writes backups (each a named directory under it); default
    ``<home>/backups/lake``."""
    chunk_bytes: int = Field(64 * MiB, ge=4096)
    """Target size of a Parquet chunk; chunks hold whole rows and end near this size."""
    chunk_compression: Literal["snappy", "lz4", "zstd", "none"] = "snappy"
    """The codec of the chunks an upload writes. Snappy (Parquet's usual one) reads fastest:
    TPC-H's 22 queries over zstd chunks took 1.26x their time over snappy ones in DuckDB,
    for 22% fewer bytes on disk. Chunks written earlier keep theirs."""
    ingest_memory_bytes: int = Field(256 * MiB, ge=MiB)
    """Memory budget of one conversion (reader blocks and the open chunk's buffers)."""
    max_part_bytes: int = Field(64 * MiB, ge=1024)
    """Largest upload part the node accepts."""
    max_upload_bytes: int = Field(1 << 40, ge=1024)
    """Largest whole upload (sum of its parts)."""
    retention_seconds: float = Field(24 * 3600.0, ge=0)
    """How long superseded versions and tombstoned datasets keep their chunks before GC."""
    upload_ttl_seconds: float = Field(7 * 24 * 3600.0, gt=0)
    """Unfinished uploads older than this are removed by GC."""
    query_timeout_seconds: float = Field(60.0, gt=0, allow_inf_nan=False)
    """Timeout of a query that names none."""
    max_query_timeout_seconds: float = Field(3600.0, gt=0, allow_inf_nan=False)
    """Largest timeout a query may ask for; it also bounds the time an Arrow/CSV stream runs."""
    query_workers: int = Field(4, ge=1)
    """Threads that run queries (the query pool); catalog and cancel routes never wait for it."""
    max_queries_per_user: int = Field(2, ge=1)
    """Queries one user may have running or waiting at once; more are answered 429."""
    max_result_rows: int = Field(100_000, gt=0)
    """JSON results stop with an error past this many rows (Arrow and CSV stream instead)."""
    max_json_bytes: int = Field(64 * MiB, ge=1024)
    """JSON results stop with an error past this many bytes (Arrow and CSV stream instead)."""
    max_stream_bytes: int = Field(1 << 40, ge=1024)
    """An Arrow or CSV stream is cut (the connection aborted) past this many bytes."""
    query_threads: int = Field(2, ge=1)
    query_memory: str = "1GB"
    """DuckDB's memory_limit per query; DuckDB spills past it."""
    max_gather_bytes: ByteSize = Field(ByteSize(1 << 30), ge=1024)
    """Most rows (Arrow bytes, counted as they arrive) one query across several nodes may
    hold in its coordinator: what its fragments send there and its final step's result
    (that step runs in one process there); past it the query fails with 413 instead of
    taking the node's memory. A number of bytes or a size (``512MiB``, ``1GB``)."""
    flight_port: int = Field(0, ge=0, le=65535)
    """Port of this node's Flight server; 0 (the default) takes any free one, which the node
    reports in its start line and gossips to its peers."""
    advertise_host: str = "127.0.0.1"
    """Host peers use to reach this node's HTTP and Flight ports."""
    replication_factor: int = Field(2, ge=1)
    gossip_interval_seconds: float = Field(1.0, gt=0)
    ping_timeout_seconds: float = Field(0.5, gt=0)
    indirect_pings: int = Field(2, ge=0)
    """How many members are asked to ping a member that did not answer directly (SWIM's k)."""
    suspect_timeout_seconds: float = Field(5.0, gt=0)
    """How long a suspected member has to refute before it is declared dead."""
    join_timeout_seconds: float = Field(30.0, gt=0)
    """How long ``lake node --join`` waits for a member to accept it before it exits."""
    replicate_interval_seconds: float = Field(2.0, gt=0)
    scrub_interval_seconds: float = Field(3600.0, gt=0)

    @model_validator(mode="after")
    def _timeouts(self) -> LakeSettings:
        if self.query_timeout_seconds > self.max_query_timeout_seconds:
            raise ValueError(
                f"LAKE_QUERY_TIMEOUT_SECONDS ({self.query_timeout_seconds:g}) is over "
                f"LAKE_MAX_QUERY_TIMEOUT_SECONDS ({self.max_query_timeout_seconds:g})"
            )
        return self

    def backups(self) -> Path:
        """The directory the node's backup route writes under."""
        return (
            self.backup_dir if self.backup_dir is not None else Path(self.home) / "backups" / "lake"
        )

    def node_dir(self, node_id: str) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        return Path(self.home) / "lake" / node_id


def lake_settings(base: PlatformSettings | None = None, **overrides: Any) -> LakeSettings:
    """Lake settings from the environment, inheriting the platform's ``base`` (the gateway's
    home, secret ...) unless LAKE_* variables say otherwise (``platform_core.package_settings``)."""
    return package_settings(LakeSettings, base, **overrides)
