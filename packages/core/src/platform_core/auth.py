"""Platform tokens: HS256 JWTs signed with one secret: user, cluster and worker tokens.

Claims are fixed: ``sub`` (the uid Elkyn rules see as ``auth.uid``), ``admin``, ``exp``, plus
free-form extra claims. Node-to-node calls carry a cluster token (claim ``cluster``), which is
accepted only by :meth:`TokenSigner.verify_cluster`, never as a user token. Browser workers
(elytra's ``browser`` backend) carry a worker token (claim ``kind: "worker"``, minted by an
admin), accepted only by :meth:`TokenSigner.verify_worker`: never as a user or cluster token,
and no other token is a worker token. The secret comes from ``PLATFORM_SECRET`` or from
``PLATFORM_HOME/secret``, created once and atomically.

Rotation: ``PLATFORM_PREVIOUS_SECRETS`` (comma-separated) are secrets that still verify every
kind of token but never sign one, so nodes can change secrets one at a time without a refused
request (the procedure is in docs/architecture.md, "Auth"). A token whose signature matches
none of the secrets is refused like any other bad token.

Revocation: every user and worker token carries a token id (``jti``) and a generation
(``gen``); a process that knows which tokens are revoked installs a check with
:func:`set_token_check` (the gateway does, from the cluster's shared state), and every
:meth:`TokenSigner.verify` and :meth:`TokenSigner.verify_worker` in the process consults it, so
Elkyn's app and the plugins' routes refuse a revoked token as the gateway's own routes do. A
hook set with :func:`set_issue_hook` hears of every worker token minted, so they can be listed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jwt

from .errors import BadInputError, SettingsError, UnauthorizedError
from .settings import PlatformSettings, load_settings

__all__ = [
    "Claims",
    "TokenSigner",
    "bearer_token",
    "check_not_revoked",
    "client_token",
    "cluster_token",
    "issue_token",
    "load_secret",
    "new_token_id",
    "previous_secrets",
    "set_generation_source",
    "set_issue_hook",
    "set_token_check",
    "signer",
    "verify_cluster",
    "verify_token",
    "verify_worker",
    "worker_token",
]

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
LEEWAY_SECONDS = 30
DEFAULT_TTL_SECONDS = 3600
"""A user token's life unless ``PLATFORM_TOKEN_TTL_SECONDS`` says otherwise (refresh renews it)."""
MAX_WORKER_TTL_SECONDS = 7 * 24 * 3600
"""The longest a worker token lives (a browser tab is not a long-lived service)."""
MAX_TOKEN_TTL_SECONDS = 7 * 24 * 3600
"""The longest any token lives, from its ``iat``: none is minted or accepted beyond it, so a
revocation by id kept this long outlives every token it names."""
WORKER_KIND = "worker"
_RESERVED = frozenset({"sub", "admin", "exp", "iat", "cluster", "kind", "jti", "gen"})

TokenCheck = Callable[["Claims"], None]
"""Raises ``UnauthorizedError`` for a revoked token (see :func:`set_token_check`)."""
IssueHook = Callable[["Claims"], None]
"""Hears of each worker token minted in this process (see :func:`set_issue_hook`)."""
GenerationSource = Callable[[str, str], int]
"""``(sub, kind)`` → the subject's current token generation (see :func:`set_generation_source`)."""
_HOOKS: dict[str, Any] = {"check": None, "issued": None, "gen": None}


def set_generation_source(source: GenerationSource | None) -> GenerationSource | None:
    """Install where tokens minted in this process without an explicit ``gen`` take it from
    (the gateway: the cluster's current generation of the subject, or of worker tokens)."""
    previous: GenerationSource | None = _HOOKS["gen"]
    _HOOKS["gen"] = source
    return previous


def _current_gen(sub: str, kind: str) -> int:
    source: GenerationSource | None = _HOOKS["gen"]
    return int(source(sub, kind)) if source is not None else 0


def set_token_check(check: TokenCheck | None) -> TokenCheck | None:
    """Install the process's revocation check (``None`` removes it); returns the previous one.

    It runs after the signature and expiry checks of every user and worker token verified in
    this process, and must be cheap (an in-memory lookup): it runs on every request.
    """
    previous: TokenCheck | None = _HOOKS["check"]
    _HOOKS["check"] = check
    return previous


def set_issue_hook(hook: IssueHook | None) -> IssueHook | None:
    """Install the hook told of each worker token minted here; returns the previous one."""
    previous: IssueHook | None = _HOOKS["issued"]
    _HOOKS["issued"] = hook
    return previous


def check_not_revoked(claims: Claims) -> None:
    """Run the installed revocation check on already verified ``claims`` (a cached token)."""
    check: TokenCheck | None = _HOOKS["check"]
    if check is not None and not claims.cluster:
        check(claims)


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    sub: str
    admin: bool
    exp: int
    extra: Mapping[str, Any] = field(default_factory=dict)
    cluster: bool = False
    kind: str = "user"
    """``user`` (also admins), ``cluster`` or ``worker``."""
    jti: str = ""
    """The token's id (``platform token revoke --id``); empty in tokens made before ids."""
    gen: int = 0
    """The subject's token generation when issued: a revocation raises the current one."""
    iat: int = 0


def _checked_key(secret: bytes | str, what: str, variable: str) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"{what} has {len(key)} bytes; it needs at least {MIN_SECRET_BYTES} "
            f"(set {variable} to a longer random string, e.g. `openssl rand -hex 32`)"
        )
    return key


class TokenSigner:
    """Signs platform tokens with one HS256 secret; verifies them with it or with one of the
    ``previous`` secrets (accepted during a rotation, never used to sign)."""

    def __init__(self, secret: bytes | str, previous: Sequence[bytes | str] = ()) -> None:
        self._key = _checked_key(secret, "the platform secret", "PLATFORM_SECRET")
        accepted = [self._key]
        for n, old in enumerate(previous, 1):
            key = _checked_key(old, f"previous secret #{n}", "PLATFORM_PREVIOUS_SECRETS")
            if key not in accepted:
                accepted.append(key)
        self._accepted = tuple(accepted)

    def issue(
        self,
        sub: str,
        *,
        admin: bool = False,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        extra: Mapping[str, Any] | None = None,
        gen: int | None = None,
        jti: str | None = None,
    ) -> str:
        """A user token for ``sub``; ``extra`` claims may not reuse a fixed claim's name.

        ``gen`` is the subject's token generation (a token below the cluster's current one
        is revoked; default: the installed generation source's, else 0); ``jti`` its id (a
        new random one by default).
        """
        if not isinstance(sub, str) or not sub:
            raise BadInputError("a token needs a non-empty subject (sub)")
        if not 0 < ttl_seconds <= MAX_TOKEN_TTL_SECONDS:
            raise BadInputError(
                f"a token lives 1 to {MAX_TOKEN_TTL_SECONDS} s (7 days), not {ttl_seconds} s"
            )
        extra = dict(extra or {})
        clash = _RESERVED & extra.keys()
        if clash:
            raise BadInputError(
                f"extra claims {sorted(clash)} clash with fixed claims {sorted(_RESERVED)}"
            )
        now = int(time.time())
        payload = {
            **extra,
            "sub": sub,
            "admin": bool(admin),
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": jti or new_token_id(),
            "gen": int(gen) if gen is not None else _current_gen(sub, "user"),
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def cluster_token(self, node: str = "node", *, ttl_seconds: int = 3600) -> str:
        """A token for node-to-node calls (lake gossip and Flight, Elkyn replication)."""
        now = int(time.time())
        payload = {
            "sub": node,
            "admin": False,
            "cluster": True,
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def worker_token(self, sub: str, *, ttl_seconds: int = 3600, gen: int | None = None) -> str:
        """A worker token for ``sub`` (a browser worker of elytra), at most
        ``MAX_WORKER_TTL_SECONDS``; accepted only by :meth:`verify_worker`."""
        if not isinstance(sub, str) or not sub:
            raise BadInputError("a token needs a non-empty subject (sub)")
        if not 0 < ttl_seconds <= MAX_WORKER_TTL_SECONDS:
            raise BadInputError(
                f"a worker token lives 1 to {MAX_WORKER_TTL_SECONDS} s, not {ttl_seconds} s"
            )
        now = int(time.time())
        jti = new_token_id()
        gen = gen if gen is not None else _current_gen(sub, WORKER_KIND)
        payload = {
            "sub": sub,
            "admin": False,
            "kind": WORKER_KIND,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": jti,
            "gen": int(gen),
        }
        token = jwt.encode(payload, self._key, algorithm=ALGORITHM)
        hook: IssueHook | None = _HOOKS["issued"]
        if hook is not None:
            claims = Claims(sub, False, now + ttl_seconds, kind=WORKER_KIND, jti=jti, gen=gen)
            hook(replace(claims, iat=now))
        return token

    def verify(self, token: str) -> Claims:
        """Claims of a valid user token; cluster, worker and bad tokens raise
        ``UnauthorizedError``."""
        claims = self._decode(token)
        if claims.cluster:
            raise UnauthorizedError("a cluster token is only accepted on node-to-node routes")
        if claims.kind == WORKER_KIND:
            raise UnauthorizedError("a worker token is only accepted on the worker routes")
        check_not_revoked(claims)
        return claims

    def verify_cluster(self, token: str) -> Claims:
        """Claims of a valid cluster token; anything else raises ``UnauthorizedError``."""
        claims = self._decode(token)
        if not claims.cluster or claims.kind == WORKER_KIND:
            raise UnauthorizedError("this node-to-node route needs a cluster token")
        return claims

    def verify_worker(self, token: str) -> Claims:
        """Claims of a valid worker token; anything else raises ``UnauthorizedError``."""
        claims = self._decode(token)
        if claims.kind != WORKER_KIND or claims.cluster or claims.admin:
            raise UnauthorizedError(
                "this route needs a worker token (an admin mints one: POST /api/workers/tokens "
                "or `platform token --worker`)"
            )
        check_not_revoked(claims)
        return claims

    def _payload(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` if one accepted secret signed it (the current one first).

        PyJWT checks the signature before any claim, so only a signature mismatch moves on
        to the next secret; an expired or malformed token fails on the first.
        """
        for key in self._accepted[:-1]:
            try:
                return self._decode_with(token, key)
            except jwt.InvalidSignatureError:
                continue
        return self._decode_with(token, self._accepted[-1])

    @staticmethod
    def _decode_with(token: str, key: bytes) -> dict[str, Any]:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            leeway=LEEWAY_SECONDS,
            options={"require": ["sub", "exp"]},
        )
        return payload

    def _decode(self, token: str) -> Claims:
        try:
            payload = self._payload(token)
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("token expired; log in again for a new one") from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError(f"invalid token ({exc}); log in for a new one") from exc
        sub = payload.pop("sub")
        if not isinstance(sub, str) or not sub:
            raise UnauthorizedError("invalid token: 'sub' must be a non-empty string")
        admin = payload.pop("admin", False) is True
        cluster = payload.pop("cluster", False) is True
        kind = payload.pop("kind", None)
        if kind is not None and kind != WORKER_KIND:
            raise UnauthorizedError(f"invalid token: unknown kind {kind!r}")
        exp = int(payload.pop("exp"))
        iat = payload.pop("iat", 0)
        jti = payload.pop("jti", "")
        gen = payload.pop("gen", 0)
        if not isinstance(jti, str) or not isinstance(gen, int) or isinstance(gen, bool):
            raise UnauthorizedError("invalid token: 'jti' must be a string and 'gen' an integer")
        issued = iat if isinstance(iat, (int, float)) and not isinstance(iat, bool) else 0
        if exp - (issued or time.time()) > MAX_TOKEN_TTL_SECONDS + LEEWAY_SECONDS:
            raise UnauthorizedError(
                f"invalid token: it lives longer than {MAX_TOKEN_TTL_SECONDS} s (7 days), "
                "which no platform token does; log in for a new one"
            )
        return Claims(
            sub=sub,
            admin=admin,
            exp=exp,
            extra=payload,
            cluster=cluster,
            kind=WORKER_KIND if kind == WORKER_KIND else "cluster" if cluster else "user",
            jti=jti,
            gen=gen,
            iat=int(issued),
        )


def new_token_id() -> str:
    """A random token id (``jti``): 16 bytes, URL-safe, a valid key in Elkyn paths."""
    return secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")


def load_secret(settings: PlatformSettings | None = None, *, create: bool = True) -> bytes:
    """``PLATFORM_SECRET``, or the secret file under ``PLATFORM_HOME``.

    The file is made once if missing and ``create`` is true (the gateway and nodes do this);
    clients pass ``create=False`` so a typo in the home does not mint tokens nobody accepts.
    """
    settings = settings or load_settings()
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode()
    path = Path(settings.home) / "secret"
    try:
        return _read_secret(path)
    except FileNotFoundError:
        if not create:
            raise SettingsError(
                f"no platform secret at {path}: start the platform with this home first "
                "(`platform up --home ...`), or set PLATFORM_SECRET"
            ) from None
    except OSError as exc:
        raise SettingsError(f"cannot read the platform secret {path}: {exc.strerror}") from exc
    try:
        _create_secret(path)
        return _read_secret(path)
    except OSError as exc:
        raise SettingsError(
            f"cannot create the platform secret {path}: {exc.strerror}; check that "
            "PLATFORM_HOME is a writable directory, or set PLATFORM_SECRET"
        ) from exc


def _create_secret(path: Path) -> None:
    """Write a new secret to a private temp file (O_EXCL), then hard-link it into place.

    The link fails if the file exists, so exactly one of several racing processes creates it,
    and nobody ever reads it half-written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".secret.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_secret(path: Path) -> bytes:
    data = path.read_bytes().strip()
    if not data:
        raise SettingsError(f"the secret file {path} is empty; delete it to have a new one made")
    return data


def previous_secrets(settings: PlatformSettings | None = None) -> list[bytes]:
    """The secrets of ``PLATFORM_PREVIOUS_SECRETS`` (comma-separated; blanks ignored)."""
    settings = settings or load_settings()
    if settings.previous_secrets is None:
        return []
    listed = settings.previous_secrets.get_secret_value().split(",")
    return [s.strip().encode() for s in listed if s.strip()]


def signer(settings: PlatformSettings | None = None, *, create: bool = True) -> TokenSigner:
    """A signer with the platform secret of ``settings`` (or the environment's), which also
    accepts the ``PLATFORM_PREVIOUS_SECRETS``."""
    settings = settings or load_settings()
    return TokenSigner(load_secret(settings, create=create), previous_secrets(settings))


def issue_token(
    sub: str,
    *,
    admin: bool = False,
    ttl_seconds: int | None = None,
    extra: Mapping[str, Any] | None = None,
    settings: PlatformSettings | None = None,
) -> str:
    """Sign a user token with the platform secret."""
    settings = settings or load_settings()
    ttl = ttl_seconds if ttl_seconds is not None else settings.token_ttl_seconds
    return signer(settings, create=False).issue(sub, admin=admin, ttl_seconds=ttl, extra=extra)


def verify_token(token: str, settings: PlatformSettings | None = None) -> Claims:
    """Verify a user token with the platform secret."""
    return signer(settings, create=False).verify(token)


def cluster_token(node: str = "node", settings: PlatformSettings | None = None) -> str:
    """Sign a node-to-node token with the platform secret."""
    return signer(settings, create=False).cluster_token(node)


def verify_cluster(token: str, settings: PlatformSettings | None = None) -> Claims:
    """Verify a node-to-node token with the platform secret."""
    return signer(settings, create=False).verify_cluster(token)


def worker_token(
    sub: str, ttl_seconds: int = 3600, settings: PlatformSettings | None = None
) -> str:
    """Sign a worker token (elytra's browser workers) with the platform secret."""
    return signer(settings, create=False).worker_token(sub, ttl_seconds=ttl_seconds)


def verify_worker(token: str, settings: PlatformSettings | None = None) -> Claims:
    """Verify a worker token with the platform secret."""
    return signer(settings, create=False).verify_worker(token)


def client_token(
    explicit: str | None = None, settings: PlatformSettings | None = None
) -> str | None:
    """The token a client sends: ``--token`` if given, else ``PLATFORM_TOKEN``, else none."""
    if explicit:
        return explicit
    settings = settings or load_settings()
    return settings.token.get_secret_value() if settings.token is not None else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise UnauthorizedError("the Authorization header must be 'Bearer <token>'")
    return value.strip()
