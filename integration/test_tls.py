"""`platform up` over HTTPS: health, `platform login`, a query through the `lake` CLI with
PLATFORM_TLS_CA, and a client without the CA refused with a clear certificate error."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
from servers import command, launch

from platform_core import load_settings
from platform_core.running import find_running
from platform_core.testing import make_certificates
from platform_core.tls import client_context


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def test_platform_up_over_https(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    home = tmp_path / "home"
    tls = certs.server_env()
    up = [str(command("platform")), "up", "--port", "0", "--home", str(home)]
    server = launch(up, tmp_path / "run", env=tls)
    try:
        url = server.url
        assert url.startswith("https://127.0.0.1:")
        assert f"docs: {url}/docs" in server.banner
        assert find_running(home) == url  # platform.json says https:// too
        verify = client_context(load_settings(tls_ca=certs.ca))
        assert httpx.get(f"{url}/health", verify=verify).status_code == 200

        base = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
        env = {**base, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PLATFORM_HOME": str(home)}
        trusted = {**env, "PLATFORM_TLS_CA": str(certs.ca)}
        login = run(
            [str(command("platform")), "login", "--url", url], trusted
        )  # dev mode: loopback
        assert login.returncode == 0, login.stderr
        saved = json.loads((tmp_path / "config" / "platform" / "tokens.json").read_text())
        assert list(saved) == [url]

        data = tmp_path / "people.csv"
        data.write_text("name,age\nann,31\nbob,42\n")
        lake = str(command("lake"))
        upload = run([lake, "upload", str(data), "--name", "people", "--node", url], trusted)
        assert upload.returncode == 0, upload.stderr
        query = run(
            [lake, "query", "SELECT sum(age) AS s FROM people", "--node", url, "--json"], trusted
        )
        assert query.returncode == 0, query.stderr
        assert "73" in query.stdout

        # Without the CA (system trust only): refused, one line naming the setting.
        blind = run([lake, "ls", "--node", url], env)
        assert blind.returncode != 0
        assert "is not trusted" in blind.stderr
        assert "PLATFORM_TLS_CA" in blind.stderr
        assert "Traceback" not in blind.stderr
    finally:
        server.stop()
