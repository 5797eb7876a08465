"""TLS from the platform settings: what a listener serves and what a client trusts.

One place decides, so every server and client of the platform behaves the same:

- :func:`server_tls` gives a listener its certificate and key (``PLATFORM_TLS_CERT`` and
  ``PLATFORM_TLS_KEY``), checked at start: both readable, a PEM chain and its key. Without
  them a listener serves plain HTTP.
- :func:`client_context` is the ``ssl.SSLContext`` every client verifies servers with: the CA
  bundle ``PLATFORM_TLS_CA``, else the system's trust store. Verification is never off; pass
  it as httpx's ``verify=``. :func:`flight_root_certs` is the same trust for Arrow Flight.
- :func:`connection_hint` turns the transport errors of a TLS mismatch (an untrusted
  certificate, ``http://`` to an HTTPS port, ``https://`` to a plain one) into one line that
  says what to change.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import SettingsError
from .settings import PlatformSettings

__all__ = [
    "ServerTLS",
    "client_context",
    "connection_hint",
    "flight_root_certs",
    "scheme_of",
    "server_tls",
]


@dataclass(frozen=True)
class ServerTLS:
    """A listener's certificate chain and key (PEM files, checked by :func:`server_tls`)."""

    cert: Path
    key: Path

    def uvicorn_options(self) -> dict[str, str]:
        """``uvicorn.Config`` options that make it serve TLS with this certificate."""
        return {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}

    def pem_pair(self) -> tuple[bytes, bytes]:
        """(certificate chain, key) as PEM bytes, e.g. for a Flight server."""
        return _read(self.cert, "PLATFORM_TLS_CERT"), _read(self.key, "PLATFORM_TLS_KEY")


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(
            f"cannot read {variable} file {path}: {exc.strerror or exc}; fix the path or its "
            "permissions"
        ) from None


def server_tls(settings: PlatformSettings) -> ServerTLS | None:
    """The TLS a listener serves (None: plain HTTP); raises ``SettingsError`` naming the file
    when the certificate or key cannot be read or do not belong together."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None  # both or neither: PlatformSettings refuses one alone
    tls = ServerTLS(Path(settings.tls_cert), Path(settings.tls_key))
    tls.pem_pair()  # readable, or one line naming the file
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except ssl.SSLError as exc:
        raise SettingsError(
            f"PLATFORM_TLS_CERT {tls.cert} and PLATFORM_TLS_KEY {tls.key} are not a PEM "
            f"certificate chain and its private key ({exc.reason or exc})"
        ) from None
    return tls


def scheme_of(tls: ServerTLS | None) -> str:
    """``https`` for a TLS listener, else ``http``."""
    return "https" if tls is not None else "http"


def client_context(settings: PlatformSettings) -> ssl.SSLContext:
    """The context clients verify servers with: ``PLATFORM_TLS_CA``, else the system trust.

    One context per CA file and process (building one costs milliseconds); raises
    ``SettingsError`` naming the file when it cannot be read or holds no certificate.
    """
    return _context(str(settings.tls_ca) if settings.tls_ca is not None else None)


@functools.lru_cache(maxsize=8)
def _context(cafile: str | None) -> ssl.SSLContext:
    if cafile is None:
        return ssl.create_default_context()
    _read(Path(cafile), "PLATFORM_TLS_CA")
    try:
        return ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise SettingsError(
            f"PLATFORM_TLS_CA {cafile} is not a PEM CA bundle ({exc.reason or exc}); give the "
            "CA certificate that signed the servers' certificates"
        ) from None


def flight_root_certs(settings: PlatformSettings) -> bytes | None:
    """PEM roots a Flight client verifies ``grpc+tls`` servers with (None: the system's)."""
    return _read(Path(settings.tls_ca), "PLATFORM_TLS_CA") if settings.tls_ca else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def connection_hint(exc: BaseException, url: str) -> str | None:
    """One line saying which TLS setting to change when ``exc`` (a client's failure to talk
    to ``url``) came from a TLS mismatch; None for any other failure."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.netloc or url
    for error in _chain(exc):
        if isinstance(error, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {host} is not trusted ({error.verify_message}): set "
                "PLATFORM_TLS_CA to the CA certificate that signed it"
            )
        if isinstance(error, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(error).upper():
            return f"{host} does not speak TLS: use http:// instead of https://"
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if parts.scheme == "http" and ("disconnected" in text or "reset" in text):
        return (
            f"{host} closed the connection without an answer: if it serves HTTPS "
            "(PLATFORM_TLS_CERT), use https://"
        )
    return None
