"""EMSQRT_* settings, with the spill directory defaulting under PLATFORM_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from emsqrt import EngineConfig, parse_size
from platform_core import BadInputError, SettingsError


def test_env_settings_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EMSQRT_SPILL_DIR", raising=False)
    monkeypatch.setenv("EMSQRT_MEM_CAP_BYTES", "1048576")
    monkeypatch.setenv("EMSQRT_MAX_PARALLEL_TASKS", "3")
    cfg = EngineConfig.from_settings()
    assert cfg.mem_cap_bytes == 1 << 20
    assert cfg.max_parallel_tasks == 3
    assert Path(cfg.spill_dir) == tmp_path / "home" / "spill"
    monkeypatch.setenv("EMSQRT_SPILL_DIR", str(tmp_path / "fast"))
    assert Path(EngineConfig.from_settings().spill_dir) == tmp_path / "fast"
    assert EngineConfig.from_settings(mem_cap_bytes=4096).mem_cap_bytes == 4096
    monkeypatch.setenv("EMSQRT_MEM_CAP_BYTES", "-5")
    with pytest.raises(SettingsError, match="EMSQRT_MEM_CAP_BYTES"):
        EngineConfig.from_settings()


def test_sizes() -> None:
    """The Python API's mem_cap reads sizes as platform_core.parse_bytes does."""
    assert parse_size("64MB") == 64 * 10**6
    assert parse_size("64MiB") == 64 << 20
    assert parse_size("512 KiB") == 512 << 10
    assert parse_size("1gb") == 10**9
    assert parse_size(100) == 100
    with pytest.raises(BadInputError, match="mem_cap: not a size"):
        parse_size("lots")
    with pytest.raises(BadInputError, match="mem_cap: '64' has no unit"):
        parse_size("64")
