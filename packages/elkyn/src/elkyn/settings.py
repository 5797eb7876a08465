"""Elkyn's settings: ``ELKYN_*`` first, then ``PLATFORM_*`` (``ELKYN_HOME`` overrides the home)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from platform_core import (
    PackageSettings,
    PlatformSettings,
    SettingsError,
    is_loopback,
    package_settings,
)

__all__ = ["ElkynSettings", "check_dev", "elkyn_settings", "is_loopback"]


class ElkynSettings(PackageSettings):
    """Settings of the Elkyn server and plugin (env prefix ``ELKYN_``)."""

    model_config = SettingsConfigDict(env_prefix="ELKYN_", extra="ignore", frozen=True)

    path: Path | None = None
    """LMDB directory; default ``<home>/elkyn``."""
    memory: bool = False
    dev: bool = False
    """Dev mode: ``POST /auth/token`` and Firebase emulator conventions; loopback only."""
    keepalive_seconds: float = Field(10.0, gt=0)
    map_size: int = Field(64 << 20, gt=0)
    log_size: int = Field(100_000, gt=0)
    max_pending_events: int = Field(10_000, gt=0)
    """Events queued for one stream before it counts as stalled and is ended."""
    max_pending_bytes: int = Field(8 << 20, gt=0)
    """Bytes of changes queued for one stream before it counts as stalled and is ended (the
    client resumes with Last-Event-ID, or gets a fresh snapshot)."""
    max_streams: int = Field(10_000, gt=0)
    """Open SSE streams the server holds at once (each pins a queue of up to
    ``max_pending_bytes``); past it a new stream is a 429."""
    max_streams_per_user: int = Field(100, gt=0)
    """Open SSE streams one caller holds (by token ``uid``, else by client address)."""
    max_write_bytes: int = Field(256 * 1024 * 1024, gt=0)
    """Largest write body (Firebase: 256 MB)."""
    body_timeout_seconds: float = Field(30.0, gt=0)
    """Seconds a request body may stop arriving before the request is answered 408 and its
    connection closed, nothing written (a client that trickles or stalls a body)."""
    replica_of: str | None = None
    """The primary's base URL (``http://host:port`` for ``elkyn serve``, ``.../db`` behind a
    gateway): this database follows it and forwards writes to it. Unset: a primary."""
    forward_connect_timeout: float = Field(5.0, gt=0)
    """Seconds a replica waits to connect to the primary when forwarding a write."""
    forward_timeout: float = Field(60.0, gt=0)
    """Seconds a replica waits for each part of the primary's answer to a forwarded write."""
    forward_max_answer_bytes: int = Field(512 * 1024 * 1024, gt=0)
    """Largest answer a replica takes from the primary for a forwarded write (a PUT answers
    the value written, up to ``max_write_bytes`` and more when pretty-printed)."""
    catch_up_seconds: float = Field(5.0, ge=0)
    """How long a replica waits, after a forwarded write, for its follower to apply it before
    answering anyway (with ``X-Elkyn-Caught-Up: false``)."""
    max_replication_bytes: int = Field(1 << 30, gt=0)
    """Largest answer a replica takes from the primary's ``/.replication/*`` routes."""

    election_port: int | None = Field(None, ge=1, le=65535)
    """The Raft port of this server in an election cluster (``elkyn.election``); unset: no
    election (a primary, or a fixed replica with ``replica_of``)."""
    election_peers: str = ""
    """The election cluster, every server (this one too, or not): ``RAFT_HOST:PORT=ELKYN_URL``
    separated by commas."""
    sync_replicas: int | None = Field(None, ge=0)
    """Replicas that must have a write durably before the primary acknowledges it (semi-
    synchronous); unset: ``fencing.default_sync_replicas`` of the election's servers (0 alone, 1
    with 2-4, 2 with 5-6: every majority then holds every acknowledged write)."""
    sync_timeout_seconds: float = Field(5.0, gt=0)
    """How long a primary waits for those replicas before answering 503 (not acknowledged)."""
    election_compact_seconds: float = Field(300.0, gt=0)
    """How often (at most) the election's Raft log is compacted into ``election.dump`` beside
    its journal (pysyncobj's ``logCompactionMinTime``; also after 5,000 entries)."""

    @field_validator("replica_of", mode="after")
    @classmethod
    def _primary_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")) or len(value) > 2048:
            raise ValueError(
                f"the primary's base URL (http://host:port, or http://host:port/db behind a "
                f"gateway), not {value[:100]!r}"
            )
        return value.rstrip("/")

    def db_path(self) -> Path:
        return self.path if self.path is not None else Path(self.home) / "elkyn"


def elkyn_settings(base: PlatformSettings | None = None, **overrides: Any) -> ElkynSettings:
    """Elkyn settings from the environment, inheriting the platform's ``base`` (the gateway's
    home, secret ...) unless ELKYN_* variables say otherwise (``platform_core.package_settings``)."""
    return package_settings(ElkynSettings, base, **overrides)


def check_dev(settings: ElkynSettings, host: str) -> None:
    if settings.dev and not is_loopback(host):
        raise SettingsError(
            f"--dev mints tokens without a password, so it only binds a loopback address "
            f"(127.0.0.1, ::1), not {host!r}; drop --dev or bind 127.0.0.1"
        )
