"""break14: the UI's file serving attacked from outside (an independent review of issue 14)."""

from __future__ import annotations

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
