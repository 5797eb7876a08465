import importlib
import sys
import textwrap

import pytest

from platform_core import PLUGIN_GROUP, Plugin, PluginError, discover_plugins


def _router(settings):
    return object()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "Bad Name"}, "plugin name 'Bad Name' is not allowed"),
        ({"name": "x", "prefix": "db", "router": _router}, "prefix 'db'"),
        ({"name": "x", "prefix": "/db/", "router": _router}, "prefix '/db/'"),
        ({"name": "x", "prefix": "/db", "router": _router, "app": _router}, "give one"),
        ({"name": "x", "prefix": "/db"}, "no router or app"),
    ],
)
def test_malformed_plugins_are_refused(kwargs, needle):
    with pytest.raises(PluginError, match=needle):
        Plugin(**kwargs)


def test_cli_only_plugin_needs_no_prefix():
    assert Plugin(name="emsqrt", cli=object()).prefix == ""


def _install(tmp_path, monkeypatch, dist: str, module_source: str, entries: dict[str, str]) -> None:
    """Make a throw-away distribution importable and discoverable for this test only."""
    (tmp_path / f"{dist}.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / f"{dist}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\n{lines}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()


SOURCE = """
from platform_core import Plugin

def _router(settings):
    return None

def alpha():
    return Plugin(name="alpha", prefix="/api/alpha", router=_router)

def beta():
    return Plugin(name="beta", prefix="/beta", app=_router)

def clash():
    return Plugin(name="gamma", prefix="/api/alpha/sub", router=_router)

def broken():
    raise RuntimeError("boom")

def not_a_plugin():
    return 42
"""


def test_discovery_loads_entry_points_sorted_by_name(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, "tp_ok", SOURCE, {"b": "tp_ok:beta", "a": "tp_ok:alpha"})
    found = [p for p in discover_plugins() if p.name in {"alpha", "beta"}]
    assert [(p.name, p.prefix) for p in found] == [("alpha", "/api/alpha"), ("beta", "/beta")]
    assert "tp_ok" in sys.modules


@pytest.mark.parametrize(
    ("entries", "needle"),
    [
        ({"a": "tp_bad:alpha", "c": "tp_bad:clash"}, "overlapping URL prefixes"),
        ({"a": "tp_bad:alpha", "a2": "tp_bad:alpha"}, "two installed plugins are named 'alpha'"),
        ({"x": "tp_bad:broken"}, r"could not load plugin entry point 'x' \(tp_bad:broken\): boom"),
        ({"x": "tp_bad:not_a_plugin"}, "returned int, not a platform_core.Plugin"),
        ({"x": "tp_bad:missing"}, "could not load plugin entry point 'x'"),
    ],
)
def test_discovery_errors_name_the_culprit(tmp_path, monkeypatch, entries, needle):
    _install(tmp_path, monkeypatch, "tp_bad", SOURCE, entries)
    with pytest.raises(PluginError, match=needle):
        discover_plugins()
