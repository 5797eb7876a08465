"""platform_core.configure_logging: every line a JSON object with the same fields, tokens
redacted; what `elkyn serve` and `lake node` write (lake's own format was not JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_each_line_is_json_with_quotes_newlines_and_tokens_handled() -> None:
    script = textwrap.dedent(
        """
        import logging
        from platform_core import configure_logging
        configure_logging("info")
        log = logging.getLogger("lake.x")
        log.info('said "hi"\\nand %s', "GET /q?auth=eyJhbGciOi.eyJzdWIi.c2ln HTTP/1.1")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        logging.getLogger("uvicorn.error").warning("from uvicorn")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stderr
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["logger"] for r in lines] == ["lake.x", "lake.x", "uvicorn.error"]
    assert all(set(r) >= {"ts", "level", "logger", "msg"} for r in lines)
    assert lines[0]["msg"].startswith('said "hi"\nand GET /q?auth=')
    assert "eyJhbGciOi" not in out
    assert "ValueError: boom" in lines[1]["exc"]
