"""Executor settings: ``EMSQRT_*`` variables, falling back to ``PLATFORM_*`` (for ``home``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from platform_core import MemCap, PackageSettings

__all__ = ["DEFAULT_CAP_BYTES", "EmsqrtSettings"]

DEFAULT_CAP_BYTES = 512 * 1024 * 1024


class EmsqrtSettings(PackageSettings):
    """``EMSQRT_MEM_CAP_BYTES``, ``EMSQRT_SPILL_DIR`` (default ``$PLATFORM_HOME/spill``),
    ``EMSQRT_MAX_PARALLEL_TASKS`` and ``EMSQRT_SPILL_CODEC`` (lz4 or zstd)."""

    model_config = SettingsConfigDict(env_prefix="EMSQRT_", extra="ignore", frozen=True)

    mem_cap_bytes: MemCap = MemCap(DEFAULT_CAP_BYTES)
    """The cap: bytes, or a size with a unit (``512MiB``); > 0."""
    spill_dir: Path | None = None
    max_parallel_tasks: int = Field(1, ge=1, le=64)
    spill_codec: str = Field("lz4", pattern="^(lz4|zstd)$")

    def resolved_spill_dir(self) -> Path:
        """The spill directory: ``spill_dir`` if set, else ``<home>/spill``."""
        return (self.spill_dir or self.home / "spill").expanduser()
