"""Ray is an extra: without it pipelines run inline and on the local pool, and asking for the
Ray backend without Ray, or with a Ray outside the supported range, is one clear error."""

from __future__ import annotations

import subprocess
import sys
import types
from importlib.metadata import requires
from pathlib import Path

import pytest

import elytra
from elytra import BackendUnavailableError
from elytra._ray import INSTALL_RAY, SUPPORTED_RAY, check_ray_version, ray_supported


def test_the_extra_declares_the_range_the_backend_checks() -> None:
    declared = [r for r in requires("platform-elytra") or [] if r.startswith("ray")]
    assert len(declared) == 1, declared
    spec, marker = (part.strip() for part in declared[0].split(";"))
    assert marker.replace('"', "'") == "extra == 'ray'"
    assert sorted(spec.removeprefix("ray").split(",")) == sorted(SUPPORTED_RAY.split(","))


def test_ray_is_not_a_requirement_without_the_extra() -> None:
    plain = [r for r in requires("platform-elytra") or [] if "extra ==" not in r]
    assert not [r for r in plain if r.split(";")[0].strip().startswith("ray")], plain


@pytest.mark.parametrize(
    ("version", "ok"),
    [("2.49.2", False), ("2.50.0", True), ("2.60.0", True), ("2.99.1rc1", True), ("3.0.0", False)],
)
def test_the_range_has_the_bounds_it_says(version: str, ok: bool) -> None:
    assert ray_supported(version) is ok


def test_asking_for_ray_without_ray_names_the_versions_and_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(BackendUnavailableError) as caught:
        elytra.RayBackend()
    message = caught.value.message
    assert "not installed" in message
    assert SUPPORTED_RAY in message
    assert INSTALL_RAY in message
    assert caught.value.status == 503


def test_connect_with_the_ray_backend_without_ray_is_the_same_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pyarrow as pa

    monkeypatch.setitem(sys.modules, "ray", None)
    with (
        pytest.raises(BackendUnavailableError, match=r"platform-elytra\[ray\]"),
        elytra.connect(home=tmp_path, backend="ray", progress=False) as s,
    ):
        s.from_arrow(pa.table({"v": [1, 2]})).collect()  # the backend starts on first use


@pytest.mark.parametrize("version", ["2.40.0", "3.1.0"])
def test_a_ray_outside_the_range_is_refused_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    fake = types.ModuleType("ray")
    fake.__version__ = version  # type: ignore[attr-defined]
    fake.init = lambda **_: pytest.fail("Ray must not be started")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(BackendUnavailableError) as caught:
        elytra.RayBackend()
    message = caught.value.message
    assert f"Ray {version} is installed here" in message
    assert SUPPORTED_RAY in message
    assert INSTALL_RAY in message


def test_the_locked_ray_is_in_the_range() -> None:
    ray = pytest.importorskip("ray")
    check_ray_version(ray.__version__)


def test_pipelines_run_inline_and_on_the_local_pool_with_ray_unimportable(tmp_path: Path) -> None:
    """In a fresh interpreter where `import ray` fails, as in an install without the extra."""
    code = """
import sys
sys.modules["ray"] = None
import pyarrow as pa
import elytra
table = pa.table({"k": ["a", "b", "a"], "v": [1, 2, 3]})
for backend in ("inline", "local"):
    with elytra.connect(home=sys.argv[1], backend=backend, workers=1, progress=False) as s:
        rows = s.from_arrow(table).group_by("k").agg("sum(v) AS t").sort("k").collect()
        print(backend, rows.to_pylist())
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # an integer sum is DuckDB's HUGEINT, decimal(38, 0) in Arrow
    expected = "[{'k': 'a', 't': Decimal('4')}, {'k': 'b', 't': Decimal('2')}]"
    assert out.stdout.splitlines() == [f"inline {expected}", f"local {expected}"]
