"""`scripts/setup.sh` builds the web UI again only when its sources changed: the hash covers
the files git tracks (and new ones it does not ignore), never what a build writes there and
git ignores (``next-env.d.ts``, ``.next/``, ``out/``), so a second ``make up`` skips the build;
outside a git checkout the build outputs are left out by name."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "scripts/setup.sh"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _hash(app: Path) -> str:
    function = re.search(r"^ui_source_hash\(\) \{\n.*?^\}\n", SETUP.read_text(), re.M | re.S)
    assert function is not None, "scripts/setup.sh has no ui_source_hash function"
    script = f"set -euo pipefail\n{function.group(0)}\nui_source_hash {app}\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    digest = out.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", digest), digest
    return digest


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=60)


def test_build_outputs_do_not_change_the_hash_in_a_checkout(tmp_path: Path) -> None:
    app = tmp_path / "apps/playground"
    (app / "app").mkdir(parents=True)
    (app / "app/page.tsx").write_text("export default 1\n")
    (app / ".gitignore").write_text("node_modules/\n.next/\nout/\nnext-env.d.ts\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    first = _hash(app)
    (app / "next-env.d.ts").write_text("/// <reference types='next' />\n")  # the build writes it
    (app / "out").mkdir()
    (app / "out/index.html").write_text("<html></html>")
    (app / "node_modules").mkdir()
    (app / "node_modules/x.js").write_text("1")
    assert _hash(app) == first
    (app / "app/page.tsx").write_text("export default 2\n")  # an edit, not yet committed
    edited = _hash(app)
    assert edited != first
    (app / "app/new.tsx").write_text("export const n = 1\n")  # a new file git does not ignore
    assert _hash(app) not in (first, edited)
    (app / "app/page.tsx").unlink()  # a tracked file deleted: still a hash, a different one
    assert _hash(app) not in (first, edited)


def test_outside_a_checkout_the_build_outputs_are_left_out_by_name(tmp_path: Path) -> None:
    app = tmp_path / "playground"
    (app / "app").mkdir(parents=True)
    (app / "app/page.tsx").write_text("export default 1\n")
    first = _hash(app)
    (app / "next-env.d.ts").write_text("/// <reference types='next' />\n")
    (app / ".next").mkdir()
    (app / ".next/cache").write_text("x")
    assert _hash(app) == first
    (app / "app/page.tsx").write_text("export default 2\n")
    assert _hash(app) != first
