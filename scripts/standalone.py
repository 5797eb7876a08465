"""Each package installed alone: measure its closure, run its README example, render the tables.

The `wheels` nox session installs each package's wheels into a fresh venv and calls

    python scripts/standalone.py check --python VENV/bin/python --package packages/strand \
        --out .reports/standalone/strand.json

which lists the closure (`uv pip list`), fails when it holds a distribution of the package's
`[tool.platform] must-not-pull` list, runs the README's block marked `standalone` in a scratch
directory with that venv's Python, and measures the install size (bytes of the venv's
`site-packages`) and the import time (median of fresh interpreters after a warm-up, beside
`import pyarrow, numpy` timed the same way in the same venv). Then

    python scripts/standalone.py render --figures .reports/standalone

writes a table into each package README (between `<!-- standalone:start -->` and
`<!-- standalone:end -->`) and the summary, beside the figures before issue 32, into the core
README (between `<!-- standalone-summary:start -->` and `<!-- standalone-summary:end -->`).
Standard library only: it runs under any Python.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- standalone:start -->", "<!-- standalone:end -->"
SUMMARY_START, SUMMARY_END = "<!-- standalone-summary:start -->", "<!-- standalone-summary:end -->"
RUNS = 5
"""Fresh interpreters per import timing (after one warm-up that writes the bytecode caches)."""

BEFORE: dict[str, dict[str, Any]] = {
    "platform-core": {"packages": 34, "mb": 252, "import_s": 0.53, "ratio": 2.91},
    "platform-strand": {"packages": 36, "mb": 253, "import_s": 0.65, "ratio": 3.04},
    "platform-emsqrt": {"packages": 36, "mb": 255, "import_s": 0.47, "ratio": 2.57},
    "platform-elkyn": {"packages": 40, "mb": 274, "import_s": 0.41, "ratio": 1.94},
    "platform-lake": {"packages": 38, "mb": 327, "import_s": 0.31, "ratio": 2.16},
    "platform-elytra": {"packages": 61, "mb": 559, "import_s": 0.40, "ratio": 1.72},
    "platform-gateway": {"packages": 37, "mb": 256, "import_s": 0.28, "ratio": 3.42},
}
"""Each package alone before the split, measured the same way (`measure`, on wheels built from
commit a417fdb, each installed alone in a fresh venv by uv, 2026-11-25; import times on a
loaded shared machine). Issue 32 gave strand 38 packages / 251 MB / 0.62 s, emsqrt 38 / 253 MB,
lake 40 / 322 MB, elytra 63 / 552 MB: the same picture, counted with pip."""


class StandaloneError(Exception):
    """The package does not stand alone (the message says what and what to do)."""


def _pyproject(package: Path) -> dict[str, Any]:
    return tomllib.loads((package / "pyproject.toml").read_text())


def _module(package: Path) -> str:
    found = [p.parent.name for p in (package / "src").glob("*/__init__.py")]
    if len(found) != 1:
        raise StandaloneError(f"{package}: expected one package under src/, found {found}")
    return found[0]


def standalone_example(readme: Path) -> str:
    """The README's first ```` ```python standalone ```` block."""
    match = re.search(
        r"^```python[^\n]*\bstandalone\b[^\n]*\n(.*?)^```", readme.read_text(), re.S | re.M
    )
    if match is None:
        raise StandaloneError(
            f"{readme} has no ```python standalone block: mark its first example that runs "
            "with the package installed alone"
        )
    return match.group(1)


def _uv() -> str:
    """uv from PATH, else next to this Python (the workspace's .venv links it there)."""
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if found is None:
        raise StandaloneError("uv is not on PATH: run scripts/setup.sh, or nox -s wheels")
    return found


def closure(python: Path) -> list[dict[str, str]]:
    """The distributions installed in the venv of ``python``."""
    out = subprocess.run(
        [_uv(), "pip", "list", "--python", str(python), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(json.loads(out.stdout), key=lambda d: d["name"].lower())


def site_bytes(python: Path) -> int:
    """Bytes of the files installed under the venv's site-packages (links not followed,
    bytecode caches left out)."""
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for folder, dirs, files in os.walk(out.stdout.strip()):
        # Bytecode caches depend on what ran in the venv before (the example, the timings).
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def import_seconds(python: Path, statement: str, runs: int = RUNS) -> float:
    """Median seconds of ``statement`` in fresh interpreters, after one warm-up run."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for i in range(runs + 1):
        out = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, check=True, env=env
        )
        if i:
            times.append(float(out.stdout))
    return statistics.median(times)


def check(python: Path, package: Path) -> dict[str, Any]:
    """Closure, forbidden distributions, the README example, size and import time."""
    meta = _pyproject(package)
    project = meta["project"]
    dist, module = project["name"], _module(package)
    forbidden = {
        n.lower() for n in meta.get("tool", {}).get("platform", {}).get("must-not-pull", [])
    }
    installed = closure(python)
    names = {d["name"].lower() for d in installed}
    pulled = sorted(names & forbidden)
    if pulled:
        raise StandaloneError(
            f"{dist} installed alone pulls in {', '.join(pulled)}, which its must-not-pull list "
            f"([tool.platform] in {package / 'pyproject.toml'}) forbids: find which requirement "
            "brings it (`uv pip tree`) and move it behind an extra"
        )
    example = standalone_example(package / "README.md")
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "example.py"
        script.write_text(example)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
        env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
        ran = subprocess.run(
            [str(python), str(script)],
            cwd=scratch,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    if ran.returncode != 0:
        raise StandaloneError(
            f"{dist}'s README example (```python standalone) failed installed alone:\n"
            f"{ran.stdout}{ran.stderr}"
        )
    extras = project.get("optional-dependencies", {})
    return {
        "dist": dist,
        "version": project["version"],
        "module": module,
        "requires": project.get("dependencies", []),
        "extras": {k: list(v) for k, v in extras.items()},
        "must_not_pull": sorted(forbidden),
        **measure(python, module),
    }


def measure(python: Path, module: str) -> dict[str, Any]:
    """The closure, its size and the import time of ``module`` in the venv of ``python``."""
    installed = closure(python)
    # Alternate them, so a burst of load on a shared machine hits both alike.
    base, ours = [], []
    for _ in range(3):
        base.append(import_seconds(python, "import pyarrow, numpy", runs=RUNS // 2 + 1))
        ours.append(import_seconds(python, f"import {module}", runs=RUNS // 2 + 1))
    return {
        "packages": len(installed),
        "closure": [f"{d['name']}=={d['version']}" for d in installed],
        "site_bytes": site_bytes(python),
        "import_s": statistics.median(ours),
        "pyarrow_numpy_s": statistics.median(base),
        "measured": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def package_table(fig: dict[str, Any]) -> str:
    """The table in a package's README."""
    needs = ", ".join(f"`{r}`" for r in fig["requires"]) or "nothing"
    lines = [
        f"`pip install {fig['dist']}` needs: {needs}.",
    ]
    for extra, reqs in fig["extras"].items():
        lines.append(f"Extra `[{extra}]`: {', '.join(f'`{r}`' for r in reqs)}.")
    if fig["must_not_pull"]:
        lines.append(
            f"Never installed with it (the `wheels` session fails if one is): "
            f"{', '.join(fig['must_not_pull'])}."
        )
    ratio = fig["import_s"] / fig["pyarrow_numpy_s"]
    lines += [
        "",
        f"| installed alone | packages | install size | `import {fig['module']}` | `import pyarrow, numpy` (same run) |",
        "|---|---:|---:|---:|---:|",
        f"| {fig['dist']} {fig['version']} | {fig['packages']} | {_mb(fig['site_bytes'])} | "
        f"{fig['import_s']:.2f} s ({ratio:.2f}x) | {fig['pyarrow_numpy_s']:.2f} s |",
        "",
        f"Measured by `nox -s wheels` on {fig['measured']}: its wheels in a fresh venv, size of "
        "its `site-packages`, import times the median of fresh interpreters.",
    ]
    return "\n".join(lines)


def summary_table(figs: list[dict[str, Any]]) -> str:
    """The table in the core README: every package alone, before and after."""
    lines = [
        "| installed alone | packages: before → now | install size: before → now | "
        "import time (x `import pyarrow, numpy`): before → now | `import pyarrow, numpy` now |",
        "|---|---:|---:|---:|---:|",
    ]
    for fig in figs:
        before = BEFORE.get(fig["dist"], {})
        ratio = fig["import_s"] / fig["pyarrow_numpy_s"]
        was_p = f"{before['packages']}" if before else "-"
        was_mb = f"{before['mb']} MB" if before else "-"
        was_s = f"{before['import_s']:.2f} s = {before['ratio']:.2f}x" if before else "-"
        lines.append(
            f"| {fig['dist']} | {was_p} → **{fig['packages']}** | {was_mb} → "
            f"**{_mb(fig['site_bytes'])}** | `import {fig['module']}`: {was_s} → "
            f"**{fig['import_s']:.2f} s = {ratio:.2f}x** | {fig['pyarrow_numpy_s']:.2f} s |"
        )
    date = max(f["measured"] for f in figs)
    lines += [
        "",
        f"Now: `nox -s wheels` on {date}. Before: the same measurement of wheels built from "
        "the commit before the split (a417fdb), when strand pulled fastapi, uvicorn, starlette, "
        "httpx, argon2-cffi, sqlglot and typer, and elytra always Ray. Most of every install is "
        "pyarrow (about 230 MB). The gateway now installs the whole platform with Ray "
        "(`platform-elytra[ray]`): `platform up` runs it all. Import times are medians on a "
        "shared 2-core machine and vary by tens of milliseconds from run to run: compare the "
        "ratios to `import pyarrow, numpy` measured in the same run, not the seconds.",
    ]
    return "\n".join(lines)


def _replace(path: Path, start: str, end: str, body: str) -> None:
    text = path.read_text()
    if start not in text or end not in text:
        raise StandaloneError(
            f"{path} lacks the markers {start} ... {end}: add them where the table goes"
        )
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new = f"{head}{start}\n{body}\n{end}{tail}"
    if new != text:
        path.write_text(new)


def render(figures: Path) -> None:
    figs = [json.loads(p.read_text()) for p in sorted(figures.glob("*.json"))]
    if not figs:
        raise StandaloneError(f"no figures in {figures}: run `nox -s wheels` first")
    for fig in figs:
        package = _package_dir(fig["dist"])
        project = _pyproject(package)["project"]  # what it needs: as declared now
        fig["requires"] = project.get("dependencies", [])
        fig["extras"] = {k: list(v) for k, v in project.get("optional-dependencies", {}).items()}
        _replace(package / "README.md", START, END, package_table(fig))
    order = {d: i for i, d in enumerate(["platform-core", "platform-strand", "platform-emsqrt"])}
    figs.sort(key=lambda f: (order.get(f["dist"], 9), f["dist"]))
    _replace(ROOT / "packages/core/README.md", SUMMARY_START, SUMMARY_END, summary_table(figs))


def _package_dir(dist: str) -> Path:
    for pyproject in [
        *ROOT.glob("packages/*/pyproject.toml"),
        ROOT / "apps/gateway/pyproject.toml",
    ]:
        if tomllib.loads(pyproject.read_text())["project"]["name"] == dist:
            return pyproject.parent
    raise StandaloneError(f"no workspace package is named {dist}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="check one package installed alone; write its figures")
    c.add_argument("--python", type=Path, required=True)
    c.add_argument("--package", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("measure", help="only measure an installed module (no checks)")
    m.add_argument("--python", type=Path, required=True)
    m.add_argument("--module", required=True)
    r = sub.add_parser("render", help="write the figures into the READMEs")
    r.add_argument("--figures", type=Path, default=ROOT / ".reports/standalone")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            fig = check(args.python.absolute(), args.package.resolve())
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(fig, indent=1) + "\n")
            print(
                f"{fig['dist']}: {fig['packages']} packages, {_mb(fig['site_bytes'])}, "
                f"import {fig['import_s']:.3f} s (pyarrow+numpy {fig['pyarrow_numpy_s']:.3f} s)"
            )
        elif args.command == "measure":
            print(json.dumps(measure(args.python.absolute(), args.module)))
        else:
            render(args.figures)
    except StandaloneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
