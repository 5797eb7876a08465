"""The CLIs (`platform`, `lake`, `elytra`) on bad and odd input: one-line errors, never a
traceback, never acting on the wrong object; tokens, uploads and CSV output kept honest.
Adversarial tests of issue 13 (a break-it pass): each test names the defect it found.

One real `platform up --port 0` on a temp home for the module (started with the kit's launcher,
stopped at the end), and the installed `platform` / `lake` commands run as child processes
by a "user" whose shell has PLATFORM_HOME set and a private config dir.
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import duckdb
import pytest

from platform_core.testing import ServerProcess, launch

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(600)
SALES = "id,name,amount\n1,ada,1.5\n2,bob,\n3,cy,-2.25\n"


class User:
    def __init__(self, home: Path, config: Path, url: str) -> None:
        self.url = url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
        self.env |= {"PLATFORM_HOME": str(home), "XDG_CONFIG_HOME": str(config)}

    def run(self, tool: str, *args: str, cwd: Path | None = None, **env: str):
        return subprocess.run(
            [str(BIN / tool), *args],
            capture_output=True,
            text=True,
            input="",
            env=self.env | env,
            timeout=180,
            check=False,
            cwd=cwd,
        )

    def ok(self, tool: str, *args: str, **env: str) -> str:
        done = self.run(tool, *args, **env)
        assert done.returncode == 0, f"{tool} {args}: {done.returncode}\n{done.stderr}"
        return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The stderr of an expected failure: exactly one `error:` line, no traceback."""
    assert done.returncode not in (0, 1), f"exit {done.returncode}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("break13")
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env |= {"LAKE_FLIGHT_PORT": "0", "PLATFORM_LOG_LEVEL": "warning"}
    server = launch(
        [str(BIN / "platform"), "up", "--port", "0", "--home", str(home)],
        env=env,
        timeout=60,
        cwd=root,
    )
    try:
        yield server, home
    finally:
        server.stop()


@pytest.fixture
def user(gateway: tuple[ServerProcess, Path], tmp_path: Path) -> User:
    server, home = gateway
    return User(home, tmp_path / "config", server.url)


@pytest.fixture
def sales(user: User, tmp_path: Path) -> str:
    path = tmp_path / "sales.csv"
    path.write_text(SALES)
    user.ok("lake", "upload", str(path), "--name", "sales")
    return "sales"


# --- 1. dataset names reach the URL path unchecked --------------------------------------------


@pytest.mark.parametrize("name", ["../uploads", "", "../../../health"])
def test_odd_dataset_names_in_lake_schema_are_one_line_errors(
    user: User, sales: str, name: str
) -> None:
    """`lake schema ../uploads` printed a TypeError traceback (the name was pasted into the URL
    path, so the client read GET /api/lake/uploads); `lake schema ''` a JSONDecodeError."""
    one_line_error(user.run("lake", "schema", name))


def test_lake_rm_with_a_fragment_in_the_name_removes_nothing(user: User, sales: str) -> None:
    """`lake rm 'sales#x' --yes` removed dataset `sales`: '#x' became the URL's fragment."""
    done = user.run("lake", "rm", f"{sales}#x", "--yes")
    one_line_error(done)
    names = {row[0] for row in json.loads(user.ok("lake", "ls", "--json"))["rows"]}
    assert sales in names


def test_lake_schema_with_a_query_string_is_refused(user: User, sales: str) -> None:
    """`lake schema 'sales?version=1'` showed `sales` (the '?' started a query string)."""
    one_line_error(user.run("lake", "schema", f"{sales}?version=1"))


# --- 2. malformed URLs ------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://[::1", "http://\u24dbocalhost:1", "http://[zz]:1"])
def test_malformed_node_url_is_a_one_line_error(user: User, url: str) -> None:
    """`lake ls --node 'http://[::1'` printed a ValueError traceback (urlsplit raised), and an
    IDNA-invalid host an httpx.InvalidURL traceback."""
    line = one_line_error(user.run("lake", "ls", "--node", url))
    assert "URL" in line


def test_malformed_login_url_is_a_one_line_error(user: User) -> None:
    one_line_error(user.run("platform", "login", "--url", "http://[::1"))
    one_line_error(user.run("platform", "logout", "--url", "http://[::1"))


# --- 3. a token minted from PLATFORM_SECRET sent to another machine ----------------------------


class _Capture(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        _Capture.seen.append(self.headers.get("Authorization"))
        body = b"[]"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: just picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_platform_secret_is_never_used_to_mint_a_token_for_another_machine(
    user: User, gateway: tuple[ServerProcess, Path]
) -> None:
    """With PLATFORM_SECRET exported (as for a local node), `lake ls --node http://OTHER:PORT`
    sent a freshly minted *admin* token to that other machine, which could replay it here."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback address to listen on")
    _, home = gateway
    server = http.server.HTTPServer((address, 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Capture.seen.clear()
    try:
        url = f"http://{address}:{server.server_address[1]}"
        secret = (home / "secret").read_text().strip()
        user.run("lake", "ls", "--node", url, PLATFORM_SECRET=secret)
    finally:
        server.shutdown()
        server.server_close()
    assert _Capture.seen, "the client never called the capture server"
    assert _Capture.seen == [None] * len(_Capture.seen), f"sent {_Capture.seen}"


# --- 4. demo-data --upload ignores the running platform and the kit's token -------------------


def test_demo_data_upload_uses_the_running_platform(user: User, tmp_path: Path) -> None:
    """`platform demo-data --upload` (the README's walkthrough) posted to a hard-coded
    127.0.0.1:8080 and, given --url, sent no token (only PLATFORM_TOKEN was read)."""
    done = user.run("platform", "demo-data", "--rows", "20", "--upload", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    names = {row[0] for row in json.loads(user.ok("lake", "ls", "--json"))["rows"]}
    assert {"customers", "sales"} <= names


# --- 5. --csv loses the difference between NULL and '' ----------------------------------------


def test_query_csv_keeps_null_apart_from_empty_string(user: User, tmp_path: Path) -> None:
    """`lake query --csv` wrote NULL and '' both as an empty field; DuckDB writes '' as "",
    so the output differed from DuckDB's and reading it back turned '' into NULL."""
    path = tmp_path / "e.parquet"
    duckdb.sql(
        f"copy (select * from (values (1, ''), (2, null), (3, 'x')) t(id, s)) to '{path}' "
        "(format parquet)"
    )
    user.ok("lake", "upload", str(path), "--name", "empties")
    out = user.ok("lake", "query", "select id, s from empties order by id", "--csv")
    back = tmp_path / "back.csv"
    back.write_text(out)
    got = duckdb.sql(
        f"select id, s from read_csv('{back}', all_varchar=true, allow_quoted_nulls=false) "
        "order by id"
    )
    want = duckdb.sql(f"select id::varchar, s from '{path}' order by id")
    assert got.fetchall() == want.fetchall(), out
    oracle = tmp_path / "oracle.csv"
    duckdb.sql(f"copy (select id, s from '{path}' order by id) to '{oracle}' (header)")
    assert out == oracle.read_text()
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["id", "s"]


# --- 6. --resume silently ignores --name and the file given -----------------------------------


def test_resume_with_another_name_or_file_is_refused(user: User, tmp_path: Path) -> None:
    """`lake upload OTHER --name other --resume ID` went on with upload ID (another dataset,
    another file): --name was silently ignored and the parts mixed the two files (or the node
    answered "part N has 0 bytes")."""
    big = tmp_path / "a.csv"
    big.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(20000)))
    from lake import Client  # the library starts the upload and leaves it open

    token = user.ok("platform", "token", "--admin").strip()
    with Client(user.url, token) as client:
        info = client.start_upload(big, "first", part_size=1 << 16)
    other = tmp_path / "b.csv"
    other.write_text(SALES)
    done = user.run("lake", "upload", str(other), "--name", "second", "--resume", str(info["id"]))
    line = one_line_error(done)
    assert info["id"] in line or "first" in line


# --- 8. column names that differ only in case -----------------------------------------------


def test_csv_header_names_differing_in_case_are_deduplicated_as_duckdb_does(
    user: User, tmp_path: Path
) -> None:
    """A CSV header `a,a,A` became columns a, a_1, A: `lake schema` and DESCRIBE said `A`, but
    SQL could not name it (`SELECT A` read `a`; `SELECT *` called it A_1_1). DuckDB's read_csv
    (the oracle) names them a, a_1, A_2."""
    path = tmp_path / "dup.csv"
    path.write_text("a,a,A\n1,2,3\n")
    user.ok("lake", "upload", str(path), "--name", "dupcase")
    want = duckdb.sql(f"select * from read_csv('{path}')").columns
    schema = [row[0] for row in json.loads(user.ok("lake", "schema", "dupcase", "--json"))["rows"]]
    result = json.loads(user.ok("lake", "query", "select * from dupcase", "--json"))
    assert schema == want
    assert [c["name"] for c in result["columns"]] == want
    assert result["rows"] == [[1, 2, 3]]


def test_parquet_columns_differing_only_in_case_are_refused(user: User, tmp_path: Path) -> None:
    """A Parquet file with columns `a` and `A` was accepted: the schema listed `A`, which no
    query can read (`SELECT A` reads `a`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "case.parquet"
    pq.write_table(pa.table({"a": [1], "A": [2]}), path)
    line = one_line_error(user.run("lake", "upload", str(path), "--name", "casecols"))
    assert "case" in line


def test_upload_errors_never_show_the_nodes_paths(
    user: User, gateway: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    """An unsupported Parquet column type was reported as `column "st" of "<PLATFORM_HOME>/lake/
    <node>/uploads/<id>/data": ...`: the node's internal path, shown to any client."""
    _, home = gateway
    path = tmp_path / "struct.parquet"
    duckdb.sql(f"copy (select {{'a': 1}} as st) to '{path}' (format parquet)")
    line = one_line_error(user.run("lake", "upload", str(path), "--name", "structs"))
    assert str(home) not in line
    assert "/uploads/" not in line


def test_elytra_cancel_refuses_a_path_as_job_id(user: User) -> None:
    """`elytra cancel '../../lake/uploads/ID/complete#'` posted to whatever route the id spelled
    (the id was pasted into the URL path unchecked)."""
    line = one_line_error(user.run("elytra", "cancel", "../../lake/datasets/x#", "--url", user.url))
    assert "job id" in line


@pytest.mark.parametrize(
    "option", [["--part-mb", "nan"], ["--part-mb", "inf"], ["--parallel", "0"]]
)
def test_upload_odd_part_sizes_are_one_line_errors(
    user: User, tmp_path: Path, option: list[str]
) -> None:
    """`lake upload --part-mb nan` printed a ValueError traceback (inf: OverflowError);
    `--parallel 0` (or -3) was silently taken as 1."""
    path = tmp_path / "s.csv"
    path.write_text(SALES)
    one_line_error(user.run("lake", "upload", str(path), "--name", "odd", *option))
