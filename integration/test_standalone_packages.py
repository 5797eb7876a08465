"""Packages install and stand alone: the light core, missing extras as clear errors, bounded
workspace requirements, the changelog rule (break-tests of issue 32, found from outside).

Each test fails on the code it was written against; the docstring says what a user saw.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRA_MODULES = ["jwt", "argon2", "fastapi", "starlette", "uvicorn", "httpx", "typer", "rich"]
"""platform-core[service]'s top-level modules (and [parse]'s sqlglot, added where needed)."""


def _run(
    code: str,
    *,
    blocked: Sequence[str] = (),
    env_path: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``blocked`` modules import as if not installed."""
    block = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    env = None if env_path is None else {**os.environ, "PYTHONPATH": str(env_path)}
    return subprocess.run(
        [sys.executable, "-c", block + code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


# --- platform-core installed alone ------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("from platform_core import *\nprint(Schema, parse_type('i64'))", id="star"),
        pytest.param("import platform_core, pydoc\npydoc.render_doc(platform_core)", id="help"),
        pytest.param(
            "import platform_core, inspect\ninspect.getmembers(platform_core)", id="getmembers"
        ),
    ],
)
def test_the_light_core_can_be_listed(code: str) -> None:
    """`pip install platform-core` (no extra), then `from platform_core import *`,
    `help(platform_core)` or `inspect.getmembers(platform_core)`: each raised MissingExtraError
    (platform_core.User needs 'argon2'), because __all__ and dir() list the service kit's
    User, UserStore and auth, whose lookup raises an ImportError, not an AttributeError
    (`hasattr(platform_core, "User")` raises too). Listing the light core should work."""
    out = _run(code + "\n", blocked=[*EXTRA_MODULES, "sqlglot"])
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1]


def test_submodules_are_attributes_after_import_platform_core() -> None:
    """Before the split (a417fdb) `import platform_core; platform_core.settings.PlatformSettings`
    (or `.types.I64`, `.schema.Schema`, `.users.UserStore`) worked; now each is an
    AttributeError ("module 'platform_core' has no attribute 'settings'"): the lazy package
    offers only auth, cli, http and tls as attributes. The README's module table names them
    all, and says no import changes."""
    out = _run(
        "import platform_core\n"
        "print(platform_core.settings.PlatformSettings, platform_core.types.I64,\n"
        "      platform_core.schema.Schema, platform_core.users.UserStore)\n"
    )
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1]


def test_serving_without_the_service_extra_is_a_missing_extra_error() -> None:
    """`from platform_core.service import serve` works without the [service] extra, but calling
    it raised a bare `ModuleNotFoundError: No module named 'uvicorn'`, not the MissingExtraError
    naming `pip install 'platform-core[service]'` that every other service-kit name gives."""
    code = (
        "from platform_core import MissingExtraError, bind\n"
        "from platform_core.service import serve\n"
        "async def app(scope, receive, send): pass\n"
        "try:\n"
        "    serve(app, bind('127.0.0.1', 0), what='demo', host='127.0.0.1', log_level='info')\n"
        "except MissingExtraError as exc:\n"
        "    print(exc.message)\n"
    )
    out = _run(code, blocked=["uvicorn"])
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1]
    assert "pip install 'platform-core[service]'" in out.stdout


# --- elytra's Ray backend -----------------------------------------------------------------------


def test_a_ray_that_is_not_ray_is_one_clear_error(tmp_path: Path) -> None:
    """A `ray.py` of the user's own beside the script (or a `ray/` folder where Ray is not
    installed) is what `import ray` finds: asking for the Ray backend then raised
    `AttributeError: module 'ray' has no attribute '__version__'` (elytra/_ray.py,
    import_ray), not the BackendUnavailableError naming the versions and the install line."""
    (tmp_path / "ray.py").write_text("# the user's own helper, not Ray\n")
    code = (
        "from elytra._ray import import_ray\n"
        "from elytra.errors import BackendUnavailableError\n"
        "try:\n"
        "    import_ray()\n"
        "except BackendUnavailableError as exc:\n"
        "    print('clear:', exc)\n"
    )
    out = _run(code, env_path=tmp_path, cwd=tmp_path)
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1]
    assert "platform-elytra[ray]" in out.stdout


# --- versions between the workspace's packages ---------------------------------------------------


def _members() -> dict[str, Path]:
    paths = [*ROOT.glob("packages/*/pyproject.toml"), ROOT / "apps/gateway/pyproject.toml"]
    return {tomllib.loads(p.read_text())["project"]["name"]: p for p in paths}


def test_requirements_on_workspace_packages_have_a_lower_bound() -> None:
    """Every platform-* requirement is bare (`platform-emsqrt`, `platform-core[service]`), so
    the wheels say any version will do. A platform-emsqrt 0.1.0 wheel built before
    `emsqrt.planning` existed (c42fc67~1) satisfies `pip install platform-elytra`, and then
    `import elytra` fails: ModuleNotFoundError: No module named 'emsqrt.planning'. Ranges
    with tested lower bounds are promised for every requirement; these have none."""
    members = _members()
    bare = []
    for dist, pyproject in members.items():
        project = tomllib.loads(pyproject.read_text())["project"]
        reqs = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            reqs += extra
        for req in reqs:
            name = re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower()
            if name in members and not re.search(r">=|~=|==", req):
                bare.append(f"{dist}: {req}")
    assert bare == []


# --- the CHANGELOG rule ---------------------------------------------------------------------------


def _changelog_rule():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "break32_changelogs", ROOT / "integration/test_changelogs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda text: (
                text.replace('version = "0.1.0"\n', "") + 'version = "0.1.0"\n'
            ),  # keys reordered (a formatter), same version
            id="version-line-moved",
        ),
        pytest.param(
            lambda text: text.replace('version = "0.1.0"', 'version = "0.1.0"  # see CHANGELOG'),
            id="comment-on-version-line",
        ),
    ],
)
def test_the_changelog_rule_is_not_reset_without_a_new_version(tmp_path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """integration/test_changelogs.py takes as the release the last commit whose diff touches
    a `version = ` line (`git log -G`), not the last that changed the version: after a source
    change without an entry (refused), a commit that only moves the version line in
    pyproject.toml, or comments it, makes the rule pass with no entry and no new version."""
    if shutil.which("git") is None:
        pytest.skip("no git")
    rule = _changelog_rule()
    git = rule._git
    pkg = tmp_path / "packages/demo"
    (pkg / "src/demo").mkdir(parents=True)
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.invalid")
    git(tmp_path, "config", "user.name", "t")

    def commit(files: dict[str, str]) -> None:
        for name, text in files.items():
            (pkg / name).write_text(text)
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-q", "-m", "step")

    pyproject = '[project]\nname = "demo"\nversion = "0.1.0"\ndescription = "d"\n'
    commit(
        {
            "pyproject.toml": pyproject,
            "src/demo/a.py": "x = 1\n",
            "CHANGELOG.md": "# Changelog of demo\n\n## 0.1.0\n- first\n",
        }
    )
    commit({"src/demo/a.py": "x = 2\n"})
    assert "has no new entry" in (rule.changelog_problem(tmp_path, "packages/demo") or "")
    commit({"pyproject.toml": edit(pyproject)})
    assert tomllib.loads((pkg / "pyproject.toml").read_text())["project"]["version"] == "0.1.0"
    assert "has no new entry" in (rule.changelog_problem(tmp_path, "packages/demo") or "")
