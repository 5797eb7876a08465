"""Plugins keep no mutable module state: they meet through the gateway's services (issue 27).

Two checks, each shown to catch a planted global:

- Running: the real plugins (lake, elkyn, elytra with the browser backend, the peer and worker
  routes) and a planted plugin run in one gateway in this process; a dataset is ingested and a
  job run through it. Every global of every loaded module of the plugins' packages and the
  gateway's is
  fingerprinted (a container's contents, an object's attributes, what a name is bound to)
  after the app is built, while it serves, and after it stopped: only the planted plugin's
  global may have changed.
- Source: the modules the entry points name, and the services modules, have no ``global``
  statement and bind no module-level name to a mutable value (a dict, list or set, a
  comprehension, an instance of anything but a few immutable builders).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import sys
import types
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient
from jobs_helpers import bearer, wait_job

from lake.services import LAKE_NODE
from platform_core import PLUGIN_GROUP, PlatformSettings, Plugin, discover_plugins
from platform_gateway import create_app
from platform_gateway.testing import free_port, write_plugin_dist

OURS = ("lake", "elkyn", "elytra")
"""The workspace packages whose plugins the platform runs."""

PLANTED = '''
"""A plugin that keeps what its lifespan opened in a module global (what the check forbids)."""
from contextlib import asynccontextmanager

from platform_core import Plugin

_OPENED = {}


@asynccontextmanager
async def lifespan(settings):
    _OPENED["db"] = object()
    yield
    _OPENED.pop("db")
    _OPENED["closed"] = True


def plugin():
    return Plugin(name="planted", lifespan=lifespan)
'''

# --------------------------------------------------------------------------------------------
# running: globals before, while serving, after


CODE = (
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    type,
    logging.Logger,
)
"""Modules, functions, classes and loggers: compared by identity only (a logger caches)."""


def _fingerprint(value: Any) -> tuple[Any, ...]:
    """What would differ if ``value`` were mutated or replaced (shallow: identity of parts)."""
    if isinstance(value, CODE):
        return ("code", id(value))
    if isinstance(value, dict):
        return ("dict", id(value), tuple((repr(k), id(v)) for k, v in value.items()))
    if isinstance(value, list | set):
        return (type(value).__name__, id(value), len(value), tuple(sorted(map(id, value))))
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):
        return ("object", id(value), tuple((k, id(v)) for k, v in sorted(attrs.items())))
    return ("value", id(value))


def _snapshot(prefixes: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """The fingerprint of every global of every loaded module under ``prefixes``."""
    out: dict[str, tuple[Any, ...]] = {}
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in prefixes:
            continue
        for attr, value in list(vars(module).items()):
            if not attr.startswith("__"):
                out[f"{name}.{attr}"] = _fingerprint(value)
    return out


def _changed(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> set[str]:
    """Globals mutated or rebound since ``before``, or bound since in a module seen then.

    Not a change: a module imported later (it appears whole), a name imported later (code),
    and a package's lazy export bound on first use (the same object another module holds
    under that name, e.g. ``elkyn.ADMIN`` is ``elkyn.store.ADMIN``)."""
    modules_before = {k.rsplit(".", 1)[0] for k in before}
    held: dict[str, set[tuple[str, int]]] = {}
    for key, print_ in after.items():
        module, attr = key.rsplit(".", 1)
        held.setdefault(attr, set()).add((module, print_[1]))

    def reexport(key: str, print_: tuple[Any, ...]) -> bool:
        module, attr = key.rsplit(".", 1)
        return any(m != module and i == print_[1] for m, i in held.get(attr, ()))

    return {
        k
        for k, v in after.items()
        if (k in before and before[k] != v)
        or (
            k not in before
            and k.rsplit(".", 1)[0] in modules_before
            and v[0] != "code"
            and not reexport(k, v)
        )
    }


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Plugin]:
    directory = write_plugin_dist(
        tmp_path / "planted",
        dist="planted-state",
        module="planted_state",
        source=PLANTED,
        entry_points={"planted": "planted_state:plugin"},
    )
    sys.path.insert(0, str(directory))
    try:
        found = [p for p in discover_plugins() if p.name == "planted"]
        assert len(found) == 1
        yield found[0]
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("planted_state", None)


def _ours() -> list[Plugin]:
    modules = {ep.name: ep.module for ep in entry_points(group=PLUGIN_GROUP)}
    plugins = [p for p in discover_plugins() if modules.get(p.name, "").split(".")[0] in OURS]
    assert {"lake", "lake-peer", "elkyn", "elytra", "workers"} <= {p.name for p in plugins}
    return plugins


def test_no_plugin_keeps_state_in_a_module_global_while_the_gateway_runs(
    tmp_path: Path, planted: Plugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "LAKE_FLIGHT_PORT": "0",
        "ELYTRA_WORKERS": "1",
        "ELYTRA_BACKEND": "browser",
        "ELYTRA_BROWSER_WAIT_SECONDS": "0.1",
        "LAKE_CHUNK_BYTES": str(64 * 1024),
    }.items():
        monkeypatch.setenv(name, value)
    for name in [n for n in __import__("os").environ if n.startswith("PLATFORM_")]:
        monkeypatch.delenv(name)
    settings = PlatformSettings(home=tmp_path / "home", port=free_port())
    app = create_app(settings, [*_ours(), planted])
    # platform_core is not scanned: its process-wide state is by design (the ULID clock of
    # `ids`, and the revocation hooks `auth` consults in every verifier the process runs).
    prefixes = (*OURS, "platform_gateway", "planted_state")
    before = _snapshot(prefixes)
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 5 AS grp, i * 0.5 AS amount FROM range(20000) t(i)) "
        f"TO '{csv}' (HEADER)"
    )
    with TestClient(app) as client:
        token = app.state.signer.issue("ada")
        h = bearer(token)
        node = app.state.services.lookup(LAKE_NODE)  # the services, as a plugin sees them
        node.ingest(csv, "sales", owner="ada", admin=False)
        assert client.get("/api/lake/datasets/sales", headers=h).status_code == 200
        job = client.post(
            "/api/jobs",
            headers=h,
            json={
                "pipeline": {
                    "source": {"dataset": "sales"},
                    "steps": [{"group_by": ["grp"], "agg": ["sum(amount) AS total"]}],
                }
            },
        )
        assert job.status_code in (200, 201, 202), job.text
        done = wait_job(client, job.json()["id"], h)  # type: ignore[arg-type]
        assert done["state"] == "succeeded", done
        assert client.get("/db/.json", headers=h).status_code in (200, 401)
        admin = bearer(app.state.signer.issue("ops", admin=True))
        assert client.get("/api/platform/status", headers=admin).status_code == 200
        running = _snapshot(prefixes)
    after = _snapshot(prefixes)
    assert len(before) > 200, "too few globals seen: the check would pass vacuously"
    changed = _changed(before, running) | _changed(before, after)
    assert changed == {"planted_state._OPENED"}, sorted(changed)


# --------------------------------------------------------------------------------------------
# source: no `global`, no mutable module-level bindings

IMMUTABLE_BUILDERS = {
    "getLogger",
    "TypeVar",
    "ServiceKey",
    "frozenset",
    "tuple",
    "compile",
    "NewType",
    "lazy_exports",
}


def _called(node: ast.expr) -> str:
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _mutable(value: ast.expr | None) -> bool:
    if value is None:
        return False
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        return _called(value) not in IMMUTABLE_BUILDERS
    if isinstance(value, ast.Tuple):
        return any(_mutable(e) for e in value.elts)
    return False


def module_state_findings(source: str) -> list[str]:
    """Each ``global`` statement and each module-level binding of a mutable value in ``source``."""
    tree = ast.parse(source)
    found = [
        f"line {n.lineno}: global {', '.join(n.names)}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Global)
    ]

    def top(body: list[ast.stmt]) -> Iterator[ast.stmt]:
        for stmt in body:
            yield stmt
            if isinstance(stmt, ast.If | ast.Try):
                yield from top(stmt.body)
                yield from top(stmt.orelse)

    for stmt in top(tree.body):
        if isinstance(stmt, ast.Assign):
            targets = [ast.unparse(t) for t in stmt.targets]
            value = stmt.value
        elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
            targets, value = [ast.unparse(stmt.target)], stmt.value
        else:
            continue
        if targets == ["__all__"]:
            continue
        if isinstance(stmt, ast.AugAssign) or _mutable(value):
            found.append(f"line {stmt.lineno}: {', '.join(targets)} = {ast.unparse(value)[:60]}")
    return found


def _plugin_modules() -> list[str]:
    names = {
        ep.module for ep in entry_points(group=PLUGIN_GROUP) if ep.module.split(".")[0] in OURS
    }
    names |= {f"{pkg}.services" for pkg in OURS}
    return sorted(names)


def test_plugin_modules_have_no_global_statement_or_mutable_module_binding() -> None:
    modules = _plugin_modules()
    assert {"lake.plugin", "elkyn.plugin", "elytra.plugin", "elytra.browser.plugin"} <= set(modules)
    bad = {}
    for name in modules:
        source = inspect.getsource(importlib.import_module(name))
        assert "def plugin" in source or "ServiceKey(" in source, name
        if findings := module_state_findings(source):
            bad[name] = findings
    assert bad == {}


@pytest.mark.parametrize(
    "planted",
    [
        "_STATE: dict[str, Any] = {}",
        "_HOLDER = NodeHolder()",
        "_PLATFORM = _Platform()",
        "_current: list[BrowserBackend] = []",
        "def open(x):\n    global _NODE\n    _NODE = x",
        "if True:\n    _SEEN = set()",
        "_COUNTS = (dict(), 1)",
    ],
)
def test_the_source_check_catches_what_the_plugins_used_to_keep(planted: str) -> None:
    clean = "import logging\nlog = logging.getLogger(__name__)\n__all__ = ['plugin']\nX = 1\n"
    assert module_state_findings(clean) == []
    assert len(module_state_findings(clean + planted + "\n")) == 1


def test_the_running_check_sees_a_mutated_object_a_rebinding_and_a_new_global() -> None:
    module = types.ModuleType("planted_probe")
    holder = types.SimpleNamespace(node=None)
    module.HOLDER, module.ITEMS, module.NAME = holder, [], None  # type: ignore[attr-defined]
    sys.modules["planted_probe"] = module
    try:
        before = _snapshot(("planted_probe",))
        holder.node = object()
        module.ITEMS.append(1)  # type: ignore[attr-defined]
        module.NAME = object()  # type: ignore[attr-defined]
        module.LATER = {}  # type: ignore[attr-defined]
        assert _changed(before, _snapshot(("planted_probe",))) == {
            "planted_probe.HOLDER",
            "planted_probe.ITEMS",
            "planted_probe.NAME",
            "planted_probe.LATER",
        }
    finally:
        del sys.modules["planted_probe"]
