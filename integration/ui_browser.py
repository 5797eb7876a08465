"""Helpers of the playground's browser tests (fixtures in integration/playground/conftest.py):
the platform they share, Chromium's path and flags, the browser-error watch, sign-in."""

from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page
from servers import Server

VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM_FLAGS = [
    # As root in a container, without a GPU, on a machine whose outside network is closed.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium (deps/debian-packages.txt; `make setup` installs it)."""
    found = os.environ.get("PLATFORM_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "chromium is not installed: run `make setup` (it installs deps/debian-packages.txt)"
        )
    return found


def ui_built() -> None:
    from platform_gateway.ui import BUILD_HINT, PACKAGED

    if not (PACKAGED / "index.html").is_file():
        pytest.fail(f"the web UI is not built into {PACKAGED}: {BUILD_HINT}")


@dataclass
class UIPlatform:
    """The running platform: its URL, home, process; `token()` mints an admin token over REST."""

    server: Server
    home: Path
    run_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def token(self) -> str:
        r = httpx.post(f"{self.url}/api/login", json={}, timeout=30)
        r.raise_for_status()
        return str(r.json()["token"])

    def client(self) -> httpx.Client:
        """An httpx client with an admin token, for setting up data the UI then shows."""
        return httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {self.token()}"}, timeout=60
        )


@dataclass
class BrowserErrors:
    """What went wrong in the pages of one test, as the browser reported it."""

    messages: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    """Substrings of messages a test expects (e.g. the 404 it provokes on purpose)."""

    def watch(self, page: Page, origin: str) -> None:
        def console(msg: ConsoleMessage) -> None:
            if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                self.messages.append(f"console: {msg.text}")

        page.on("console", console)
        page.on("pageerror", lambda exc: self.messages.append(f"uncaught: {exc}"))
        page.on(
            "requestfailed",
            lambda req: (
                req.url.startswith(origin)
                and (req.failure or "") not in ("net::ERR_ABORTED",)
                and self.messages.append(f"request failed: {req.method} {req.url}: {req.failure}")
            ),
        )
        # The console says only "Failed to load resource: 404"; the response names the URL.
        page.on(
            "response",
            lambda res: (
                res.status >= 400
                and self.messages.append(f"answer {res.status}: {res.request.method} {res.url}")
            ),
        )

    def unexpected(self) -> list[str]:
        return [m for m in self.messages if not any(a in m for a in self.allowed)]


def sign_in(page: Page, path: str = "/") -> Page:
    """Open `path`, get sent to sign in, click the dev-mode button, and land back on `path`."""
    page.goto(path)
    page.get_by_role("button", name="Sign in as admin (dev mode)").click()
    page.wait_for_url(lambda u: "/signin" not in u)
    return page


def choose_file(page: Page, path: Path, name: str, part_kib: int) -> None:
    """Pick `path` with the page's file chooser, name the dataset, set the part size, upload."""
    page.get_by_label("Choose a file to upload").set_input_files(path)
    form = page.get_by_role("form", name="New upload")
    form.get_by_label("Dataset name").fill(name)
    form.get_by_text("Part size", exact=True).click()
    form.get_by_label("Part size (KiB)").fill(str(part_kib))
    form.get_by_role("button", name="Upload").click()


def upload_item(page: Page, name: str) -> Locator:
    """The Datasets page's entry of the upload into dataset `name`."""
    return page.get_by_test_id("upload").and_(page.locator(f'[data-name="{name}"]'))


PARTS_ROUTE = re.compile(r"/api/lake/uploads/[0-9A-Za-z]+/parts/\d+$")
"""The URL of one part of a resumable upload (``PUT``)."""


def write_csv(path: Path, rows: int, seed: int) -> Path:
    """A seeded CSV: an id, a text, an integer amount and a float (exact in binary)."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    lines = ["id,label,amount,ratio"]
    for i in range(rows):
        label = f"{rng.choice(words)}-{rng.randrange(10**6)}"
        lines.append(f"{i},{label},{rng.randrange(-50_000, 50_000)},{rng.randrange(0, 4096) / 16}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
