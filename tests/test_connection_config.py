"""Factory network settings: company CA, client certificates, proxies (all on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from pywats_client.core import ClientConfig
from pywats_client.core.connection_config import (
    build_http_client,
    network_warnings,
    proxy_for,
    redact_url,
)
from pywats_client.errors import ConfigError, ServerUnavailableError
from pywats_client.services import WATSApiClient
from tests._connection_helpers import ForwardProxy, VersionEndpoint, serving

PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="ACME Factory IT")


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "company-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(ca: trustme.CA, *names: str, client_ca: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1", "localhost"))).configure_cert(context)
    if client_ca:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def version(config: ClientConfig) -> str:
    async def go() -> str:
        async with WATSApiClient(config) as api:
            return await api.get_version()

    return asyncio.run(asyncio.wait_for(go(), 30))


def cfg(address: str, **settings: Any) -> ClientConfig:
    return ClientConfig(service_address=address, api_token="dA==", request_timeout=5, **settings)


# --- TLS ---------------------------------------------------------------------------------


def test_company_ca_bundle_is_trusted(ca: trustme.CA, ca_file: Path) -> None:
    with VersionEndpoint(server_context(ca)) as server:
        assert version(cfg(server.url, ca_bundle=ca_file)) == "24.1.0"


def test_untrusted_certificate_is_explained(ca: trustme.CA) -> None:
    with (
        VersionEndpoint(server_context(ca)) as server,
        pytest.raises(ServerUnavailableError) as caught,
    ):
        version(cfg(server.url))
    message = str(caught.value)
    assert f"TLS certificate of 127.0.0.1:{server.port} is not trusted" in message
    assert "self-signed" in message or "unable to get local issuer" in message
    assert "ca_bundle" in message


def test_certificate_for_another_host_is_explained(ca: trustme.CA, ca_file: Path) -> None:
    with (
        VersionEndpoint(server_context(ca, "other.example")) as server,
        pytest.raises(ServerUnavailableError, match=r"(?i)mismatch"),
    ):
        version(cfg(server.url, ca_bundle=ca_file))


def test_verify_tls_false_connects_with_a_warning(ca: trustme.CA) -> None:
    config = cfg("https://127.0.0.1:1", verify_tls=False)
    assert any("verify_tls is false" in w for w in network_warnings(config))
    with VersionEndpoint(server_context(ca)) as server:
        assert version(cfg(server.url, verify_tls=False)) == "24.1.0"


def test_client_certificate_is_presented(ca: trustme.CA, ca_file: Path, tmp_path: Path) -> None:
    client = ca.issue_cert("station-1@acme.example")
    cert = tmp_path / "station.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(cert))
    with VersionEndpoint(server_context(ca, client_ca=True)) as server:
        with pytest.raises(ServerUnavailableError, match="client certificate"):
            version(cfg(server.url, ca_bundle=ca_file))
        assert version(cfg(server.url, ca_bundle=ca_file, client_cert=cert)) == "24.1.0"
    peer = server.seen[-1]["peer_cert"]
    assert peer is not None and "station-1@acme.example" in str(peer)


def test_client_certificate_with_separate_key(
    ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    client = ca.issue_cert("station-2@acme.example")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    with VersionEndpoint(server_context(ca, client_ca=True)) as server:
        config = cfg(server.url, ca_bundle=ca_file, client_cert=cert, client_key=key)
        assert version(config) == "24.1.0"


@pytest.mark.parametrize(
    ("settings", "key", "words"),
    [
        ({"ca_bundle": "missing.pem"}, "ca_bundle", "does not exist"),
        ({"client_cert": "missing.pem"}, "client_cert", "does not exist"),
        ({"client_key": "key.pem"}, "client_key", "client_cert is not"),
    ],
)
def test_bad_certificate_settings_name_the_key(
    tmp_path: Path, settings: dict[str, str], key: str, words: str
) -> None:
    config = ClientConfig.from_dict(
        {"service_address": "https://wats.example.com", **settings},
        source=tmp_path / "station.json",
    )
    with pytest.raises(ConfigError) as caught:
        build_http_client(config)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_garbage_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("this is not a certificate")
    with pytest.raises(ConfigError, match="PEM"):
        build_http_client(cfg("https://wats.example.com", ca_bundle=bundle))


# --- proxies -----------------------------------------------------------------------------


def test_https_through_an_authenticating_proxy(ca: trustme.CA, ca_file: Path) -> None:
    proxy = ForwardProxy(credentials="op:s3cret")
    server = VersionEndpoint(server_context(ca))
    with serving(proxy, server):
        config = cfg(server.url, ca_bundle=ca_file, proxy=proxy.url("op:s3cret"))
        assert version(config) == "24.1.0"
    assert proxy.seen[-1] == {
        "method": "CONNECT",
        "target": f"127.0.0.1:{server.port}",
        "authorized": True,
    }


def test_proxy_refusing_credentials_is_explained_without_the_password(
    ca: trustme.CA, ca_file: Path
) -> None:
    with (
        ForwardProxy(credentials="op:s3cret") as proxy,
        VersionEndpoint(server_context(ca)) as server,
    ):
        config = cfg(server.url, ca_bundle=ca_file, proxy=proxy.url("op:wrong"))
        with pytest.raises(ServerUnavailableError) as caught:
            version(config)
    message = str(caught.value)
    assert "requires authentication (407" in message
    assert "wrong" not in message and "s3cret" not in message
    assert f"127.0.0.1:{proxy.port}" in message


def test_plain_http_through_the_proxy_key() -> None:
    with ForwardProxy() as proxy, VersionEndpoint() as server:
        assert version(cfg(server.url, proxy=proxy.url())) == "24.1.0"
    assert proxy.seen[-1]["method"] == "GET"
    assert proxy.seen[-1]["target"] == f"{server.url}/api/App/Version"


def test_proxy_environment_variables_are_honoured(
    ca: trustme.CA, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy() as proxy, VersionEndpoint(server_context(ca)) as server:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url())
        config = cfg(server.url, ca_bundle=ca_file)
        assert proxy_for(config) == proxy.url()
        assert version(config) == "24.1.0"
        assert proxy.seen and proxy.seen[-1]["method"] == "CONNECT"
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        seen = len(proxy.seen)
        assert proxy_for(config) is None
        assert version(config) == "24.1.0"
        assert len(proxy.seen) == seen  # bypassed


def test_unreachable_proxy_is_named() -> None:
    with ForwardProxy() as proxy:
        port = proxy.port
    config = cfg("http://127.0.0.1:9", proxy=f"http://127.0.0.1:{port}")
    with pytest.raises(ServerUnavailableError, match=f"the proxy http://127.0.0.1:{port}"):
        version(config)


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("http://op:s3cret@proxy.acme:3128") == "http://op:***@proxy.acme:3128"
    assert redact_url("http://proxy.acme:3128") == "http://proxy.acme:3128"


# --- the client itself ------------------------------------------------------------------


def test_client_uses_timeouts_limits_and_http11_from_config() -> None:
    config = ClientConfig(
        service_address="https://wats.example.com", request_timeout=42, max_concurrent_uploads=7
    )

    async def inspect() -> None:
        async with build_http_client(config) as client:
            assert client.timeout.read == 42
            assert client.timeout.connect == 10
            assert client.base_url == httpx.URL("https://wats.example.com")
            pool = client._transport._pool  # type: ignore[attr-defined]
            assert pool._max_connections == 9
            assert pool._http1 is True and pool._http2 is False

    asyncio.run(inspect())
