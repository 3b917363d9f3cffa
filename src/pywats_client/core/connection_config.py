"""Connection settings: the one place the HTTP client to the WATS server is built.

Factories put proxies, company CAs and sometimes client certificates between a
station and its server. :func:`build_http_client` turns the instance's network
keys (``proxy``, ``ca_bundle``, ``verify_tls``, ``client_cert``/``client_key``,
``request_timeout``, ``max_concurrent_uploads``) into an ``httpx.AsyncClient``
that speaks HTTP/1.1 with keep-alive. Standard proxy environment variables
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) apply when no
``proxy`` key is set; ``SSL_CERT_FILE``/``SSL_CERT_DIR`` add trusted CAs.
"""

from __future__ import annotations

import logging
import ssl
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import certifi
import httpx

from pywats_client._net import is_loopback
from pywats_client._version import __version__
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConfigError

__all__ = [
    "CONNECT_TIMEOUT",
    "VERSION_PATH",
    "build_blocking_http_client",
    "build_http_client",
    "build_tls_context",
    "network_warnings",
    "proxy_for",
    "redact_url",
]

log = logging.getLogger("pywats_client.connection")

#: Longest wait for a TCP/TLS connection; a dead address should not hold an upload 30 s.
CONNECT_TIMEOUT = 10.0
VERSION_PATH = "/api/App/Version"
#: Used as base URL when ``service_address`` is empty (offline): never contacted.
OFFLINE_BASE_URL = "http://offline.invalid"

TLS_OFF_WARNING = (
    "verify_tls is false: the WATS server's TLS certificate is NOT checked, so anyone on "
    "the network path can pose as the server and read the API token and every report. "
    "Set ca_bundle to your company CA's PEM file and remove verify_tls"
)


def redact_url(url: str) -> str:
    """``url`` without a password (proxy URLs may carry ``user:password@``)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def network_warnings(config: ClientConfig) -> list[str]:
    """Risky network settings, worded for the operator (shown in log and status)."""
    warnings = []
    if not config.verify_tls:
        warnings.append(TLS_OFF_WARNING)
    parts = urlsplit(config.service_address)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        warnings.append(
            f"service_address {config.service_address} uses http://: the API token and the "
            "reports travel unencrypted. Use the server's https:// address"
        )
    return warnings


def _check_file(config: ClientConfig, key: str, path: Path) -> Path:
    resolved = config.resolve_path(path)
    if not resolved.is_file():
        raise ConfigError(
            f"{resolved} does not exist or is not a file; fix the path or remove the key",
            key=key,
        )
    return resolved


def build_tls_context(config: ClientConfig) -> ssl.SSLContext:
    """TLS settings for verifying the server (and presenting a client certificate).

    Trusts the system's CAs, certifi's public CAs and ``ca_bundle``, so a
    company CA can be added without losing the public ones.
    """
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.ca_bundle is not None:
        bundle = _check_file(config, "ca_bundle", config.ca_bundle)
        try:
            context.load_verify_locations(cafile=str(bundle))
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"{bundle} holds no usable PEM certificate ({exc}); export the company CA "
                "as Base-64 (PEM) and point ca_bundle at it",
                key="ca_bundle",
            ) from None
    if config.client_cert is not None:
        cert = _check_file(config, "client_cert", config.client_cert)
        key = _check_file(config, "client_key", config.client_key) if config.client_key else None
        try:
            context.load_cert_chain(str(cert), str(key) if key else None)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"{cert}: cannot load the client certificate ({exc}); it must be PEM, with its "
                "private key inside or in client_key, not password-protected",
                key="client_cert",
            ) from None
    elif config.client_key is not None:
        raise ConfigError("is set but client_cert is not; set both or neither", key="client_key")
    return context


def build_http_client(
    config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The HTTP client for ``config``'s WATS server (caller closes it).

    Raises :class:`ConfigError` for unusable certificate settings.
    ``transport`` replaces the network (tests use ``httpx.MockTransport``).
    """
    if not config.verify_tls:
        log.warning("%s (instance %r)", TLS_OFF_WARNING, config.instance_name)
    return httpx.AsyncClient(**_client_options(config), transport=transport)


def build_blocking_http_client(config: ClientConfig) -> httpx.Client:
    """A blocking twin of :func:`build_http_client`, for a thread of the upload helper.

    Same headers, TLS, proxy, limits and timeouts; the warning about
    ``verify_tls = false`` is the worker's to log.
    """
    return httpx.Client(**_client_options(config))


def _client_options(config: ClientConfig) -> dict[str, Any]:
    headers = {"User-Agent": f"pywats-client/{__version__}", "Accept": "application/json"}
    token = config.effective_token().get_secret_value()
    if token:
        headers["Authorization"] = f"Basic {token}"
    connections = config.max_concurrent_uploads + 2  # uploads plus the connection check
    return {
        "base_url": config.service_address or OFFLINE_BASE_URL,
        "headers": headers,
        "verify": build_tls_context(config),
        "proxy": config.proxy,
        "trust_env": True,
        "http1": True,
        "http2": False,
        "follow_redirects": False,
        "limits": httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=30.0,
        ),
        "timeout": httpx.Timeout(
            config.request_timeout, connect=min(CONNECT_TIMEOUT, config.request_timeout)
        ),
    }


def proxy_for(config: ClientConfig, url: str | None = None) -> str | None:
    """The proxy (password redacted) that requests to ``url`` go through, if any."""
    if config.proxy:
        return redact_url(config.proxy)
    parts = urlsplit(url or config.service_address)
    if not parts.hostname:
        return None
    bypass: Any = getattr(urllib.request, "proxy_bypass_environment", None)
    if bypass is not None and bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()  # as httpx: on Windows also the system's settings
    found = proxies.get(parts.scheme) or proxies.get("all")
    return redact_url(found) if found else None
