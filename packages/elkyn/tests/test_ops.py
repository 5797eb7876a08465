"""Operations: backup while serving, restore, JSON export/import, metrics, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from elkyn import Store
from elkyn.ops import backup, restore
from elkyn.testing import stop_server


def elkyn(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PLATFORM_HOME": str(home), "PLATFORM_SECRET": "s" * 40, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "elkyn", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_backup_while_serving_is_consistent_and_restores(launch: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    srv = launch(home)
    admin = srv.signer.issue("ops", admin=True)
    headers = {"Authorization": f"Bearer {admin}"}
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with httpx.Client(base_url=srv.url, headers=headers) as c:
            i = 0
            while not stop.is_set():
                # each write moves both counters together: a torn copy would show a != b
                c.patch("/.json", json={"a": i, "b": i, f"items/{i}": True})
                written.append(i)
                i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 50:
            time.sleep(0.01)
        result = elkyn("backup", str(tmp_path / "bk"), home=home)
        assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        thread.join()
    with Store(tmp_path / "bk") as copy:
        snap = copy.get("/")
    assert snap["a"] == snap["b"]
    assert len(snap["items"]) == snap["a"] + 1
    stop_server(srv.process)

    result = elkyn("restore", str(tmp_path / "bk"), home=home)
    assert result.returncode != 0
    assert "--force" in result.stderr
    result = elkyn("restore", str(tmp_path / "bk"), "--force", home=home)
    assert result.returncode == 0, result.stderr
    with Store(home / "elkyn") as db:
        assert db.get("/a") == snap["a"]

    result = elkyn("backup", str(tmp_path / "bk"), home=home)  # not empty: refused
    assert result.returncode != 0
    assert "not empty" in result.stderr


def test_export_and_import(tmp_path: Path) -> None:
    home = tmp_path / "home"
    src = tmp_path / "in.json"
    src.write_text(json.dumps({"users": {"ann": {"age": 3}}, "list": [1, 2]}))
    result = elkyn("import", str(src), home=home)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out.json"
    result = elkyn("export", str(out), "--at", "/users", home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == {"ann": {"age": 3}}
    bad = tmp_path / "bad.json"
    bad.write_text('{"a.b": 1}')
    result = elkyn("import", str(bad), home=home)
    assert result.returncode != 0
    assert "Invalid key" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics(launch: Any, tmp_path: Path) -> None:
    srv = launch(tmp_path / "home")
    admin = srv.signer.issue("ops", admin=True)
    for i in range(5):
        httpx.put(f"{srv.url}/m/{i}.json", json=i, headers={"Authorization": f"Bearer {admin}"})
    text = httpx.get(srv.url + "/metrics").text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["elkyn_writes_total"] == 5
    assert values["elkyn_last_seq"] == 5
    assert values["elkyn_subscribers"] == 0
    assert 'elkyn_requests_total{method="PUT"}' in values


def test_dev_is_refused_on_a_public_address(tmp_path: Path) -> None:
    result = elkyn("serve", "--dev", "--host", "0.0.0.0", "--port", "0", home=tmp_path)
    assert result.returncode != 0
    assert "loopback" in result.stderr


def test_logs_are_one_json_object_per_line() -> None:
    import logging

    from platform_core import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        import sys as _sys

        record = logging.LogRecord(
            "elkyn.x", logging.ERROR, "f", 1, "map grew to %d MiB", (128,), _sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line.replace("\\n", "")
    parsed = json.loads(line)
    assert parsed["level"] == "error"
    assert parsed["msg"] == "map grew to 128 MiB"
    assert parsed["logger"] == "elkyn.x"
    assert "ValueError: boom" in parsed["exc"]


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = elkyn("serve", "--port", "0", "--path", str(blocker / "db"), home=tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    result = elkyn("serve", "--port", "0", "--replica-of", "primary:9000", home=tmp_path)
    assert result.returncode != 0
    assert "http://host:port" in result.stderr
    result = elkyn("export", "-", "--path", str(tmp_path / "nothing-here"), home=tmp_path)
    assert result.returncode != 0
    assert "no Elkyn database" in result.stderr
    assert not (tmp_path / "nothing-here").exists()  # export never creates a database


def test_database_id_is_kept_on_reopen_and_renewed_by_restore(tmp_path: Path) -> None:
    with Store(tmp_path / "db") as db:
        db.set("/a", 1)
        first = db.database_id
        assert len(first) == 32
    with Store(tmp_path / "db") as db:
        assert db.database_id == first  # the same database, reopened
    with Store(memory=True) as m1, Store(memory=True) as m2:
        assert m1.database_id != m2.database_id != first
    backup(tmp_path / "db", tmp_path / "copy")
    restore(tmp_path / "copy", tmp_path / "restored")
    with Store(tmp_path / "restored") as db:
        assert db.get("/a") == 1
        assert db.database_id not in ("", first)  # a restored copy is another database


def test_drill_backup_while_a_thread_writes_has_no_torn_values_and_a_consistent_seq(
    tmp_path: Path,
) -> None:
    """`elkyn backup` (another process) of a store one thread writes to without pause: the
    copy is the state after some prefix of the acknowledged writes, whole (no torn value), and
    its sequence number counts exactly that prefix."""
    keys = 16
    acked: list[int] = []  # n of each write, once set() returned (committed)
    stop = threading.Event()
    failed: list[BaseException] = []

    def value(n: int) -> dict[str, Any]:
        return {"n": n, "blob": f"{n:08d}" * (200 + n % 300)}  # multi-page values

    with Store(tmp_path / "db") as db:
        base = db.last_seq()

        def writer() -> None:
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    db.set(f"/k/key{n % keys}", value(n))
                    acked.append(n)
            except BaseException as exc:  # reported below
                failed.append(exc)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while len(acked) < 100:
                time.sleep(0.01)
            before = len(acked)
            result = elkyn(
                "backup", str(tmp_path / "bk"), "--path", str(tmp_path / "db"), home=tmp_path
            )
            after = len(acked)
        finally:
            stop.set()
            thread.join()
        assert not failed, failed
        assert result.returncode == 0, result.stderr
    with Store(tmp_path / "bk") as copy:
        snap = copy.get("/k")
        seq = copy.last_seq()
    newest = max(v["n"] for v in snap.values())
    assert before <= newest <= after  # every write acked before the copy began is in it
    for j in range(keys):  # the state after writes 1..newest, exactly
        expected = max((n for n in range(1, newest + 1) if n % keys == j), default=None)
        assert snap.get(f"key{j}") == (None if expected is None else value(expected)), j
    assert seq == base + newest  # one sequence number per write, none beyond the copy
