"""platform_core.lazy: a package's names resolve on first use, from the module that defines them."""

from __future__ import annotations

import sys
import types

import pytest

from platform_core.lazy import lazy_exports


@pytest.fixture
def package(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A package `lazypkg` whose `Thing` lives in `lazypkg.things`, imported on first use."""
    pkg = types.ModuleType("lazypkg")
    pkg.__path__ = []
    things = types.ModuleType("lazypkg.things")
    loaded: list[str] = []

    class Thing:
        pass

    def load(name: str, package: str | None = None) -> types.ModuleType:
        assert (name, package) == (".things", "lazypkg")
        loaded.append(name)
        return things

    things.Thing = Thing  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lazypkg", pkg)
    monkeypatch.setattr("platform_core.lazy.importlib.import_module", load)
    pkg.__getattr__, pkg.__dir__ = lazy_exports("lazypkg", {"Thing": ".things"})  # type: ignore[attr-defined]
    pkg.loaded = loaded  # type: ignore[attr-defined]
    return pkg


def test_a_name_is_imported_once_on_first_use(package: types.ModuleType) -> None:
    assert package.loaded == []  # type: ignore[attr-defined]
    first = package.Thing  # type: ignore[attr-defined]
    assert package.Thing is first  # type: ignore[attr-defined]
    assert package.loaded == [".things"]  # type: ignore[attr-defined]
    assert vars(package)["Thing"] is first  # kept: no second lookup


def test_an_unknown_name_is_an_attribute_error(package: types.ModuleType) -> None:
    with pytest.raises(AttributeError, match="'lazypkg' has no attribute 'Nothing'"):
        _ = package.Nothing  # type: ignore[attr-defined]
    assert package.loaded == []  # type: ignore[attr-defined]


def test_dir_lists_the_lazy_names(package: types.ModuleType) -> None:
    assert "Thing" in dir(package)
