"""Turn HTTP answers and network failures into errors an IT admin can act on.

The uploader needs one of three outcomes (retry / park / pause) and the
operator needs the cause in plain words: "DNS lookup failed", "connection
refused", "TLS certificate not trusted: certificate has expired", "the proxy
asks for a password", "no answer within 10 s". Messages never contain the
token or a proxy password.
"""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from pywats_client.errors import (
    ReportRejectedError,
    ServerUnavailableError,
    UnauthorizedError,
)

__all__ = [
    "describe_network_error",
    "error_message_of",
    "parse_retry_after",
    "raise_for_status",
]

_MAX_MESSAGE = 500


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname or url}:{port}"


def describe_network_error(
    exc: BaseException, *, url: str, proxy: str | None, timeout: float
) -> str:
    """One sentence naming the cause of a failed request and what to check."""
    server = _host_port(url)
    target = f"the proxy {proxy}" if proxy else server
    # a TLS 1.3 server that wants a client certificate often just drops the connection
    cert_hint = (
        "; if the server requires a client certificate, set client_cert"
        if url.startswith("https:")
        else ""
    )
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"TLS certificate of {server} is not trusted: {cause.verify_message}. If the "
                "server (or a proxy inspecting TLS) uses a company CA, set ca_bundle to that "
                "CA's PEM file; otherwise have the server's certificate fixed"
            )
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or str(cause)
            hint = (
                "the server may require a client certificate (set client_cert)"
                if "CERTIFICATE" in reason.upper() and "VERIFY" not in reason.upper()
                else "check that service_address uses the right scheme (https://) and port"
            )
            return f"TLS handshake with {server} failed ({reason}); {hint}"
        if isinstance(cause, socket.gaierror):
            host = urlsplit(proxy).hostname if proxy else urlsplit(url).hostname
            what = "proxy" if proxy else "server"
            return (
                f"DNS lookup of the {what} name {host!r} failed ({cause.strerror}); check the "
                "spelling in the config and the station's DNS/network settings"
            )
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"connection to {target} was refused: nothing is listening there (server "
                "stopped, wrong port, or a firewall rejecting it)"
            )
        if isinstance(cause, httpx.ProxyError):
            return _describe_proxy_status(str(cause), proxy)
        if isinstance(cause, httpx.ConnectTimeout):
            return (
                f"no answer from {target} within {min(timeout, 10.0):g} s while connecting: the "
                "address is wrong or a firewall silently drops the traffic"
            )
        if isinstance(cause, (httpx.ReadTimeout, httpx.WriteTimeout)):
            return (
                f"{server} accepted the connection but did not answer within {timeout:g} s "
                "(request_timeout): the server is overloaded or stuck"
            )
        if isinstance(cause, httpx.PoolTimeout):
            return f"all connections to {server} stayed busy for {timeout:g} s"
        if isinstance(cause, httpx.RemoteProtocolError):
            return (
                f"{server} closed the connection without answering (server restarting, or a "
                f"proxy/firewall cutting connections){cert_hint}"
            )
        if isinstance(cause, (ConnectionResetError, BrokenPipeError)):
            return (
                f"the connection to {target} was cut (server restarting or a firewall){cert_hint}"
            )
        if isinstance(cause, OSError) and cause.strerror:
            return f"network error talking to {target}: {cause.strerror}"
    return f"network error talking to {target}: {type(exc).__name__}: {exc}"


def _describe_proxy_status(text: str, proxy: str | None) -> str:
    name = proxy or "the proxy"
    if text.startswith("407"):
        return (
            f"{name} requires authentication (407 Proxy Authentication Required); put the "
            "user and password into the proxy URL: http://user:password@proxy:port"
        )
    return f"{name} refused to connect to the WATS server ({text}); ask IT to allow the server"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _json_message(text: str) -> str | None:
    """The ``Message`` (or similar) of a JSON error body; None if it has none."""
    try:
        data: Any = json.loads(text) if text else None
    except ValueError:
        return None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict):
        for key in ("Message", "message", "error", "detail", "title"):
            if isinstance(data.get(key), str) and data[key].strip():
                message: str = data[key].strip()
                details = data.get("ModelState") or data.get("errors")
                if isinstance(details, dict) and details:
                    message += " " + json.dumps(details, ensure_ascii=False)
                return message[:_MAX_MESSAGE]
    if isinstance(data, str) and data.strip():
        return data.strip()[:_MAX_MESSAGE]
    return None


def error_message_of(response: httpx.Response) -> str:
    """The server's own explanation from an error answer (``Message`` or text)."""
    text = response.text.strip()
    message = _json_message(text)
    if message is not None:
        return message
    return text[:_MAX_MESSAGE] or response.reason_phrase or "no reason given"


def _is_web_page(response: httpx.Response) -> bool:
    """An HTML page where a WATS call answers JSON (or nothing): markup, said or shown."""
    start = response.text[:200].lstrip().lower()
    if not start.startswith("<"):
        return False
    html_type = "html" in response.headers.get("Content-Type", "").lower()
    return html_type or start.startswith(("<!doctype html", "<html"))


def _beginning(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def raise_for_status(response: httpx.Response, *, what: str, proxy: str | None) -> None:
    """Raise the error family matching a non-2xx answer to ``what``.

    A 2xx that is a web page is not an answer of WATS either: a captive portal,
    login page or load balancer answers in its place, and treating it as success
    would delete reports the server never stored.
    """
    status = response.status_code
    if 200 <= status < 300:
        if _is_web_page(response):
            raise ServerUnavailableError(
                f"{_host_port(str(response.request.url))} answered the request to {what} with "
                f"{status} {response.reason_phrase} and a web page, not as WATS does "
                f"({_beginning(response.text)!r}): a proxy, login page or load balancer "
                "answers instead of the server. Check service_address and the proxy "
                "settings; reports stay queued and are sent again",
                status_code=status,
            )
        return
    server = _host_port(str(response.request.url))
    reason = error_message_of(response)
    if status == 401:
        raise UnauthorizedError(
            f"{server} refused the API token (401 Unauthorized: {reason}); the token is wrong "
            "or expired: paste a new one from WATS into api_token or PYWATS_API_TOKEN"
        )
    if status == 403:
        raise UnauthorizedError(
            f"{server} does not allow this token to {what} (403 Forbidden: {reason}); ask the "
            "WATS administrator to grant the token's user that right"
        )
    if status == 407:
        raise ServerUnavailableError(_describe_proxy_status("407", proxy), status_code=407)
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        wait = f"; it asks to wait {retry_after:g} s" if retry_after is not None else ""
        raise ServerUnavailableError(
            f"{server} is busy or unavailable ({status} {response.reason_phrase}: {reason}){wait}",
            retry_after=retry_after,
            status_code=status,
        )
    if 300 <= status < 400 or (
        status in (404, 405) and _json_message(response.text.strip()) is None
    ):
        # the address, not the report: a moved route or a proxy in front of the server
        # (a 404 with a WATS message, such as an unknown part, is about the report)
        location = response.headers.get("Location")
        moved = f" to {location}" if location else ""
        raise ServerUnavailableError(
            f"{server} answered the request to {what} with {status} "
            f"{response.reason_phrase}{moved}: {response.request.url} is not a WATS API "
            "address. Check service_address (the WATS server's base URL, with https://); "
            "reports stay queued and are sent again",
            status_code=status,
        )
    if status == 413:
        size = response.request.headers.get("Content-Length", "?")
        raise ReportRejectedError(
            f"server refused the request to {what} as too large ({size} bytes; 413 "
            f"{response.reason_phrase}: {reason}); ask the WATS administrator to raise the "
            "upload size limit, or have the converter write fewer or lighter steps",
            status_code=status,
        )
    raise ReportRejectedError(
        f"server rejected the request to {what} ({status} {response.reason_phrase}): {reason}",
        status_code=status,
    )
