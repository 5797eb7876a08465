"""Client authentication: which token a CLI call sends, and the tokens ``platform login`` saves.

The order (first found wins):

1. ``--token``, else ``PLATFORM_TOKEN``;
2. the token ``platform login`` saved for this gateway URL (``$XDG_CONFIG_HOME/platform/
   tokens.json``, else ``~/.config/platform/tokens.json``; mode 0600), renewed silently at
   ``POST /api/login/refresh`` once half its life has passed (user tokens live an hour);
3. for a loopback URL: a token minted with ``PLATFORM_SECRET`` or with the readable secret
   of ``PLATFORM_HOME`` (what ``platform token`` does);
4. for a loopback URL: a dev-mode login (``POST /api/login {}``), which a gateway without an
   admin password grants to callers on this machine.

A secret (the home's or ``PLATFORM_SECRET``) is never used to mint a token for another machine's URL: that token would be
valid on this machine's platform, and the other machine could replay it here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from platform_core._extras import require
from platform_core.errors import (
    BadInputError,
    ForbiddenError,
    PlatformError,
    UnauthorizedError,
    UnavailableError,
)
from platform_core.netloc import is_loopback
from platform_core.running import find_running

if (
    TYPE_CHECKING
):  # settings (pydantic), auth (PyJWT) and tls load when a command runs, not for --help
    from platform_core.settings import PlatformSettings

__all__ = [
    "DEFAULT_URL",
    "TOKEN_OPTION",
    "config_dir",
    "default_url",
    "forget_token",
    "login",
    "normalize_url",
    "resolve_token",
    "save_token",
    "saved_token",
    "tokens_file",
]

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_OPTION: Any = typer.Option(
    "--token", help="Token (default: PLATFORM_TOKEN, `platform login`, or this machine's)."
)
"""The ``--token`` option of every client command (resolved by :func:`resolve_token`)."""
CLI_SUBJECT = "admin"
"""``sub`` of a token minted on this machine (the same as ``platform token``'s default)."""


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/platform``, else ``~/.config/platform``."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "platform"


def tokens_file() -> Path:
    """Where ``platform login`` keeps its tokens, one per gateway URL."""
    return config_dir() / "tokens.json"


def normalize_url(url: str) -> str:
    """``url`` as the key of a saved token: scheme and host lowercased, no trailing slash."""
    httpx = require("httpx", what="platform_core.cli")  # here: --help does not load it

    text = url.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port out of range or not a number raises here
        httpx.URL(text)  # what the client will send to: an IDNA-invalid host raises here
    except (ValueError, httpx.InvalidURL) as exc:
        raise BadInputError(
            f"{url!r} is not a gateway URL ({exc}): give http://HOST:PORT"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInputError(f"{url!r} is not a gateway URL: give http://HOST:PORT")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def default_url(settings: PlatformSettings | None = None) -> str:
    """The URL of the platform ``platform up`` runs on ``PLATFORM_HOME``, else 127.0.0.1:8080."""
    from platform_core.settings import load_settings

    try:
        settings = settings or load_settings()
    except PlatformError:
        return DEFAULT_URL
    return find_running(settings.home) or DEFAULT_URL


def _load() -> dict[str, str]:
    try:
        data = json.loads(tokens_file().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _store(tokens: dict[str, str]) -> None:
    """Write the tokens file atomically, readable by this user only (mode 0600)."""
    path = tokens_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".tokens.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(tokens, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    os.chmod(path, 0o600)


def saved_token(url: str) -> str | None:
    """The token ``platform login`` saved for ``url``, if any."""
    return _load().get(normalize_url(url))


def save_token(url: str, token: str) -> Path:
    """Keep ``token`` for ``url`` (replacing an older one); returns the file."""
    tokens = _load()
    tokens[normalize_url(url)] = token
    _store(tokens)
    return tokens_file()


def forget_token(url: str) -> bool:
    """Drop the token saved for ``url``; whether there was one."""
    tokens = _load()
    if tokens.pop(normalize_url(url), None) is None:
        return False
    _store(tokens)
    return True


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _minted(url: str, settings: PlatformSettings) -> str | None:
    """A token signed with a secret this machine can read (loopback URLs only), or None.

    ``PLATFORM_SECRET`` is no exception: a token it signs is as valid on this machine's
    platform as one signed with the home's secret, so another machine must never get one.
    """
    if not is_loopback(_host(url)):
        return None
    from platform_core import auth

    with contextlib.suppress(PlatformError):
        return auth.issue_token(CLI_SUBJECT, admin=True, settings=settings)
    return None


def login(url: str, user: str | None = None, password: str | None = None) -> str:
    """``POST {url}/api/login`` and return the token: ``{}`` in dev mode, else user and password.

    A refusal raises ``UnauthorizedError``; a gateway that cannot be reached ``UnavailableError``.
    An ``https://`` gateway is verified against ``PLATFORM_TLS_CA`` (else the system trust).
    """
    body: dict[str, Any] = {} if user is None else {"username": user, "password": password or ""}
    httpx = require("httpx", what="platform_core.cli")

    from platform_core.http.client import CONNECT_RETRIES, http_client
    from platform_core.tls import connection_hint

    target = normalize_url(url) + "/api/login"
    try:
        with http_client(timeout=30, retries=CONNECT_RETRIES) as client:
            r = client.post(target, json=body)
    except httpx.HTTPError as exc:
        why = connection_hint(exc, target) or str(exc)
        raise UnavailableError(f"cannot reach {target} to log in: {why}") from exc
    try:
        answer = r.json()
    except ValueError:
        answer = {}
    if r.status_code >= 400 or not isinstance(answer, dict) or "token" not in answer:
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise UnauthorizedError(
            f"login at {target} refused (HTTP {r.status_code}): {reason or r.text[:200]}"
        )
    return str(answer["token"])


def _renewed(url: str, token: str) -> str:
    """``token``, or a fresh one from the gateway's refresh once half its life has passed
    (saved in its place). A refusal or an unreachable gateway keeps the old one: the call
    it was for then says what is wrong."""
    try:
        import jwt

        claims = jwt.decode(token, options={"verify_signature": False})
        iat, exp = int(claims.get("iat", 0)), int(claims["exp"])
    except (ValueError, KeyError, TypeError, jwt.InvalidTokenError):
        return token
    now = time.time()
    if not iat or now < iat + (exp - iat) / 2 or now >= exp:
        return token
    httpx = require("httpx", what="platform_core.cli")

    from platform_core.http.client import http_client

    target = normalize_url(url) + "/api/login/refresh"
    try:
        with http_client(token=token, timeout=30) as client:
            r = client.post(target)
        fresh = r.json().get("token") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return token
    if not isinstance(fresh, str):
        return token
    with contextlib.suppress(OSError):
        save_token(url, fresh)
    return fresh


def resolve_token(
    url: str, explicit: str | None = None, settings: PlatformSettings | None = None
) -> str | None:
    """The token to send to ``url``, in the order the module describes; None if there is none."""
    from platform_core import auth
    from platform_core.settings import load_settings

    settings = settings or load_settings()
    given = auth.client_token(explicit, settings)
    if given:
        return given
    saved = saved_token(url)
    if saved:
        return _renewed(url, saved)
    minted = _minted(url, settings)
    if minted:
        return minted
    if is_loopback(_host(url)):
        with contextlib.suppress(UnauthorizedError, ForbiddenError):  # not in dev mode
            return login(url)  # an unreachable gateway says so (UnavailableError)
    return None
