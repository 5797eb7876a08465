from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError
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


@pytest.mark.parametrize(
    "address", ["10.0.0.5:8080", "db-1.example.org:443", "[::1]:8080", "localhost:1"]
)
def test_a_join_address_is_host_and_port(address: str) -> None:
    assert PlatformSettings(join=address).join == address


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("nonsense", "HOST:PORT"),
        ("http://10.0.0.5:8080", "HOST:PORT"),
        ("10.0.0.5:0", "between 1 and 65535"),
        ("10.0.0.5:99999", "between 1 and 65535"),
        ("[::1:80", "IPv6"),
        ("256.1.1.1:80", "IPv4"),
        ("exa mple:80", "host name"),
        ("-bad-.org:80", "host name"),
    ],
)
def test_a_malformed_join_address_says_what_is_wrong(address: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        PlatformSettings(join=address)
