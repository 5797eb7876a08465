"""Every HTTP client of the platform comes from ``platform_core.http.http_client`` (or its
async twin): no package source makes an ``httpx.Client`` / ``httpx.AsyncClient`` or calls
httpx's one-shot functions (``httpx.get``, ``httpx.post``, ...) itself, so TLS verification,
timeouts and retries cannot drift apart again."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACTORY = ROOT / "packages/core/src/platform_core/http/client.py"
MADE_HERE_ONLY = {
    "Client",
    "AsyncClient",
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "request",
    "stream",
}


def _own_clients(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "httpx"
            and node.func.attr in MADE_HERE_ONLY
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: httpx.{node.func.attr}(...)")
    return found


def test_no_source_configures_an_httpx_client_of_its_own() -> None:
    sources = [*ROOT.glob("packages/*/src/**/*.py"), *ROOT.glob("apps/*/src/**/*.py")]
    assert len(sources) > 100
    found = [hit for path in sources if path != FACTORY for hit in _own_clients(path)]
    assert found == [], "use platform_core.http.http_client instead:\n" + "\n".join(found)
    assert _own_clients(FACTORY)  # the check sees a client where there is one
