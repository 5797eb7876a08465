"""Developer and CI sessions. `nox` runs the default ones (what CI runs); `nox -l` lists all.

Every workspace member gets a `tests-<name>` session that installs only that package and its
declared dependencies into the session's own venv, so an undeclared cross-package import fails
there, while the root `.venv` keeps every package for day-to-day work.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.needs_version = ">=2025.2.9"

# Python comes from this machine, never a download; uv is found next to nox if not on PATH.
os.environ["UV_PYTHON_DOWNLOADS"] = "never"
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
# Sessions keep Python's bytecode cache (`__pycache__`, git-ignored): with
# PYTHONDONTWRITEBYTECODE set (as on the CI machine), every process compiled every module it
# imported again, FastAPI, pyarrow's and sqlglot's Python included: `platform --help` took
# 3.7 s instead of 1.4 s, and the tests start hundreds of such processes.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@dataclass(frozen=True)
class Member:
    """One workspace package: where it lives, its distribution and import names."""

    short: str
    path: Path
    dist: str
    module: str
    scripts: tuple[str, ...]
    workspace_deps: tuple[str, ...]
    extras: tuple[str, ...]


def _members() -> list[Member]:
    paths = [*sorted(ROOT.glob("packages/*/pyproject.toml")), ROOT / "apps/gateway/pyproject.toml"]
    members = []
    for pyproject in paths:
        meta = tomllib.loads(pyproject.read_text())
        project = meta["project"]
        sources = meta.get("tool", {}).get("uv", {}).get("sources", {})
        modules = [p.parent.name for p in (pyproject.parent / "src").glob("*/__init__.py")]
        if len(modules) != 1:
            raise SystemExit(
                f"{pyproject.parent}: expected one package under src/, found {modules}"
            )
        module = modules[0]
        members.append(
            Member(
                short=pyproject.parent.name,
                path=pyproject.parent,
                dist=project["name"],
                module=module,
                scripts=tuple(project.get("scripts", {})),
                workspace_deps=tuple(n for n, s in sources.items() if s.get("workspace")),
                extras=tuple(project.get("optional-dependencies", {})),
            )
        )
    return members


MEMBERS = _members()
BY_DIST = {m.dist: m for m in MEMBERS}


REPORTS = ROOT / ".reports"


TIMES = REPORTS / "session-times.jsonl"
"""Each session's wall seconds and outcome, one JSON line per session run; `make test` prints
them last (scripts/session_times.py), so a slow CI run says where its time went."""


def _timed(fn: Callable[[nox.Session], None]) -> Callable[[nox.Session], None]:
    """Run the session and append its wall seconds and outcome to TIMES, failed or not."""

    @functools.wraps(fn)
    def run(session: nox.Session) -> None:
        started, outcome = time.monotonic(), "failed"
        try:
            fn(session)
            outcome = "success"
        finally:
            REPORTS.mkdir(exist_ok=True)
            line = {"session": session.name, "seconds": round(time.monotonic() - started, 1)}
            with TIMES.open("a") as out:
                out.write(json.dumps({**line, "outcome": outcome}) + "\n")

    return run


def _junit(session: nox.Session) -> str:
    """A JUnit report per session, so `make test` can end by naming what failed."""
    return f"--junitxml={REPORTS / session.name}.xml"


def _sync(session: nox.Session, *args: str) -> None:
    """`uv sync` into the session's venv (not the root .venv) from the committed lock."""
    env = {"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    session.run_install("uv", "sync", "--locked", "--no-default-groups", *args, env=env)


@nox.session(venv_backend="none")
@_timed
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(venv_backend="none")
@_timed
def typecheck(session: nox.Session) -> None:
    """mypy over every package (strict for platform_core, set in pyproject.toml)."""
    args: list[str] = []
    for m in MEMBERS:
        args += ["-p", m.module]
    session.run("mypy", *args)


def _tests(member: Member):  # type: ignore[no-untyped-def]
    def run(session: nox.Session) -> None:
        # Its extras too (core's service kit, elytra's Ray): the tests cover what they add.
        # Without them is the `wheels` session's part (each package installed alone).
        _sync(session, "--package", member.dist, "--all-extras", "--group", "test")
        session.run("pytest", str(member.path / "tests"), _junit(session), *session.posargs)

    run.__doc__ = (
        f"{member.dist} tests, with only its declared dependencies (and its extras) installed."
    )
    return run


for _m in MEMBERS:
    nox.session(name=f"tests-{_m.short}")(_timed(_tests(_m)))


@nox.session(default=False)
@_timed
def long(session: nox.Session) -> None:
    """The tests marked `long` at full size: `nox -s long` (posargs go to pytest).

    CI runs them bounded (fewer hypothesis examples, smaller data, the same assertions);
    PLATFORM_TESTS_LONG=1 gives them the example counts and sizes they had before.
    """
    _sync(session, "--all-packages", "--group", "test", "--group", "fuzz")
    env = {"PLATFORM_TESTS_LONG": "1"}
    for path in [*(m.path / "tests" for m in MEMBERS), ROOT / "integration"]:
        session.run(
            "pytest",
            str(path),
            "-m",
            "long",
            "--timeout=1800",
            *session.posargs,
            env=env,
            success_codes=[0, 5],  # 5: no test there is marked long
        )


def _workspace_closure(dist: str) -> list[str]:
    """`dist` and every platform-* package it depends on, transitively."""
    seen: list[str] = []
    todo = [dist]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.append(name)
            todo += list(BY_DIST[name].workspace_deps)
    return seen


STANDALONE = REPORTS / "standalone"
"""What the `wheels` session measured of each package installed alone (scripts/standalone.py)."""


@nox.session(venv_backend="none")
@_timed
def wheels(session: nox.Session) -> None:
    """Build each wheel; install each package alone (with its platform-* wheels) in a fresh venv.

    There it imports the package, runs its CLIs' `--help` and its README's `standalone`
    example, fails if the closure holds a distribution of its `must-not-pull` list
    (`[tool.platform]` in its pyproject.toml), and measures the closure, its size and the
    import time; the figures then go into each README (scripts/standalone.py).
    `uv pip install` resolves each wheel's declared dependencies from the index as pip would,
    but from uv's cache when it can (pip took most of this session's minutes).
    """
    dist_dir = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist_dir, ignore_errors=True)
    # One `uv build` for the whole workspace: a wheel per member, as the loop of them did.
    session.run("uv", "build", "--quiet", "--wheel", "--all-packages", "-o", str(dist_dir))
    shutil.rmtree(STANDALONE, ignore_errors=True)
    script = str(ROOT / "scripts/standalone.py")
    for m in MEMBERS:
        venv = Path(session.create_tmp()) / f"wheel-{m.short}"
        shutil.rmtree(venv, ignore_errors=True)
        # A venv made by uv: needs no python3-venv on the machine; nothing in it but the wheels.
        session.run("uv", "venv", "--quiet", str(venv))
        py, bindir = venv / "bin" / "python", venv / "bin"
        wheels = [
            str(next(dist_dir.glob(f"{d.replace('-', '_')}-*.whl")))
            for d in _workspace_closure(m.dist)
        ]
        session.run("uv", "pip", "install", "--quiet", "--python", str(py), *wheels)
        session.run(str(py), "-c", f"import {m.module}; print({m.module}.__name__, 'imports')")
        for cli in m.scripts:
            session.run(str(bindir / cli), "--help", silent=True)
        if m.module == "platform_gateway":
            # The web UI `make setup` built travels inside the gateway's wheel.
            check = (
                "from platform_gateway.ui import PACKAGED; assert (PACKAGED/'index.html').is_file()"
            )
            session.run(str(py), "-c", check)
        out = STANDALONE / f"{m.short}.json"
        session.run(
            sys.executable,
            script,
            "check",
            "--python",
            str(py),
            "--package",
            str(m.path),
            "--out",
            str(out),
        )
    session.run(sys.executable, script, "render", "--figures", str(STANDALONE))


@nox.session(name="lowest-direct", default=False, venv_backend="none")
@_timed
def lowest_direct(session: nox.Session) -> None:
    """Each package at the lowest versions its pyproject allows, running its tests.

    `nox -s lowest-direct [-- <package> ... [<pytest options>]]` (default: every package;
    e.g. `-- elytra -k ray` for the Ray backend's tests alone). Its direct dependencies
    (and those of its extras and its platform-* dependencies) are installed at their lower
    bounds (`uv pip install --resolution lowest-direct`), the rest at the newest they allow,
    so a lower bound that no longer works fails here. For elytra that is also the lowest Ray
    of its `[ray]` extra.
    """
    args = list(session.posargs)
    split = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    names, pytest_args = args[:split] or [m.short for m in MEMBERS], args[split:]
    by_short = {m.short: m for m in MEMBERS}
    for name in names:
        if name not in by_short:
            session.error(f"no package {name!r}; have: {', '.join(by_short)}")
        m = by_short[name]
        venv = Path(session.create_tmp()) / f"lowest-{m.short}"
        shutil.rmtree(venv, ignore_errors=True)
        session.run("uv", "venv", "--quiet", str(venv))
        py = venv / "bin" / "python"
        # The package with its extras (its tests cover them); its platform-* dependencies as
        # paths, with the extras its requirements name.
        targets = [f"{m.path}[{','.join(m.extras)}]" if m.extras else str(m.path)]
        targets += [str(BY_DIST[d].path) for d in _workspace_closure(m.dist)[1:]]
        session.run(
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            str(py),
            "--resolution",
            "lowest-direct",
            *targets,
            "--group",
            f"{ROOT / 'pyproject.toml'}:test",
        )
        session.run("uv", "pip", "list", "--python", str(py), silent=False)
        session.run(
            str(py),
            "-m",
            "pytest",
            str(m.path / "tests"),
            "-p",
            "no:cacheprovider",
            f"--junitxml={REPORTS / f'lowest-direct-{m.short}.xml'}",
            *pytest_args,
            env={"PATH": os.pathsep.join([str(py.parent), os.environ["PATH"]])},
        )


FIGURES = REPORTS / "figures"
"""What the chaos and soak suites measured (integration/figures.py), for the README's table."""


def _render_figures(session: nox.Session) -> None:
    """Write the measured cluster figures into the README (scripts/cluster_figures.py)."""
    if any(FIGURES.glob("*.json")):
        session.run("python", str(ROOT / "scripts/cluster_figures.py"), "--figures", str(FIGURES))


@nox.session
@_timed
def integration(session: nox.Session) -> None:
    """Tests across packages, with the whole platform installed and started as a user does.

    The chaos and soak suites run bounded here (one kill per case, a 2-minute soak); their
    figures then go into the README's table.
    """
    _sync(session, "--all-packages", "--group", "test", "--group", "fuzz")
    session.run("pytest", "integration", "--durations=20", _junit(session), *session.posargs)
    _render_figures(session)


def _cluster_suite(session: nox.Session, module: str, timeout: int) -> None:
    _sync(session, "--all-packages", "--group", "test")
    env = {"PLATFORM_TESTS_LONG": "1"}
    session.run(
        "pytest",
        f"integration/{module}",
        f"--timeout={timeout}",
        "--durations=20",
        _junit(session),
        *session.posargs,
        env=env,
    )
    _render_figures(session)


@nox.session(default=False)
@_timed
def chaos(session: nox.Session) -> None:
    """The chaos suite at full size: each SIGKILL three times, on more rows (`nox -s chaos`);
    the first platform of three SIGKILLed during writes, 3 rounds; one cluster of three whose
    random platform is SIGKILLed or paused, 20 rounds; the held break tests of issue 29
    (test_break29x_*: restarts of all, dead clusters, leave edges); the Ray head of `platform up
    --ray` SIGKILLed, the gateway watched past Ray's 60 s GCS timeout; three `--ray` platforms
    running a job next to its chunks; then Elkyn's failover at full size
    (20 SIGKILL rounds of the elected primary, 5 pauses)."""
    _cluster_suite(session, "test_cluster_chaos.py", timeout=3600)
    _cluster_suite(session, "test_platform_failover.py", timeout=3600)
    for held in ("dead_cluster_restart", "leave_edges", "restart_all"):  # break tests, held
        _cluster_suite(session, f"test_break29x_{held}.py", timeout=900)
    _cluster_suite(session, "test_platform_chaos29.py", timeout=3600)
    _cluster_suite(session, "test_platform_up_ray_head_loss.py", timeout=900)  # 75 s watch
    _cluster_suite(session, "test_platform_up_ray_join.py", timeout=900)  # two Ray nodes
    _cluster_suite(session, "test_platform_up_ray_locality.py", timeout=900)  # three Ray nodes
    session.run(
        "pytest",
        "packages/elkyn/tests/test_failover.py",
        "--timeout=3600",
        "--durations=20",
        *session.posargs,
        env={"PLATFORM_TESTS_LONG": "1"},
    )


@nox.session(default=False)
@_timed
def soak(session: nox.Session) -> None:
    """The soak at full length: 1800 s of mixed load unless SOAK_SECONDS says otherwise."""
    seconds = int(float(os.environ.get("SOAK_SECONDS", "1800")))
    _cluster_suite(session, "test_cluster_soak.py", timeout=seconds * 2 + 900)


@nox.session(default=False)
@_timed
def fuzz(session: nox.Session) -> None:
    """The fuzzers for long: `nox -s fuzz` (FUZZ_SECONDS=600 unless set; posargs go to pytest).

    Schemathesis over the gateway's OpenAPI (integration/test_fuzz_gateway.py) and the tests
    marked `fuzz` in packages/elkyn (its REST fuzzer on `elkyn serve`). The default
    sessions run the same fuzzers for about a minute (`integration`, `tests-elkyn`).
    """
    _sync(session, "--all-packages", "--group", "test", "--group", "fuzz")
    seconds = os.environ.get("FUZZ_SECONDS", "600")
    env = {"FUZZ_SECONDS": seconds}
    # pytest's own timeout (120 s in pyproject.toml) would end a long run; each fuzzer
    # bounds itself by FUZZ_SECONDS.
    timeout = f"--timeout={int(seconds) * 3 + 300}"
    session.run("pytest", "integration", "-m", "fuzz", timeout, *session.posargs, env=env)
    session.run(
        "pytest",
        str(ROOT / "packages/elkyn/tests"),
        "-m",
        "fuzz",
        timeout,
        *session.posargs,
        env=env,
        success_codes=[0, 5],  # 5: no test is marked fuzz there (yet)
    )


def _bench_scripts() -> list[str]:
    return sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))


BENCH_LANES = 2
"""bench-quick runs this many scripts at once: at --quick a script mostly waits (children and
servers starting, about 0.7 of a core on average), and its figures are not kept."""


def _run_script(session: nox.Session, name: str) -> tuple[str, int, str, float]:
    """One bench script at --quick in the session's venv: (name, exit code, output, seconds)."""
    venv = session.virtualenv.location
    env = {**os.environ, "VIRTUAL_ENV": venv}
    env["PATH"] = os.pathsep.join([str(Path(venv) / "bin"), env["PATH"]])
    cmd = [str(Path(venv) / "bin" / "python"), f"bench/{name}.py", "--quick", "--runs", "1"]
    started = time.monotonic()
    proc = subprocess.run(
        [*cmd, "--fresh"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    took = time.monotonic() - started
    return name, proc.returncode, proc.stdout.decode(errors="replace"), took


@nox.session(name="bench-quick")
@_timed
def bench_quick(session: nox.Session) -> None:
    """Every benchmark at --quick scale, so the scripts never rot (no timing assertions).

    BENCH_LANES scripts at a time; each one's output is printed whole when it ends, with its
    exit code and seconds, and the session fails naming every script that failed. Its venv
    has the `bench-quick` dependency group: no Ray Data, so no pandas, which pyarrow would
    import in each of the scripts' processes (no --quick run uses Ray).
    """
    _sync(session, "--all-packages", "--group", "bench-quick")
    failed = []
    with ThreadPoolExecutor(BENCH_LANES) as pool:
        for name, code, output, took in pool.map(
            lambda n: _run_script(session, n), _bench_scripts()
        ):
            print(output, end="", flush=True)
            session.log(f"bench/{name}.py --quick: exit {code} in {took:.0f} s")
            if code:
                failed.append(name)
    if failed:
        session.error(f"bench scripts failed at --quick: {', '.join(failed)}")


@nox.session(default=False)
@_timed
def bench(session: nox.Session) -> None:
    """Full-size benchmarks: `nox -s bench -- [<name>] [--scale S] [--runs N]`."""
    _sync(session, "--all-packages", "--group", "bench")
    args = list(session.posargs)
    names = [args.pop(0)] if args and not args[0].startswith("-") else _bench_scripts()
    for name in names:
        if name not in _bench_scripts():
            session.error(f"no benchmark {name!r}; have: {', '.join(_bench_scripts())}")
        session.run("python", f"bench/{name}.py", *args)
