"""``elytra.connect(url, token=...)``: pipelines built here, run by the platform, as DuckDB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

import elytra
from lake import Client
from platform_core import PlatformSettings, auth, load_settings
from platform_gateway.testing import free_port

StartPlatform = Callable[..., Any]


def _rows(table: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


def test_a_remote_session_runs_pipelines_on_the_platform(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    platform = start_platform(free_port(), env={"LAKE_CHUNK_BYTES": str(256 * 1024)})
    signer = auth.signer(load_settings(PlatformSettings, home=platform.home), create=False)
    alice = signer.issue("alice")
    sales, groups = tmp_path / "sales.csv", tmp_path / "groups.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 5 AS grp, (i * 7 % 1000)::BIGINT AS amount "
        f"FROM range(100000) t(i)) TO '{sales}' (HEADER)"
    )
    groups.write_text("grp,label\n" + "".join(f"{g},g{g}\n" for g in range(4)))
    with Client(platform.url, alice) as client:
        client.upload(sales, "sales", part_size=1 << 20)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv('{sales}')")
    con.execute(f"CREATE VIEW groups AS SELECT * FROM read_csv('{groups}')")

    with elytra.connect(platform.url, token=alice) as s:
        p = s.dataset("sales")
        agg = p.filter("amount > 500").group_by("grp").agg("count(*) AS n", "sum(amount) AS t")
        assert _rows(agg.collect()) == sorted(
            con.execute(
                "SELECT grp, count(*), sum(amount) FROM sales WHERE amount > 500 GROUP BY grp"
            ).fetchall(),
            key=repr,
        )
        top = p.top_k(5, "amount DESC", "id").select("id", "amount").collect()
        assert [tuple(r.values()) for r in top.to_pylist()] == con.execute(
            "SELECT id, amount FROM sales ORDER BY amount DESC, id LIMIT 5"
        ).fetchall()
        labels = s.read_csv(groups)  # a local file: uploaded as a temporary dataset
        temporary = s.remote.temporary[0]  # type: ignore[union-attr]
        joined = p.join(labels, on="grp", how="inner").group_by("label").agg("count(*) AS n")
        assert _rows(joined.collect()) == sorted(
            con.execute(
                "SELECT label, count(*) FROM sales JOIN groups USING (grp) GROUP BY label"
            ).fetchall(),
            key=repr,
        )
        job = p.distinct().submit()
        assert job.wait(60) == "succeeded"
        assert job.result().num_rows == 100000
        with pytest.raises(elytra.PipelineError, match="only run embedded"):
            p.map_batches(lambda b: b).collect()
        with pytest.raises(elytra.PipelineError, match="did you mean"):
            s.dataset("sale")
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        r = http.get(
            f"/api/lake/datasets/{temporary}", headers={"authorization": f"Bearer {alice}"}
        )
        assert r.status_code == 404  # the temporary dataset went with the session
    # Without a token, a URL gets what the CLIs send there: this test platform is in dev mode
    # on loopback, so that is the token its login gives (admin), as `elytra run --url` has.
    import jwt

    from platform_core.cli import resolve_token

    unverified = {"verify_signature": False}
    cli = jwt.decode(resolve_token(platform.url) or "", options=unverified)
    with elytra.connect(platform.url) as s:
        assert s.dataset("sales").count() == 100000
        session = jwt.decode(s._token or "", options=unverified)
    assert (session["sub"], session["admin"], session["src"]) == (cli["sub"], True, "dev")


def test_connect_on_a_served_home_uses_the_running_platform(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    platform = start_platform(free_port())
    assert (platform.home / "platform.json").is_file()
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    with elytra.connect(home=platform.home) as s:
        assert s.remote is not None  # not a second opening of its LMDB and lake
        assert s.remote.url == platform.url
        t = s.read_csv(csv).agg("sum(a) AS sa").collect()
        assert t.column("sa").to_pylist() == [4]
    assert platform.stop() == 0
    assert not (platform.home / "platform.json").exists()


CONNECT_AND_WRITE = """
import json, sys
import jwt
import elytra
from platform_core.cli import default_url, resolve_token

with elytra.connect() as s:
    assert s.remote is not None
    s.read_csv(sys.argv[1]).write("by_session")
    session = jwt.decode(s._token, options={"verify_signature": False})
with elytra.connect(default_url()) as s:  # the URL given, no token: the same identity
    assert s.dataset("by_session").count() == 2
    by_url = jwt.decode(s._token, options={"verify_signature": False})
assert [by_url["sub"], by_url["admin"]] == [session["sub"], session["admin"]], by_url
cli = jwt.decode(resolve_token(default_url()), options={"verify_signature": False})
print(json.dumps({"session": [session["sub"], session["admin"]], "cli": [cli["sub"], cli["admin"]]}))
"""


def test_connect_beside_a_running_platform_acts_as_the_clis_identity(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    """One person, one identity: ``elytra.connect()`` on a home a platform serves acts as the
    CLIs do there (the README's ``admin``), not as the OS user; what it writes is owned by the
    same name as what ``lake upload`` writes."""
    import getpass
    import json
    import os
    import subprocess
    import sys

    platform = start_platform(free_port())
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env |= {"PLATFORM_HOME": str(platform.home), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    bindir = Path(sys.executable).parent

    def run(*argv: str) -> str:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    ids = json.loads(run(sys.executable, "-c", CONNECT_AND_WRITE, str(csv)).strip())
    assert ids["session"] == ids["cli"], ids
    assert ids["session"] == ["admin", True]
    run(str(bindir / "lake"), "upload", str(csv), "--name", "by_cli")
    listed = json.loads(run(str(bindir / "lake"), "ls", "--json"))  # {"columns", "rows"}
    columns = [c["name"] for c in listed["columns"]]
    name, owner = columns.index("name"), columns.index("owner")
    owners = {row[name]: row[owner] for row in listed["rows"]}
    assert owners["by_session"] == owners["by_cli"] == "admin", owners
    if getpass.getuser() != "admin":
        assert getpass.getuser() not in owners.values()
