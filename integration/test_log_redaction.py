"""No credential reaches a log line of a real `platform up` (issue 11, item 12).

Tokens travel in ``?auth=`` and ``?access_token=`` (EventSource clients cannot set headers),
in ``Authorization`` headers, and sometimes in error messages; the access log and every other
line of the process's stderr must show ``***`` instead.
"""

from __future__ import annotations

import httpx

from platform_core.auth import TokenSigner
from platform_gateway.testing import free_port


def test_tokens_are_redacted_in_every_log_line(start_platform) -> None:  # type: ignore[no-untyped-def]
    platform = start_platform(free_port(), env={"PLATFORM_SECRET": "r" * 40})
    good = TokenSigner("r" * 40).issue("ada", admin=True)
    forged = TokenSigner("f" * 40).issue("mallory", admin=True)  # fails verification: logged?
    with httpx.Client(base_url=platform.url, timeout=10) as c:
        for token in (good, forged):
            c.get(f"/db/users.json?access_token={token}")
            c.get(f"/db/users.json?auth={token}&print=pretty")
            c.get(f"/api/lake/datasets?auth={token}")
            c.get(f"/api/lake/datasets?x=1&Access_Token={token}")
            c.get("/api/lake/datasets", headers={"Authorization": f"Bearer {token}"})
            c.post(f"/api/lake/query?password={token}", json={"sql": "select 1"})
            c.get(f"/no/such/route?token={token}")
    platform.stop()
    log = platform.stderr.read_text() + platform.stdout.read_text()
    assert "/db/users.json" in log, "the access log is not on; this test would prove nothing"
    for token in (good, forged):
        assert token not in log
        for piece in token.split("."):  # no part of it either
            assert piece not in log
    assert "access_token=***" in log
    assert "auth=***" in log
