"""The UI's file serving against requests from outside: redirects stay on this host, an
overlong path is a 404, a 405 names its methods, a page's CSP allows only its own scripts.

(Break-test "break14", an independent review of issue 14.)"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from platform_core import PlatformSettings
from platform_gateway import create_app


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    root = tmp_path / "out"
    for page in ("sql", "cluster", "_next/static"):
        (root / page).mkdir(parents=True)
    (root / "index.html").write_text("<html>home</html>")
    (root / "sql" / "index.html").write_text("<html>sql</html>")
    (root / "cluster" / "index.html").write_text("<html>cluster</html>")
    (root / "404.html").write_text("<html>not found</html>")
    settings = PlatformSettings(home=tmp_path / "home", ui_dir=root)
    return TestClient(create_app(settings, plugins=[]), raise_server_exceptions=False)


@pytest.mark.parametrize("path", ["//cluster", "///cluster", "//cluster?x=1", "//_next/static"])
def test_the_trailing_slash_redirect_never_points_to_another_host(
    client: TestClient, path: str
) -> None:
    # `//cluster/` in a Location header is protocol-relative: the browser goes to http://cluster/
    r = client.get(f"http://testserver{path}", follow_redirects=False)  # a path, not a host
    assert r.status_code == 308
    location = r.headers["location"]
    assert location.startswith("/"), location
    assert not location.startswith("//"), location
    assert not location.startswith("/\\"), location


@pytest.mark.parametrize("path", ["/" + "a" * 300, "/" + "a/" * 3000, "/sql/" + "b" * 256 + ".js"])
def test_a_path_too_long_for_the_file_system_is_a_404_not_a_500(
    client: TestClient, path: str
) -> None:
    r = client.get(path)
    assert r.status_code == 404, r.text[:200]
    assert r.text == "<html>not found</html>"


def test_a_405_says_which_methods_are_allowed(client: TestClient) -> None:
    r = client.request("DELETE", "/sql/")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def _script_src(csp: str) -> list[str]:
    directive = next(d.strip() for d in csp.split(";") if d.strip().startswith("script-src"))
    return directive.split()[1:]


def test_a_pages_csp_allows_its_own_inline_scripts_by_hash_and_no_others(tmp_path: Path) -> None:
    # 'unsafe-inline' for scripts would turn any markup injected into a page into script
    # (an <img onerror>); the export's inline bootstrap scripts are fixed, so hash them.
    root = tmp_path / "out"
    root.mkdir()
    boot = "(self.__next_f=self.__next_f||[]).push([0])"
    (root / "index.html").write_text(
        f'<html><script src="/_next/a.js" async=""></script><script>{boot}</script>'
        '<script id="_R_">self.x = "</p>"</script></html>'
    )
    settings = PlatformSettings(home=tmp_path / "home", ui_dir=root)
    csp = TestClient(create_app(settings, plugins=[])).get("/").headers["content-security-policy"]
    sources = _script_src(csp)
    assert "'unsafe-inline'" not in sources
    assert "'unsafe-eval'" not in sources
    assert "'self'" in sources
    digests = {
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in (boot, 'self.x = "</p>"')
    }
    assert digests <= set(sources), (digests, sources)
