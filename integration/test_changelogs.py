"""Independent versions that mean something: a package whose source changed since its version
was last set has a CHANGELOG entry for the change.

For each workspace package, from git history: the *base* is the last commit that changed the
`version = ...` line of its pyproject.toml (the release). If anything under its `src/` differs
between the base and the work tree, then its CHANGELOG.md must have gained lines since the
base, and its first section must be an `## Unreleased ...` one with at least one entry (at the
next release that heading becomes the new version). Without git history (an sdist, a shallow
clone) the test is skipped and says why.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(
    p.parent.relative_to(ROOT).as_posix()
    for p in [*ROOT.glob("packages/*/pyproject.toml"), ROOT / "apps/gateway/pyproject.toml"]
)


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout


def _history_or_skip() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("no git history here: CHANGELOG entries are checked in a clone")
    if _git(ROOT, "rev-parse", "--is-shallow-repository").strip() == "true":
        pytest.skip("a shallow clone: the commit that set each version may be missing")


def unreleased_entries(changelog: str) -> list[str]:
    """The entries (`- ...` lines) of the first `## ` section, if it is an Unreleased one."""
    sections = re.split(r"^## ", changelog, flags=re.M)
    if len(sections) < 2 or not sections[1].lower().startswith("unreleased"):
        return []
    return [line for line in sections[1].splitlines() if line.lstrip().startswith("- ")]


def _version_at(root: Path, commit: str, pyproject: str) -> str | None:
    """The ``[project] version`` of ``pyproject`` at ``commit`` (None: no file, no version)."""
    try:
        text = _git(root, "show", f"{commit}:{pyproject}")
    except subprocess.CalledProcessError:
        return None
    try:
        data = tomllib.loads(text)
        version = data.get("project", {}).get("version", data.get("version"))
    except tomllib.TOMLDecodeError:
        return None
    return version if isinstance(version, str) else None


def release_commit(root: Path, package: str) -> str:
    """The last commit that changed ``package``'s version *value* (moving or commenting its
    line is not a release); "" when there is none."""
    pyproject = f"{package}/pyproject.toml"
    touched = _git(root, "log", "--format=%H", "-G", r"^version\s*=", "--", pyproject).split()
    for commit in touched:  # newest first
        parents = _git(root, "rev-list", "--parents", "-n", "1", commit).split()[1:]
        now = _version_at(root, commit, pyproject)
        if now is not None and all(_version_at(root, p, pyproject) != now for p in parents):
            return commit
    return ""


def changelog_problem(root: Path, package: str) -> str | None:
    """Why ``package`` (a folder under ``root``, a git work tree) breaks the rule, or None."""
    base = release_commit(root, package)
    if not base:
        return f"{package}/pyproject.toml has no version line in git history"
    changed = _git(root, "diff", "--name-only", base, "--", f"{package}/src").split()
    if not changed:
        return None
    changelog = f"{package}/CHANGELOG.md"
    if not (root / changelog).is_file():
        return f"{package} has no CHANGELOG.md"
    if _git(root, "ls-files", "--", changelog).strip():
        diff = _git(root, "diff", base, "--", changelog).splitlines()
        added = [ln for ln in diff if ln.startswith("+") and not ln.startswith("+++")]
    else:  # new, not committed yet: every line is new
        added = (root / changelog).read_text().splitlines()
    added = [line for line in added if line.lstrip("+").strip()]
    if added and unreleased_entries((root / changelog).read_text()):
        return None
    return (
        f"{package}'s source changed since its version was set in {base[:10]} "
        f"({len(changed)} files, e.g. {changed[0]}), but {changelog} has no new entry: add one "
        f"under '## Unreleased' at its top (and raise the version when releasing)"
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_has_a_changelog(package: str) -> None:
    changelog = ROOT / package / "CHANGELOG.md"
    assert changelog.is_file(), f"{package} has no CHANGELOG.md: add one (see packages/core)"
    name = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]["name"]
    assert name in changelog.read_text().splitlines()[0], f"its title names {name}"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_source_change_since_the_version_has_a_changelog_entry(package: str) -> None:
    _history_or_skip()
    assert changelog_problem(ROOT, package) is None


def test_the_rule_on_a_history_made_for_it(tmp_path: Path) -> None:
    """A package released, changed without an entry (refused), then with one (accepted), then
    released again (accepted), then changed again (refused: the old entries are released)."""
    if shutil.which("git") is None:
        pytest.skip("no git")
    pkg = tmp_path / "packages/demo"
    (pkg / "src/demo").mkdir(parents=True)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.invalid")
    _git(tmp_path, "config", "user.name", "t")

    def commit(files: dict[str, str]) -> None:
        for name, text in files.items():
            (pkg / name).write_text(text)
        _git(tmp_path, "add", "-A")
        _git(tmp_path, "commit", "-q", "-m", "step")

    log = "# Changelog of demo\n\n## 0.1.0\n- first\n"
    commit(
        {"pyproject.toml": 'version = "0.1.0"\n', "src/demo/a.py": "x = 1\n", "CHANGELOG.md": log}
    )
    assert changelog_problem(tmp_path, "packages/demo") is None
    (pkg / "src/demo/a.py").write_text("x = 2\n")  # uncommitted counts too
    assert "has no new entry" in (changelog_problem(tmp_path, "packages/demo") or "")
    commit({})
    assert "has no new entry" in (changelog_problem(tmp_path, "packages/demo") or "")
    log = log.replace("## 0.1.0", "## Unreleased\n- x is 2\n\n## 0.1.0")
    commit({"CHANGELOG.md": log})
    assert changelog_problem(tmp_path, "packages/demo") is None
    commit(
        {
            "pyproject.toml": 'version = "0.2.0"\n',
            "CHANGELOG.md": log.replace("Unreleased", "0.2.0"),
        }
    )
    assert changelog_problem(tmp_path, "packages/demo") is None
    commit({"src/demo/a.py": "x = 3\n"})
    assert "has no new entry" in (changelog_problem(tmp_path, "packages/demo") or "")


def test_the_rule_sees_an_unreleased_section_only_at_the_top() -> None:
    assert unreleased_entries("# Changelog\n\n## Unreleased\n- a fix\n\n## 0.1.0\n- x\n") == [
        "- a fix"
    ]
    assert unreleased_entries("# Changelog\n\n## 0.2.0\n- a fix\n\n## Unreleased\n- y\n") == []
    assert unreleased_entries("# Changelog\n\n## Unreleased\n\n## 0.1.0\n- x\n") == []
