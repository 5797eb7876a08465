"""cap_memory: an allocation past the headroom fails in the process instead of killing it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from platform_core import PlatformSettings, SettingsError, load_settings

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS, /proc")


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_an_allocation_past_the_headroom_is_a_memory_error_and_the_process_goes_on() -> None:
    out = _run(
        """
        import resource
        from platform_core import address_space, cap_memory
        limit = cap_memory(256 << 20)
        assert limit is not None and 0 < limit - address_space() <= 256 << 20
        assert resource.getrlimit(resource.RLIMIT_AS)[0] == limit
        try:
            blob = bytearray(1 << 30)
        except MemoryError:
            print("refused")
        small = bytearray(64 << 20)  # still room for ordinary work
        print(len(small) >> 20)
        """
    )
    assert out.splitlines() == ["refused", "64"]


def test_duckdb_values_past_the_cap_fail_as_out_of_memory() -> None:
    out = _run(
        """
        import duckdb
        from platform_core import cap_memory
        conn = duckdb.connect(config={"memory_limit": "128MB", "threads": 1})
        conn.execute("SELECT 1").fetchall()
        cap_memory(1 << 30)
        try:
            conn.execute("SELECT len(repeat('x', 3000000000))").fetchall()
        except duckdb.OutOfMemoryException:
            print("oom")
        print(conn.execute("SELECT sum(i) FROM range(1000) t(i)").fetchone()[0])
        """
    )
    assert out.splitlines() == ["oom", "499500"]


def test_a_stricter_limit_in_place_is_kept_and_zero_means_no_cap() -> None:
    out = _run(
        """
        import resource
        from platform_core import address_space, cap_memory
        assert cap_memory(0) is None
        assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
        tight = address_space() + (512 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (tight, resource.RLIM_INFINITY))
        print(cap_memory(8 << 30) == tight)
        """
    )
    assert out == "True"


def test_the_setting_takes_sizes_with_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_MEMORY_HEADROOM", "2GB")
    assert load_settings(PlatformSettings).memory_headroom == 2_000_000_000
    monkeypatch.setenv("PLATFORM_MEMORY_HEADROOM", "512MiB")
    assert load_settings(PlatformSettings).memory_headroom == 512 << 20
    monkeypatch.setenv("PLATFORM_MEMORY_HEADROOM", "lots")
    with pytest.raises(SettingsError, match=r"PLATFORM_MEMORY_HEADROOM=.lots.: could not parse"):
        load_settings(PlatformSettings)


def test_widen_cap_raises_a_cap_and_leaves_no_cap_alone() -> None:
    out = _run(
        """
        import resource
        from platform_core import cap_memory, widen_cap
        print(widen_cap(1 << 30))  # no cap: nothing to widen
        limit = cap_memory(256 << 20)
        assert widen_cap(1 << 30) == limit + (1 << 30)
        assert resource.getrlimit(resource.RLIMIT_AS)[0] == limit + (1 << 30)
        blob = bytearray(768 << 20)  # past the first headroom, within the widened one
        print(len(blob) >> 20)
        """
    )
    assert out.splitlines() == ["None", "768"]
