"""Settings from the environment: ``PLATFORM_*`` for the platform, ``<PKG>_*`` per package.

A package's settings class subclasses :class:`PackageSettings` with its own prefix; each of its
fields is read from ``<PKG>_<FIELD>`` first, then from ``PLATFORM_<FIELD>``, then its default.
So ``LAKE_HOME`` overrides ``PLATFORM_HOME`` for the lake only.

Inside ``platform up`` a package is handed the gateway's settings (with its ``--home``, which
no environment variable says): :func:`package_settings` builds the package's settings on top of
them, so every package reads the platform's values through one rule.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from pydantic import ByteSize, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import SettingsError

__all__ = ["PackageSettings", "PlatformSettings", "load_settings", "package_settings"]

S = TypeVar("S", bound=BaseSettings)
P = TypeVar("P", bound="PackageSettings")

LogLevel = Literal["debug", "info", "warning", "error"]


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def check_join_address(text: str) -> str:
    """``text`` if it is ``HOST:PORT`` (a DNS name, an IPv4 address or ``[IPv6]``, and a port
    from 1 to 65535); ``ValueError`` saying what is wrong otherwise."""
    usage = f"join takes the HOST:PORT of a running platform (e.g. 10.0.0.5:8080), not {text!r}"
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ValueError(usage)
    if not 0 < int(port) < 65536:
        raise ValueError(f"join's port {port} is not between 1 and 65535")
    if "[" in host or "]" in host:
        if not (host.startswith("[") and host.endswith("]")):
            raise ValueError(f"{usage}: an IPv6 address goes in brackets, as [::1]:8080")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{usage}: {host} is not an IPv6 address") from None
        return text
    labels = host.split(".")
    if all(label.isascii() and label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{usage}: {host} is not an IPv4 address") from None
        return text
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{usage}: {host!r} is not a host name")
    return text


class PlatformSettings(BaseSettings):
    """Platform-wide settings (env prefix ``PLATFORM_``)."""

    model_config = SettingsConfigDict(env_prefix="PLATFORM_", extra="ignore", frozen=True)

    home: Path = Path(".platform")
    """Data directory: LMDB, lake chunks, spill files and the secret live under it."""
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    secret: SecretStr | None = None
    """Token signing secret; when unset, one is created once under ``home``."""
    previous_secrets: SecretStr | None = None
    """Comma-separated secrets that still verify tokens but never sign one: the old secret
    after a rotation, or the next one before it (docs/architecture.md, "Auth")."""
    tls_cert: Path | None = None
    """PEM certificate chain of this process's listeners; with ``tls_key`` they serve HTTPS
    (and the lake's Flight serves ``grpc+tls``)."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""
    tls_ca: Path | None = None
    """PEM CA bundle that clients (CLIs, node-to-node links) verify servers against; unset:
    the system's trust store. Verification is never turned off."""
    admin_password: SecretStr | None = None
    """Password for ``POST /api/login``; unset means dev mode (loopback only)."""
    token: SecretStr | None = None
    """Token that clients (``lake upload``, SDKs) send to the gateway."""
    token_ttl_seconds: int = Field(3600, gt=0, le=7 * 24 * 3600)  # auth.MAX_TOKEN_TTL_SECONDS
    """Life of a user token from ``POST /api/login`` (``POST /api/login/refresh`` renews it)."""
    revocation_refresh_seconds: float = Field(1.0, gt=0, le=30)
    """How often a platform re-reads the cluster's revoked tokens (the cache's age bound)."""
    login_checks: int = Field(4, ge=1, le=64)
    """Password checks (argon2) that may run at once; more wait in a small queue."""
    login_window_seconds: int = Field(60, ge=10, le=86400)
    """The login throttle's window: failed logins are counted per window of this length."""
    login_queue: int = Field(8, ge=0, le=1024)
    """Logins that may wait for a check; beyond them a login answers 429."""
    max_body_bytes: int = Field(16 * 1024 * 1024, gt=0)
    """Largest request body the gateway accepts (uploads go through chunked parts)."""
    log_level: LogLevel = "info"
    ui_dir: Path | None = None
    """A built playground (``apps/playground/out``) the gateway serves at ``/``; unset: the one
    shipped inside the gateway package, if it was built (``make setup`` builds it)."""
    join: str | None = None
    """``HOST:PORT`` of a running platform to join (``platform up --join``): this one's lake
    node joins that cluster, its Elkyn follows that database (with ``--ray`` too, its Ray node
    takes the cluster's tasks next to their chunks). Unset: a platform of its own (the first of a cluster)."""
    ray_object_store_bytes: ByteSize | None = Field(None, ge=80 * 1000 * 1000)
    """With ``--ray``: the size of this platform's Ray object store (``ray start
    --object-store-memory``; Ray's least is 75 MiB), where the rows of Elytra's exchanges go
    from task to task (spilled to ``<home>/ray/spill`` past it). Unset: Ray's default, 30 %
    of the RAM per node: set it when several platforms share a machine."""
    memory_headroom: ByteSize | None = None
    """Memory (e.g. ``4GB``) a server process may add after start-up: past it an allocation
    fails (one query errors) instead of the OOM killer ending the process. Unset: half of
    the machine's RAM; ``0``: no cap. See ``platform_core.cap_memory``."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("join", mode="before")
    @classmethod
    def _join_address(cls, value: Any) -> Any:
        """``HOST:PORT`` with a port number; not a URL (the scheme follows the TLS settings)."""
        if value is None or value == "":
            return None
        return check_join_address(str(value).strip())

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        """``~/data`` means the user's home, as it does in a shell."""
        return value.expanduser()

    @field_validator("tls_cert", "tls_key", "tls_ca", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        """``PLATFORM_TLS_CA=`` means the system trust store, not the current directory."""
        return None if value == "" else value

    @field_validator("tls_cert", "tls_key", "tls_ca", mode="after")
    @classmethod
    def _expand_tls(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _cert_and_key(self) -> PlatformSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = (
                ("TLS_CERT", "TLS_KEY") if self.tls_key is None else ("TLS_KEY", "TLS_CERT")
            )
            raise ValueError(
                f"PLATFORM_{given} is set but PLATFORM_{missing} is not: set both "
                "PLATFORM_TLS_CERT and PLATFORM_TLS_KEY to serve HTTPS, or neither"
            )
        return self

    @field_validator("secret", "previous_secrets", "admin_password", "token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """``PLATFORM_ADMIN_PASSWORD=`` means no password, not the empty password."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return None if value == "" else value


class PackageSettings(PlatformSettings):
    """Base for a package's settings: its own prefix first, then ``PLATFORM_``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        platform_env = EnvSettingsSource(settings_cls, env_prefix="PLATFORM_")
        return (init_settings, env_settings, platform_env, dotenv_settings, file_secret_settings)


@overload
def load_settings(cls: None = None, **overrides: Any) -> PlatformSettings: ...
@overload
def load_settings(cls: type[S], **overrides: Any) -> S: ...
def load_settings(cls: type[BaseSettings] | None = None, **overrides: Any) -> BaseSettings:
    """Build settings from the environment, turning validation failures into one clear error."""
    cls = cls or PlatformSettings
    unknown = sorted(set(overrides) - set(cls.model_fields))
    if unknown:
        raise SettingsError(
            f"unknown settings {unknown} for {cls.__name__} (known: {sorted(cls.model_fields)})"
        )
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        fallback = "PLATFORM_" if issubclass(cls, PackageSettings) and prefix != "PLATFORM_" else ""
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a check across fields: its message names the variables
                problems.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            field = ".".join(str(p) for p in err["loc"]).upper() or "?"
            name = f"{prefix}{field}" + (f" (or {fallback}{field})" if fallback else "")
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise SettingsError(
            "invalid settings: " + "; ".join(problems) + " (fix the environment variable or option)"
        ) from exc


def package_settings(cls: type[P], base: PlatformSettings | None = None, **overrides: Any) -> P:
    """``cls``'s settings from the environment, inheriting the platform's ``base`` settings.

    Each platform field (home, secret, log level ...) takes ``base``'s value unless it is in
    ``overrides`` or the package's own variable (``<PKG>_<FIELD>``, e.g. ``LAKE_HOME``) is set;
    the package's own fields come from the environment as in :func:`load_settings`. Without
    ``base`` this is ``load_settings(cls, **overrides)``; a ``base`` of ``cls`` itself is
    returned as it is when there is nothing to override.
    """
    if isinstance(base, cls) and not overrides:
        return base
    if base is not None:
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        own = {name.upper() for name in os.environ}
        for name in PlatformSettings.model_fields:
            if name not in overrides and f"{prefix}{name.upper()}" not in own:
                overrides[name] = getattr(base, name)
    return load_settings(cls, **overrides)
