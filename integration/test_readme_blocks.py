"""Every fenced Python and shell block of every README runs, and no README links outside.

A block's info string says what it is: ```` ```python ````, ```` ```sh ```` (also ``bash``,
``shell``, ``console``, whose ``$ `` lines are the commands) run; anything else (``text``,
``json``, ``yaml``) is shown, not run. Three more words may follow the language:

- ``no-run``: shown, never run (a server that runs until stopped, a ``make`` target, an
  install from built wheels). Each one needs a reason in the README's text nearby.
- ``platform``: the block talks to a running platform; it gets ``PLATFORM_URL`` and
  ``PLATFORM_TOKEN`` of one started once for the session (`platform up` on a free port and a
  temporary home).
- ``standalone``: the package's first example; it runs here too, and the ``wheels`` session
  also runs it in a fresh venv holding only that package's wheels (``scripts/standalone.py``).

Each block runs in a fresh temporary directory with the workspace's ``.venv/bin`` first on
``PATH`` and a time limit; the blocks of one README run in their order, so a later block may
use what an earlier one put into the platform (the walkthrough does), never its files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import Server, command, launch

ROOT = Path(__file__).resolve().parent.parent
READMES = sorted(
    [ROOT / "README.md", *ROOT.glob("packages/*/README.md"), *ROOT.glob("apps/*/README.md")]
)
RUNNERS = {"python": "python", "py": "python", "sh": "sh", "bash": "sh", "shell": "sh"}
RUNNERS["console"] = "console"
SHOWN = {"text", "json", "yaml", "toml", "sql", "csv"}
NO_RUN, PLATFORM, STANDALONE = "no-run", "platform", "standalone"
BLOCK_TIMEOUT = 90.0
_FENCE = re.compile(r"^(\s*)```(.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts, its language and extra words, its text."""

    readme: Path
    line: int
    lang: str
    words: frozenset[str]
    code: str

    @property
    def where(self) -> str:
        shown = self.readme.relative_to(ROOT) if self.readme.is_relative_to(ROOT) else self.readme
        return f"{shown}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUNNERS and NO_RUN not in self.words


def parse_blocks(readme: Path) -> list[Block]:
    """The fenced blocks of ``readme`` (```` ``` ```` fences; the info string's words)."""
    blocks: list[Block] = []
    lines = readme.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, info = match.group(1), match.group(2).split()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{readme}:{start}: the block never closes")
        lang = info[0] if info else ""
        blocks.append(Block(readme, start, lang, frozenset(info[1:]), "\n".join(body) + "\n"))
        i += 1
    return blocks


def _script(block: Block) -> tuple[list[str], str]:
    """The command and the file text that run ``block``."""
    kind = RUNNERS[block.lang]
    if kind == "python":
        return [sys.executable, "block.py"], block.code
    code = block.code
    if kind == "console":
        code = "\n".join(ln[2:] for ln in code.splitlines() if ln.startswith("$ ")) + "\n"
    return ["bash", "-euo", "pipefail", "block.sh"], code


def run_block(block: Block, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``block`` in ``workdir``; fail the test with its output if it exits non-zero."""
    workdir.mkdir(parents=True)
    args, text = _script(block)
    (workdir / args[-1]).write_text(text)
    try:
        done = subprocess.run(
            args, cwd=workdir, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{block.where}: the block ran over {BLOCK_TIMEOUT:.0f} s\n{exc.stdout}\n{exc.stderr}"
        )
    if done.returncode != 0:
        pytest.fail(
            f"{block.where}: the block exited with {done.returncode}\n--- code ---\n{text}"
            f"--- stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}"
        )
    return done


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "LAKE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PLATFORM_HOME"] = str(home)  # nothing a block makes lands in the repository
    env["LAKE_FLIGHT_PORT"] = "0"
    return env


@pytest.fixture(scope="session")
def platform_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``PLATFORM_URL`` and ``PLATFORM_TOKEN`` of a `platform up` run for the session."""
    base = tmp_path_factory.mktemp("readme-platform")
    home = base / "home"
    server: Server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        base / "run",
    )
    try:
        token = subprocess.run(
            [str(command("platform")), "token", "--home", str(home), "--admin"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        yield {"PLATFORM_URL": server.url, "PLATFORM_TOKEN": token}
    finally:
        server.stop()


@pytest.mark.timeout(300)  # the blocks of one README, each bounded by BLOCK_TIMEOUT
@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_of_the_readme_runs(
    readme: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    blocks = [b for b in parse_blocks(readme) if b.runs]
    env = _base_env(tmp_path / "home")
    for n, block in enumerate(blocks):
        block_env = dict(env)
        if PLATFORM in block.words:
            block_env.update(request.getfixturevalue("platform_env"))
        run_block(block, tmp_path / f"block{n}", block_env)


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_says_what_it_is(readme: Path) -> None:
    for block in parse_blocks(readme):
        assert block.lang in RUNNERS or block.lang in SHOWN, (
            f"{block.where}: a block's info string must name its language: one that runs "
            f"({', '.join(RUNNERS)}) or one that is shown ({', '.join(sorted(SHOWN))}), "
            f"not {block.lang!r}"
        )
        unknown = block.words - {NO_RUN, PLATFORM, STANDALONE}
        assert not unknown, f"{block.where}: unknown words {sorted(unknown)} after the language"


def test_the_runner_fails_a_failing_block_and_skips_a_marked_one(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "```sh no-run\nexit 7\n```\n\n```console\n$ echo hi\nhi\n$ false\n```\n\n```json\n{}\n```\n"
    )
    blocks = parse_blocks(readme)
    assert [(b.lang, b.runs) for b in blocks] == [("sh", False), ("console", True), ("json", False)]
    with pytest.raises(pytest.fail.Exception, match="exited with 1"):
        run_block(blocks[1], tmp_path / "run", _base_env(tmp_path / "home"))


_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)")
_AUTOLINK = re.compile(r"<((?:[a-z][a-z0-9+.-]*:|www\.)[^>\s]*)>", re.IGNORECASE)
_HREF = re.compile(r"(?:href|src)\s*=\s*[\"']([^\"']+)", re.IGNORECASE)
_BARE = re.compile(r"(?<![\w/`])(?:https?://|www\.)[^\s)>\]]+")


def _prose(readme: Path) -> Iterator[tuple[int, str]]:
    """The lines outside fenced blocks, with inline code spans (even across lines) removed."""
    lines, in_block = [], False
    for line in readme.read_text().splitlines():
        fence = _FENCE.match(line) is not None
        in_block ^= fence
        lines.append("" if fence or in_block else line)
    text = re.sub(r"`[^`]*`", lambda m: "\n" * m.group().count("\n"), "\n".join(lines))
    yield from enumerate(text.split("\n"), 1)


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_link_points_outside_the_repository(readme: Path) -> None:
    problems: list[str] = []
    for n, line in _prose(readme):
        targets = _LINK.findall(line) + _AUTOLINK.findall(line) + _HREF.findall(line)
        targets += _BARE.findall(line)
        for target in sorted(set(targets)):
            where = f"{readme.relative_to(ROOT)}:{n}: {target}"
            if re.match(r"^[a-z][a-z0-9+.-]*:|^//|^www\.", target, re.IGNORECASE):
                problems.append(f"{where} (outside the repository)")
                continue
            path = target.split("#", 1)[0]
            if not path:
                continue  # an anchor in the same README
            resolved = (readme.parent / path).resolve()
            if not resolved.is_relative_to(ROOT):
                problems.append(f"{where} (outside the repository)")
            elif not resolved.exists():
                problems.append(f"{where} (no such file in the repository)")
    assert not problems, "links must point at files of this repository:\n" + "\n".join(problems)
