"""What a restarted first platform decides from its home (``elkyn.platform_election``), found
broken from outside (issue 29 break tests, integration/test_break29x_*):

- ``election.members`` lost or emptied made it forget its Raft journal and serve writes as a
  new cluster's primary beside its live cluster: only a record of one member counts as
  alone now.
- a platform removed from the election came back as a Raft node nobody hears, answering every
  write 503 forever: a remembered member that answers without it is a clear error now, and a
  member that does not answer as a platform (down, another secret, some other server)
  decides nothing.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from elkyn.membership import ElectionJoinError, election_port
from elkyn.platform_election import _alone_before, _check_not_removed, _check_same_cluster
from platform_core.auth import TokenSigner

SIGNER = TokenSigner("restart-files-test-secret-" + "r" * 24)
ME = "127.0.0.1:7001"


@pytest.mark.parametrize(
    ("text", "alone"),
    [
        (None, False),  # lost
        ("{}", False),
        ("[]", False),
        ('""', False),
        ("not json", False),
        (json.dumps({ME: "http://127.0.0.1:8080/db"}), True),
        # this platform under its older address (PLATFORM_HOST or the election port changed)
        (json.dumps({"127.0.0.1:7002": "http://127.0.0.1:8081/db"}), True),
        (json.dumps({ME: "http://a/db", "127.0.0.1:7002": "http://b/db"}), False),
    ],
)
def test_only_a_record_naming_this_platform_alone_forgets_the_journal(
    tmp_path: Path, text: str | None, alone: bool
) -> None:
    if text is not None:
        (tmp_path / "election.members").write_text(text)
    assert _alone_before(tmp_path) is alone


@pytest.fixture
def member() -> Iterator[tuple[str, dict[str, object]]]:
    """A server answering ``GET /db/.replication/members`` with what it is given (``status``:
    the HTTP status; ``body``: the JSON)."""
    answer: dict[str, object] = {"status": 200, "body": {"members": {}}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer["body"]).encode()
            self.send_response(int(answer["status"]))  # type: ignore[call-overload]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/db", answer
    finally:
        server.shutdown()
        server.server_close()


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/db"


def test_a_member_answering_without_this_platform_is_a_clear_error(
    member: tuple[str, dict[str, object]],
) -> None:
    url, answer = member
    answer["body"] = {"members": {"127.0.0.1:7002": url}, "synced": True}
    remembered = {ME: "http://127.0.0.1:8080/db", "127.0.0.1:7002": url}
    with pytest.raises(ElectionJoinError) as caught:
        _check_not_removed(ME, remembered, SIGNER, None)
    address = url.split("//", 1)[1].removesuffix("/db")
    assert "is no member of its cluster's election" in str(caught.value)
    assert f"--join {address}" in str(caught.value)


def test_a_member_naming_this_platform_lets_it_start(member: tuple[str, dict[str, object]]) -> None:
    url, answer = member
    answer["body"] = {"members": {ME: "http://x/db", "127.0.0.1:7002": url}, "synced": True}
    _check_not_removed(ME, {ME: "http://x/db", "127.0.0.1:7002": url}, SIGNER, None)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": "another secret"}),
        (404, {"detail": "Not Found"}),
        (200, ["not", "it"]),
        (200, {"members": {"127.0.0.1:7002": "http://y/db"}}),  # an older platform
        (200, {"members": {"127.0.0.1:7002": "http://y/db"}, "synced": False}),  # replaying
    ],
)
def test_a_member_not_answering_as_a_platform_decides_nothing(
    member: tuple[str, dict[str, object]], status: int, body: object
) -> None:
    url, answer = member
    answer.update(status=status, body=body)
    _check_not_removed(ME, {ME: "http://x/db", "127.0.0.1:7002": url}, SIGNER, None)


def test_thousands_of_remembered_members_are_not_all_asked() -> None:
    remembered = {f"127.0.0.1:{20000 + i}": _closed_url() for i in range(3000)}
    started = time.monotonic()
    _check_not_removed(ME, remembered, SIGNER, None)
    assert time.monotonic() - started < 5


def test_a_kept_election_port_in_use_is_not_advised_away(tmp_path: Path) -> None:
    """Changing the port of a member makes it a stranger to its cluster: the error for a
    kept port in use says to free it, not to set ELKYN_ELECTION_PORT."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        (tmp_path / "election.port").write_text(f"{port}\n")
        with pytest.raises(ElectionJoinError) as caught:
            election_port(tmp_path, "127.0.0.1", None)
    assert "which this platform used before" in str(caught.value)
    assert "ELKYN_ELECTION_PORT to a free port" not in str(caught.value)


def test_a_join_target_running_another_cluster_is_a_clear_error() -> None:
    remembered = {ME: "http://a/db", "127.0.0.1:7002": "http://b/db"}
    with pytest.raises(ElectionJoinError, match="runs another election cluster"):
        _check_same_cluster("http://h:1/db", {"127.0.0.1:9999": "http://h:1/db"}, remembered, ME)
    # removed (this platform not named) but the cluster is the one remembered: admitted again
    _check_same_cluster("http://b/db", {"127.0.0.1:7002": "http://b/db"}, remembered, ME)
