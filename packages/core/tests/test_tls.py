"""TLS settings and the service kit over HTTPS: a real server process with test certificates."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from platform_core import SettingsError, load_settings
from platform_core.testing import (
    ServerProcess,
    TestCertificates,
    launch,
    make_certificates,
)
from platform_core.tls import client_context, connection_hint, server_tls

KIT_SERVER = Path(__file__).with_name("kit_server.py")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    return make_certificates(tmp_path_factory.mktemp("other"), "other")


@pytest.fixture(scope="module")
def https_server(certs: TestCertificates) -> Iterator[ServerProcess]:
    server = launch([sys.executable, str(KIT_SERVER)], env=certs.server_env())
    yield server
    server.stop()


def test_cert_without_key_names_both_variables(certs: TestCertificates) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(tls_cert=certs.cert)
    message = str(caught.value)
    assert "PLATFORM_TLS_CERT is set but PLATFORM_TLS_KEY is not" in message
    assert str(certs.cert) not in message  # a path, not the whole settings dump


def test_unreadable_files_are_one_line_naming_the_file(
    certs: TestCertificates, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(SettingsError, match=f"cannot read PLATFORM_TLS_KEY file {missing}"):
        server_tls(load_settings(tls_cert=certs.cert, tls_key=missing))
    with pytest.raises(SettingsError, match=f"cannot read PLATFORM_TLS_CA file {missing}"):
        client_context(load_settings(tls_ca=missing))
    # a key that is not the certificate's
    with pytest.raises(SettingsError, match="not a PEM certificate chain and its private key"):
        server_tls(load_settings(tls_cert=certs.cert, tls_key=certs.ca))


def test_kit_serves_https_and_verifies_with_the_ca(
    https_server: ServerProcess, certs: TestCertificates
) -> None:
    assert https_server.url.startswith("https://127.0.0.1:")
    assert "is up at https://" in https_server.banner
    verify = client_context(load_settings(tls_ca=certs.ca))
    assert httpx.get(f"{https_server.url}/health", verify=verify).json() == {"status": "ok"}


def test_untrusted_certificate_is_a_clear_error(
    https_server: ServerProcess, other_ca: TestCertificates
) -> None:
    for verify in (
        client_context(load_settings()),
        client_context(load_settings(tls_ca=other_ca.ca)),
    ):
        with pytest.raises(httpx.ConnectError) as caught:
            httpx.get(f"{https_server.url}/health", verify=verify, timeout=10)
        hint = connection_hint(caught.value, https_server.url)
        assert hint is not None
        assert "is not trusted" in hint
        assert "PLATFORM_TLS_CA" in hint


def test_plain_http_to_the_tls_port_fails_at_once_with_a_hint(
    https_server: ServerProcess,
) -> None:
    plain = https_server.url.replace("https://", "http://")
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        httpx.get(f"{plain}/health", timeout=30)  # the handshake fails: no wait for the timeout
    hint = connection_hint(caught.value, plain)
    assert hint is not None
    assert "use https://" in hint


def test_https_to_a_plain_port_says_so(certs: TestCertificates) -> None:
    server = launch([sys.executable, str(KIT_SERVER)])
    try:
        tls_url = server.url.replace("http://", "https://")
        verify = client_context(load_settings(tls_ca=certs.ca))
        with pytest.raises(httpx.ConnectError) as caught:
            httpx.get(f"{tls_url}/health", verify=verify, timeout=10)
        assert connection_hint(caught.value, tls_url) == (
            f"{tls_url.split('//')[1]} does not speak TLS: use http:// instead of https://"
        )
    finally:
        server.stop()
