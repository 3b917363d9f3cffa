"""WATSApiClient: each HTTP outcome lands in the right error family, in plain words."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pywats_client.core import ClientConfig
from pywats_client.core.config import TOKEN_ENV_VAR
from pywats_client.core.connection_config import build_http_client
from pywats_client.errors import (
    RejectedError,
    ReportRejectedError,
    RetryableError,
    ServerUnavailableError,
    UnauthorizedError,
)
from pywats_client.services import WATSApiClient
from pywats_client.services._http_errors import parse_retry_after

TOKEN = "c2VjcmV0LXRva2VuLTEyMw=="
REPORT = {"type": "T", "id": "0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10", "pn": "P", "sn": "S"}


def make_client(handler: Callable[[httpx.Request], httpx.Response], **config: Any) -> WATSApiClient:
    cfg = ClientConfig(
        **{"service_address": "https://wats.example.com", "api_token": TOKEN, **config}
    )
    http = build_http_client(cfg, transport=httpx.MockTransport(handler))
    return WATSApiClient(cfg, http_client=http)


def submit(handler: Callable[[httpx.Request], httpx.Response], **config: Any) -> Any:
    async def go() -> Any:
        client = make_client(handler, **config)
        try:
            return await client.submit_report(REPORT)
        finally:
            await client.http.aclose()

    return asyncio.run(go())


def test_submit_posts_wsjf_with_basic_token_and_returns_the_stored_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ID": REPORT["id"]})

    assert submit(handler) == REPORT["id"]
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://wats.example.com/api/Report/WSJF"
    assert request.headers["Authorization"] == f"Basic {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == REPORT


def test_a_report_carrying_a_name_that_is_not_utf8_is_sent_not_retried_forever() -> None:
    # A converter copying such a file name (os.fsdecode: a lone surrogate) into sn.
    report = {**REPORT, "sn": "SN-\udcff"}
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"ID": REPORT["id"]})

    async def go() -> Any:
        client = make_client(handler)
        try:
            return await client.submit_report(report)
        finally:
            await client.http.aclose()

    assert asyncio.run(go()) == REPORT["id"]
    (body,) = seen
    assert b'"sn":"SN-\\udcff"' in body
    assert json.loads(body)["sn"] == "SN-\udcff"  # valid JSON, the same string


def test_submit_accepts_a_list_answer_and_an_empty_answer() -> None:
    assert submit(lambda r: httpx.Response(201, json=[{"id": "abc"}])) == "abc"
    assert submit(lambda r: httpx.Response(204)) is None


@pytest.mark.parametrize("status", [400, 404, 409, 413, 422])
def test_other_4xx_is_a_rejection_carrying_the_servers_message(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"Message": "Part number (pn) is required"})

    with pytest.raises(ReportRejectedError) as caught:
        submit(handler)
    assert isinstance(caught.value, RejectedError)
    assert caught.value.status_code == status
    assert "Part number (pn) is required" in str(caught.value)
    assert str(status) in str(caught.value)


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (302, {"Location": "https://login.example.com/"}, "moved"),
        (308, {"Location": "https://wats.example.com/wats/api/Report/WSJF"}, ""),
        (404, {"Content-Type": "text/html"}, "<html><body>Not Found</body></html>"),
        (405, {}, "Method Not Allowed"),
    ],
)
def test_a_redirect_or_missing_route_is_the_address_not_the_report(
    status: int, headers: dict[str, str], body: str
) -> None:
    """Parking the backlog for a moved route would put every report in failed/."""
    with pytest.raises(ServerUnavailableError) as caught:
        submit(lambda r: httpx.Response(status, headers=headers, text=body))
    message = str(caught.value)
    assert caught.value.status_code == status
    assert "https://wats.example.com/api/Report/WSJF is not a WATS API address" in message
    assert "Check service_address" in message and "stay queued" in message
    if "Location" in headers:
        assert f"to {headers['Location']}" in message


def test_a_json_answer_is_not_taken_for_a_web_page_whatever_its_content_type() -> None:
    answer = httpx.Response(200, headers={"Content-Type": "text/html"}, text='{"ID": "abc"}')
    assert submit(lambda r: answer) == "abc"
    assert submit(lambda r: httpx.Response(204, headers={"Content-Type": "text/html"})) is None


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content-Type": "text/html; charset=utf-8"}, "<p>Please log in</p>"),
        ({}, "\n  <!DOCTYPE html><html><body>Service unavailable</body></html>"),
    ],
)
def test_a_web_page_with_200_is_not_a_stored_report(headers: dict[str, str], body: str) -> None:
    """A captive portal or load balancer page must not make the station delete reports."""
    with pytest.raises(ServerUnavailableError) as caught:
        submit(lambda r: httpx.Response(200, headers=headers, text=body))
    message = str(caught.value)
    assert "wats.example.com:443 answered the request to submit reports with 200 OK" in message
    assert "a web page, not as WATS does" in message and "stay queued" in message

    async def version() -> str:
        client = make_client(lambda r: httpx.Response(200, headers=headers, text=body))
        try:
            return await client.get_version()
        finally:
            await client.http.aclose()

    with pytest.raises(ServerUnavailableError, match="read the server version with 200 OK"):
        asyncio.run(version())


def test_rejection_reason_from_plain_text_body() -> None:
    with pytest.raises(ReportRejectedError, match="bad sn"):
        submit(lambda r: httpx.Response(400, text="bad sn"))


@pytest.mark.parametrize(("status", "words"), [(401, "token is wrong"), (403, "grant")])
def test_401_and_403_are_unauthorized_and_never_show_the_token(status: int, words: str) -> None:
    with pytest.raises(UnauthorizedError) as caught:
        submit(lambda r: httpx.Response(status, json={"Message": "nope"}))
    assert isinstance(caught.value, RetryableError)
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)


def test_401_without_any_token_says_the_token_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV_VAR, raising=False)
    refuse = lambda r: httpx.Response(401, json={"Message": "nope"})  # noqa: E731
    with pytest.raises(UnauthorizedError, match="has no API token \\(api_token is empty and "):
        submit(refuse, api_token="", instance_name="st-1")
    monkeypatch.setenv(TOKEN_ENV_VAR, "from-the-environment")
    with pytest.raises(UnauthorizedError, match="token is wrong or expired"):
        submit(refuse, api_token="")


def test_413_is_rejected_naming_the_size_and_who_can_help() -> None:
    sizes: list[int] = []

    def too_big(request: httpx.Request) -> httpx.Response:
        sizes.append(len(request.content))
        return httpx.Response(413, text="too big")

    with pytest.raises(ReportRejectedError) as caught:
        submit(too_big)
    assert caught.value.status_code == 413
    assert f"too large ({sizes[0]} bytes; 413" in str(caught.value)
    assert "WATS administrator" in str(caught.value)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_5xx_and_408_are_transient(status: int) -> None:
    with pytest.raises(ServerUnavailableError) as caught:
        submit(lambda r: httpx.Response(status, text="busy"))
    assert caught.value.status_code == status
    assert caught.value.retry_after is None


def test_429_carries_retry_after_seconds() -> None:
    with pytest.raises(ServerUnavailableError) as caught:
        submit(lambda r: httpx.Response(429, headers={"Retry-After": "7"}))
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 7.0
    assert "wait 7 s" in str(caught.value)


def test_retry_after_as_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    with pytest.raises(ServerUnavailableError) as caught:
        submit(lambda r: httpx.Response(503, headers={"Retry-After": when}))
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 31


def test_parse_retry_after_edge_cases() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_proxy_407_answer_is_transient_and_explained() -> None:
    with pytest.raises(ServerUnavailableError, match="requires authentication"):
        submit(lambda r: httpx.Response(407))


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def _with_cause(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (
            _with_cause(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            "DNS lookup of the server name 'wats.example.com' failed",
        ),
        (
            _with_cause(httpx.ConnectError("x"), ConnectionRefusedError(111, "refused")),
            "wats.example.com:443 was refused",
        ),
        (httpx.ConnectTimeout("x"), "while connecting"),
        (httpx.ReadTimeout("x"), "did not answer within 30 s"),
        (httpx.RemoteProtocolError("x"), "closed the connection without answering"),
        (httpx.ProxyError("407 Proxy Authentication Required"), "requires authentication"),
    ],
)
def test_network_errors_are_transient_and_described(exc: Exception, words: str) -> None:
    with pytest.raises(ServerUnavailableError) as caught:
        submit(raising(exc))
    assert words in str(caught.value)
    assert caught.value.status_code is None


def test_get_version_understands_json_string_dict_and_text() -> None:
    async def version(response: httpx.Response) -> str:
        client = make_client(lambda r: response)
        try:
            return await client.get_version()
        finally:
            await client.http.aclose()

    assert asyncio.run(version(httpx.Response(200, json="24.1.0"))) == "24.1.0"
    assert asyncio.run(version(httpx.Response(200, json={"Version": "23.2"}))) == "23.2"
    assert asyncio.run(version(httpx.Response(200, text="22.1.5\n"))) == "22.1.5"


def test_offline_instance_refuses_to_send() -> None:
    async def go() -> None:
        async with WATSApiClient(ClientConfig(instance_name="st1")) as client:
            await client.submit_report(REPORT)

    with pytest.raises(ServerUnavailableError, match="no service_address"):
        asyncio.run(go())


def test_token_from_environment_wins_and_repr_hides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWATS_API_TOKEN", "ZW52LXRva2Vu")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={})

    submit(handler)
    assert seen == ["Basic ZW52LXRva2Vu"]
    client = make_client(handler)
    assert TOKEN not in repr(client) and "ZW52" not in repr(client)
    assert "ZW52" not in repr(client.http.headers)
