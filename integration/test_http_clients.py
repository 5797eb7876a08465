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


def _own_clients(path: Path, text: str | None = None) -> list[str]:
    found = []
    source = path.read_text() if text is None else text
    for node in ast.walk(ast.parse(source, str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "httpx"
            and node.func.attr in MADE_HERE_ONLY
        ):
            found.append(f"{path.name}:{node.lineno}: httpx.{node.func.attr}(...)")
    return found


def test_no_source_configures_an_httpx_client_of_its_own() -> None:
    sources = [*ROOT.glob("packages/*/src/**/*.py"), *ROOT.glob("apps/*/src/**/*.py")]
    assert len(sources) > 100
    found = [hit for path in sources if path != FACTORY for hit in _own_clients(path)]
    assert found == [], "use platform_core.http.http_client instead:\n" + "\n".join(found)
    # the check sees a client where there is one (the factory itself imports httpx lazily)
    made = "import httpx\nc = httpx.Client(verify=False)\nhttpx.get('http://x')\n"
    assert len(_own_clients(FACTORY, made)) == 2
