from pathlib import Path
from typing import ClassVar

import pytest
from pydantic_settings import SettingsConfigDict

from platform_core import PackageSettings, PlatformSettings, SettingsError, load_settings


class LakeLikeSettings(PackageSettings):
    model_config: ClassVar[SettingsConfigDict] = {
        **PackageSettings.model_config,
        "env_prefix": "TESTPKG_",
    }
    flight_port: int = 8815


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith(("PLATFORM_", "TESTPKG_")):
            monkeypatch.delenv(key)


def test_defaults():
    s = load_settings()
    assert s.home == Path(".platform")
    assert (s.host, s.port, s.log_level) == ("127.0.0.1", 8080, "info")
    assert s.secret is None


def test_platform_prefix_is_read(monkeypatch):
    monkeypatch.setenv("PLATFORM_HOME", "/data/p")
    monkeypatch.setenv("PLATFORM_PORT", "9000")
    s = load_settings()
    assert (s.home, s.port) == (Path("/data/p"), 9000)


def test_package_prefix_overrides_platform(monkeypatch):
    monkeypatch.setenv("PLATFORM_HOME", "/data/p")
    assert load_settings(LakeLikeSettings).home == Path("/data/p")
    monkeypatch.setenv("TESTPKG_HOME", "/data/lake")
    assert load_settings(LakeLikeSettings).home == Path("/data/lake")
    # The platform-wide view is unchanged by a package's override.
    assert load_settings(PlatformSettings).home == Path("/data/p")


def test_overrides_win_over_environment(monkeypatch):
    monkeypatch.setenv("PLATFORM_PORT", "9000")
    assert load_settings(port=9100).port == 9100


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("PLATFORM_PORT", "eighty", "PLATFORM_PORT='eighty'"),
        ("PLATFORM_LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
    ],
)
def test_bad_value_names_value_and_allowed(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert needle in str(info.value)
    assert info.value.status == 400


def test_bad_package_value(monkeypatch):
    monkeypatch.setenv("TESTPKG_FLIGHT_PORT", "x")
    with pytest.raises(SettingsError, match=r"TESTPKG_FLIGHT_PORT \(or PLATFORM_FLIGHT_PORT\)='x'"):
        load_settings(LakeLikeSettings)


def test_package_error_names_both_variables(monkeypatch):
    monkeypatch.setenv("PLATFORM_FLIGHT_PORT", "x")
    with pytest.raises(SettingsError, match=r"TESTPKG_FLIGHT_PORT \(or PLATFORM_FLIGHT_PORT\)='x'"):
        load_settings(LakeLikeSettings)


def test_log_level_is_case_insensitive_and_home_expands_user(monkeypatch):
    monkeypatch.setenv("PLATFORM_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("PLATFORM_HOME", "~/platform-data")
    s = load_settings()
    assert s.log_level == "warning"
    assert s.home == Path.home() / "platform-data"


@pytest.mark.parametrize("var", ["PLATFORM_SECRET", "PLATFORM_ADMIN_PASSWORD", "PLATFORM_TOKEN"])
def test_empty_secret_values_mean_unset(monkeypatch, var):
    monkeypatch.setenv(var, "")
    assert getattr(load_settings(), var.removeprefix("PLATFORM_").lower()) is None


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_port_range(monkeypatch, port):
    monkeypatch.setenv("PLATFORM_PORT", port)
    with pytest.raises(SettingsError, match=f"PLATFORM_PORT='{port}'"):
        load_settings()


def test_misspelt_override_is_refused():
    with pytest.raises(SettingsError, match=r"unknown settings \['prot'\]"):
        load_settings(prot=1)
