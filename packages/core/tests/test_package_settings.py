"""Package settings inherit the platform's through ``package_settings``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from platform_core import PackageSettings, load_settings, package_settings


class DemoSettings(PackageSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", frozen=True)

    depth: int = 3


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PLATFORM_HOME",
        "PLATFORM_SECRET",
        "PLATFORM_LOG_LEVEL",
        "DEMO_HOME",
        "DEMO_DEPTH",
    ):
        monkeypatch.delenv(name, raising=False)


def test_a_package_inherits_the_platforms_home_secret_and_level(tmp_path: Path) -> None:
    base = load_settings(home=tmp_path / "gw", secret="s" * 32, log_level="debug")
    demo = package_settings(DemoSettings, base)
    assert demo.home == tmp_path / "gw"
    assert demo.secret is not None
    assert demo.secret.get_secret_value() == "s" * 32
    assert demo.log_level == "debug"
    assert demo.depth == 3


def test_the_packages_own_variable_and_overrides_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = load_settings(home=tmp_path / "gw")
    monkeypatch.setenv("DEMO_HOME", str(tmp_path / "own"))
    monkeypatch.setenv("DEMO_DEPTH", "7")
    demo = package_settings(DemoSettings, base)
    assert demo.home == tmp_path / "own"
    assert demo.depth == 7
    assert package_settings(DemoSettings, base, home=tmp_path / "given").home == tmp_path / "given"


def test_without_a_base_it_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "env"))
    assert package_settings(DemoSettings).home == tmp_path / "env"


def test_a_base_of_the_same_class_is_kept(tmp_path: Path) -> None:
    demo = package_settings(DemoSettings, home=tmp_path)
    assert package_settings(DemoSettings, demo) is demo
    assert package_settings(DemoSettings, demo, depth=9).home == tmp_path
