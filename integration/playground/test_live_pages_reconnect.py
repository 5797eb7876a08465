"""Live pages say when their stream drops, and are live again when `platform up` comes back
(break-test "break14", independent review of #14).

Its own platform (the session's is shared): started, killed with -9 under an open Cluster
page, started again on the same port and home. The Cluster page said "Live" (and Datasets
"live") over a dead stream and had no way to say otherwise; now they say they are
reconnecting, and are live again after.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, expect
from servers import command, launch
from ui_browser import sign_in

from platform_core.testing import ServerProcess


@pytest.fixture
def own_platform(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    home = tmp_path / "home"
    first = launch([str(command("platform")), "up", "--port", "0", "--home", str(home)], tmp_path)
    servers = [first]
    yield servers
    for s in servers:
        if s.proc.poll() is None:
            s.stop()


def test_live_pages_say_when_their_stream_drops_and_recover_after_a_restart(
    context: BrowserContext, own_platform: list[ServerProcess], tmp_path: Path
) -> None:
    first = own_platform[0]
    page = context.new_page()
    sign_in(page, first.url + "/cluster/")
    status = page.get_by_role("status").filter(has_text="Live")
    expect(status).to_have_text("Live")
    datasets = sign_in(context.new_page(), first.url + "/datasets/")  # a tab of its own
    expect(datasets.get_by_test_id("live")).to_have_text("live")

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    expect(page.get_by_role("status").filter(has_text="Reconnecting")).to_be_visible(timeout=10_000)
    expect(datasets.get_by_test_id("live")).to_have_text("reconnecting…")

    port = str(urlsplit(first.url).port)
    home = tmp_path / "home"
    again = launch(
        [str(command("platform")), "up", "--port", port, "--home", str(home)], tmp_path / "again"
    )
    own_platform.append(again)
    expect(page.get_by_role("status").filter(has_text="Live")).to_have_text("Live", timeout=30_000)
    expect(datasets.get_by_test_id("live")).to_have_text("live", timeout=30_000)
