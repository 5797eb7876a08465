"""The web UI at /: files of a static export, deep links, API paths kept JSON, nothing outside."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from platform_core import PlatformSettings
from platform_gateway import create_app


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A miniature Next.js export: pages as directories, hashed assets, a 404 page."""
    root = tmp_path / "out"
    (root / "sql").mkdir(parents=True)
    (root / "_next" / "static" / "chunks").mkdir(parents=True)
    (root / "index.html").write_text("<html>home</html>")
    (root / "sql" / "index.html").write_text("<html>sql</html>")
    (root / "404.html").write_text("<html>not found</html>")
    (root / "_next" / "static" / "chunks" / "app-1a2b.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside the export")
    return root


def _client(tmp_path: Path, ui_dir: Path | None) -> TestClient:
    settings = PlatformSettings(home=tmp_path / "home", ui_dir=ui_dir)
    return TestClient(create_app(settings, plugins=[]))


def test_pages_and_deep_links(tmp_path: Path, export: Path) -> None:
    client = _client(tmp_path, export)
    home = client.get("/")
    assert home.status_code == 200
    assert home.text == "<html>home</html>"
    assert home.headers["cache-control"] == "no-cache"
    assert "unsafe-eval" not in home.headers["content-security-policy"]
    assert client.get("/sql/?q=SELECT%201").text == "<html>sql</html>"
    moved = client.get("/sql?q=1", follow_redirects=False)
    assert moved.status_code == 308
    assert moved.headers["location"] == "/sql/?q=1"


def test_hashed_assets_are_cached_for_a_year(tmp_path: Path, export: Path) -> None:
    asset = _client(tmp_path, export).get("/_next/static/chunks/app-1a2b.js")
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]


def test_an_unknown_page_is_the_exports_404(tmp_path: Path, export: Path) -> None:
    r = _client(tmp_path, export).get("/no/such/page/")
    assert r.status_code == 404
    assert r.text == "<html>not found</html>"


@pytest.mark.parametrize("path", ["/api/nope", "/api/lake/x", "/internal/y", "/health/x"])
def test_api_paths_never_fall_through_to_the_ui(tmp_path: Path, export: Path, path: str) -> None:
    r = _client(tmp_path, export).get(path)
    assert r.status_code == 404
    assert r.json()["type"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/../secret.txt", "/%2e%2e/secret.txt", "/sql/..%2f..%2fsecret.txt", "/.hidden"]
)
def test_nothing_outside_the_export_is_served(tmp_path: Path, export: Path, path: str) -> None:
    r = _client(tmp_path, export).get(path)
    assert "outside the export" not in r.text
    assert r.status_code in (404, 400)


def test_a_symlink_out_of_the_export_is_not_followed(tmp_path: Path, export: Path) -> None:
    os.symlink(tmp_path / "secret.txt", export / "leak.txt")
    r = _client(tmp_path, export).get("/leak.txt")
    assert r.status_code == 404
    assert "outside the export" not in r.text


def test_only_get_and_head(tmp_path: Path, export: Path) -> None:
    r = _client(tmp_path, export).post("/sql/")
    assert r.status_code == 405
    assert "GET" in r.json()["error"]


def test_without_a_built_ui_the_api_works_and_says_how_to_build_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(tmp_path, tmp_path / "empty")
    assert client.get("/health").status_code == 200
    r = client.get("/")
    assert r.status_code == 404
    assert "make setup" in r.json()["error"]
    assert client.get("/api/nope").json()["error"] == "not found: GET /api/nope"
    assert any("the web UI is not built" in rec.getMessage() for rec in caplog.records)


def test_login_mode_is_public_and_true_only_where_a_passwordless_login_would_work(
    tmp_path: Path,
) -> None:
    dev = create_app(PlatformSettings(home=tmp_path / "a"), plugins=[])
    local = TestClient(dev, base_url="http://127.0.0.1:8080", client=("127.0.0.1", 50000))
    assert local.get("/api/login").json() == {"dev_mode": True}
    assert local.post("/api/login", json={}).status_code == 200  # what the answer promised
    remote = TestClient(dev, base_url="http://127.0.0.1:8080", client=("10.1.2.3", 50000))
    assert remote.get("/api/login").json() == {"dev_mode": False}
    secured = create_app(PlatformSettings(home=tmp_path / "b", admin_password="pw"), plugins=[])
    client = TestClient(secured, base_url="http://127.0.0.1:8080", client=("127.0.0.1", 50000))
    assert client.get("/api/login").json() == {"dev_mode": False}


def _pack(export: Path) -> bytes:
    """Gzip copies as `make setup` writes them; returns the original script's bytes."""
    script = export / "_next" / "static" / "chunks" / "app-1a2b.js"
    body = b"console.log('x');\n" * 500
    script.write_bytes(body)
    (script.parent / (script.name + ".gz")).write_bytes(gzip.compress(body))
    page = export / "sql" / "index.html"
    (page.parent / "index.html.gz").write_bytes(gzip.compress(page.read_bytes()))
    return body


def test_a_gzip_copy_is_sent_to_browsers_that_accept_it(tmp_path: Path, export: Path) -> None:
    body = _pack(export)
    client = _client(tmp_path, export)
    packed = client.get(
        "/_next/static/chunks/app-1a2b.js", headers={"accept-encoding": "br, gzip;q=0.8"}
    )
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["content-type"].startswith("text/javascript")
    assert packed.headers["vary"] == "accept-encoding"
    assert int(packed.headers["content-length"]) < len(body) / 10
    assert packed.content == body  # httpx undoes the encoding: the same bytes arrive
    page = client.get("/sql/", headers={"accept-encoding": "gzip"})
    assert page.headers["content-encoding"] == "gzip"
    assert page.text == "<html>sql</html>"
    assert "unsafe-eval" not in page.headers["content-security-policy"]


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "br", "GZIP;q=0.0"])
def test_the_plain_file_goes_to_browsers_that_refuse_gzip(
    tmp_path: Path, export: Path, accept: str
) -> None:
    body = _pack(export)
    r = _client(tmp_path, export).get(
        "/_next/static/chunks/app-1a2b.js", headers={"accept-encoding": accept}
    )
    assert "content-encoding" not in r.headers
    assert r.headers["vary"] == "accept-encoding"
    assert r.content == body


def test_a_gzip_copy_that_is_a_symlink_out_is_not_sent(tmp_path: Path, export: Path) -> None:
    (tmp_path / "evil.gz").write_bytes(gzip.compress(b"outside the export"))
    (export / "index.html.gz").symlink_to(tmp_path / "evil.gz")
    r = _client(tmp_path, export).get("/", headers={"accept-encoding": "gzip"})
    assert r.text == "<html>home</html>"
    assert "content-encoding" not in r.headers
