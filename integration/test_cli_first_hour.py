"""The first hour with the CLIs (issue 13, items 3-5), driven as a user drives them.

A real gateway (`platform up --port 0` on a temp home) and the installed `platform` and
`lake` commands as child processes: no token is made by hand (the CLIs find one), Ctrl-C is
a SIGINT, and every output is parsed and compared with DuckDB's answer on the same file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from . import conftest
from .conftest import Platform, SharedPlatform, StartPlatform

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(600)  # a dozen CLI processes each, on a shared 2-core machine
SALES = 'id,name,amount,note\n1,ada,1.5,"[[null, 1]]"\n2,[bold]bob[/bold],,\n3,cy,-2.25,plain\n'


class User:
    """A shell on the platform's machine: PLATFORM_HOME set, its own config dir, no token."""

    def __init__(self, platform: Platform | SharedPlatform, tmp: Path) -> None:
        self.platform = platform
        self.config = tmp / "config"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
        self.env |= {"PLATFORM_HOME": str(platform.home), "XDG_CONFIG_HOME": str(self.config)}

    def run(
        self, tool: str, *args: str, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / tool), *args],
            capture_output=True,
            text=True,
            input=input if input is not None else "",
            env=self.env | env,
            timeout=180,
            check=False,
        )

    def ok(self, tool: str, *args: str, **env: str) -> str:
        done = self.run(tool, *args, **env)
        assert done.returncode == 0, f"{tool} {args}: {done.returncode}\n{done.stderr}"
        return done.stdout

    def token(self, sub: str, *, admin: bool = False) -> str:
        flags = ["--admin"] if admin else []
        return self.ok("platform", "token", "--sub", sub, *flags).strip()

    def json(self, *args: str, **env: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.ok("lake", *args, "--json", **env))
        return out


def on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal, as in a shell: exit code, stdout, what it showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        env=env | {"TERM": "xterm", "COLUMNS": "160"},
    )
    os.close(slave)
    shown: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # the other side closed
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(timeout=300)
    reader.join(10)
    os.close(master)
    return proc.returncode, out, b"".join(shown).decode(errors="replace")


def one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(autouse=True)
def patient_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give `platform up` 90 s to start: these tests run beside others on a loaded machine."""
    monkeypatch.setattr(conftest, "START_TIMEOUT", 90.0)


@pytest.fixture
def user(start_platform: StartPlatform, tmp_path: Path) -> User:
    return User(start_platform(0), tmp_path)


@pytest.fixture
def sales(tmp_path: Path) -> Path:
    path = tmp_path / "Sales.csv"
    path.write_text(SALES)
    return path


def owners(user: User) -> dict[str, str]:
    listing = user.json("ls")
    names = [c["name"] for c in listing["columns"]]
    return {r[names.index("name")]: r[names.index("owner")] for r in listing["rows"]}


def test_the_token_comes_from_the_flag_then_env_then_login_then_this_machine(
    user: User, sales: Path, tmp_path: Path
) -> None:
    url = user.platform.url
    out = user.ok("platform", "login")  # dev mode: no password on this machine
    assert url in out
    saved = user.config / "platform" / "tokens.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    assert list(json.loads(saved.read_text())) == [url]
    # The saved token of this gateway, replaced by one whose subject tells it apart.
    saved.write_text(json.dumps({url: user.token("saved-user")}))
    env_token = user.token("env-user")

    up = ("upload", str(sales))
    user.ok(
        "lake",
        *up,
        "--name",
        "by_flag",
        "--token",
        user.token("flag-user"),
        PLATFORM_TOKEN=env_token,
    )
    user.ok("lake", *up, "--name", "by_env", PLATFORM_TOKEN=env_token)
    user.ok("lake", *up, "--name", "by_login")
    out = user.ok("platform", "logout")
    assert f"logged out of {url}" in out
    assert json.loads(saved.read_text()) == {}
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    user.ok("lake", *up, "--name", "by_secret")  # minted from PLATFORM_HOME/secret
    # No readable secret: a dev-mode login on the loopback URL.
    elsewhere = str(tmp_path / "empty-home")
    user.ok("lake", *up, "--name", "by_dev_login", "--node", url, PLATFORM_HOME=elsewhere)
    assert owners(user) == {
        "by_flag": "flag-user",
        "by_env": "env-user",
        "by_login": "saved-user",
        "by_secret": "admin",
        "by_dev_login": "admin",
    }


def test_without_dev_mode_only_a_readable_secret_gives_a_token(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    platform = start_platform(0, env={"PLATFORM_ADMIN_PASSWORD": "a-long-admin-password-0123"})
    user = User(platform, tmp_path)
    assert user.json("ls")["rows"] == []  # minted from the home's secret
    refused = user.run("lake", "ls", "--node", platform.url, PLATFORM_HOME=str(tmp_path / "x"))
    line = one_error_line(refused, 3)
    assert "token" in line


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_upload_interrupted_by_ctrl_c_says_how_to_resume_and_resumes(
    user: User, tmp_path: Path
) -> None:
    big = tmp_path / "big.csv"
    with big.open("w") as f:
        f.write("id,name,v\n")
        for i in range(300_000):
            f.write(f"{i},name{i % 997},{'' if i % 7 == 0 else i * 0.5}\n")
    admin = {"authorization": f"Bearer {user.token('root', admin=True)}"}
    command = ["upload", str(big), "--name", "big", "--part-mb", "0.0625", "--parallel", "1"]
    proc = subprocess.Popen(
        [str(BIN / "lake"), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=user.env,
        # Ctrl-C as in a terminal: a run started in the background (`cmd &` in a script, as
        # CI may be) passes SIGINT on ignored, and Python then never raises KeyboardInterrupt
        # (two clean-clone runs here failed so: the upload went through, exit 0)
        preexec_fn=_sigint_default,
    )
    deadline = time.monotonic() + 60
    while True:  # interrupt once the transfer is under way
        assert time.monotonic() < deadline, "the upload never started"
        assert proc.poll() is None, proc.communicate()
        listed = httpx.get(f"{user.platform.url}/api/lake/uploads", headers=admin).json()
        if listed and listed[0]["received_bytes"] > 0:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    upload_id = listed[0]["id"]
    assert f"interrupted: upload {upload_id} of big.csv is kept" in err
    resume = next(line for line in err.splitlines() if line.startswith("resume with: "))
    command = shlex.split(resume.removeprefix("resume with: "))
    assert command[:3] == ["lake", "upload", str(big)]
    assert command[-2:] == ["--resume", upload_id]

    pending = user.json("uploads")
    cols = [c["name"] for c in pending["columns"]]
    (row,) = pending["rows"]
    entry = dict(zip(cols, row, strict=True))
    assert entry["id"] == upload_id
    assert entry["dataset"] == "big"
    assert entry["state"] == "open"
    assert 0 < entry["bytes_done"] < entry["bytes_total"] == big.stat().st_size
    assert entry["age"].endswith("s")
    table = user.ok("lake", "uploads")
    assert upload_id in table

    code, out, shown = on_terminal([str(BIN / "lake"), *command[1:]], user.env)
    assert code == 0, shown
    assert out.strip().startswith("big: version 1, 300000 rows")
    assert "uploading big.csv" in shown  # the progress: the transfer, then the conversion
    assert "converting big.csv" in shown
    assert user.json("uploads")["rows"] == []  # committed: no longer unfinished

    printed = user.ok("lake", "query", "SELECT * FROM big ORDER BY id", "--csv")
    rows = list(csv.reader(io.StringIO(printed)))
    expected = duckdb.sql(f"SELECT * FROM read_csv('{big}') ORDER BY id").fetchall()
    assert rows[0] == ["id", "name", "v"]
    assert rows[1:] == [[str(i), n, "" if v is None else str(v)] for i, n, v in expected]


def test_ls_schema_query_and_rm_on_the_running_platform(user: User, sales: Path) -> None:
    # No --node: the lake commands find the gateway `platform up` runs on PLATFORM_HOME.
    out = user.ok("lake", "upload", str(sales), "--name", "Sales")
    assert out.strip() == "Sales: version 1, 3 rows in 1 chunks"
    assert "Sales" in user.ok("lake", "ls")

    schema = user.json("schema", "Sales")
    types = {r[0]: r[1] for r in schema["rows"]}
    assert types == {"id": "i64", "name": "utf8", "amount": "f64", "note": "utf8"}
    described = user.json("query", "DESCRIBE sales")
    assert {r[0]: r[1] for r in described["rows"]} == types  # the same names as the schema

    sql = "SELECT * FROM sales ORDER BY id"  # the dataset is `Sales`: names are case-insensitive
    expected = duckdb.sql(f"SELECT * FROM read_csv('{sales}') ORDER BY id").fetchall()
    result = user.json("query", sql)
    assert [c["type"] for c in result["columns"]] == ["i64", "utf8", "f64", "utf8"]
    assert [tuple(r) for r in result["rows"]] == expected
    rows = list(csv.reader(io.StringIO(user.ok("lake", "query", sql, "--csv"))))
    assert rows[0] == ["id", "name", "amount", "note"]
    assert rows[1:] == [["" if v is None else str(v) for v in r] for r in expected]

    table = user.ok("lake", "query", "SELECT * FROM SALES ORDER BY id")
    for literal in ("[[null, 1]]", "[bold]bob[/bold]", "NULL", "i64", "utf8", "f64", "(3 rows)"):
        assert literal in table, table
    assert "int64" not in table

    kept = user.run("lake", "rm", "Sales", input="n\n")
    assert kept.returncode == 1
    assert "remove dataset Sales (3 rows, version 1)?" in kept.stdout
    assert "Sales" in owners(user)
    assert user.ok("lake", "rm", "Sales", "--yes").strip() == "removed Sales"
    assert owners(user) == {}


def test_an_error_is_one_line_with_the_code_of_its_kind(
    jobs_platform: SharedPlatform, tmp_path: Path
) -> None:
    user = User(jobs_platform, tmp_path)  # it changes nothing: the session's platform will do
    line = one_error_line(user.run("lake", "query", "SELECT * FROM nope"), 2)
    assert "no dataset named 'nope'" in line
    one_error_line(user.run("lake", "schema", "nope"), 4)
    line = one_error_line(user.run("lake", "ls", "--token", "not-a-token"), 3)
    assert "invalid token" in line
    one_error_line(user.run("lake", "ls", "--json", "--csv"), 2)
    one_error_line(user.run("platform", "login", "--url", "localhost:1"), 2)
