"""``WATSApiClient``: the HTTP calls to a WATS server, each outcome classified.

Every call either returns or raises one of the error families the caller
acts on (see :mod:`pywats_client.errors`):

* :class:`ServerUnavailableError` - network error, timeout, 408, 429, 5xx
  (``retry_after`` from ``Retry-After``): retry later;
* :class:`ReportRejectedError` - any other 4xx, carrying the server's
  ``Message``: park the report;
* :class:`UnauthorizedError` - 401/403: pause uploading until the token works.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from pywats_client.core.config import TOKEN_ENV_VAR, ClientConfig
from pywats_client.core.connection_config import (
    VERSION_PATH,
    build_blocking_http_client,
    build_http_client,
    proxy_for,
)
from pywats_client.errors import ServerUnavailableError, UnauthorizedError
from pywats_client.services._http_errors import describe_network_error, raise_for_status

__all__ = ["SUBMIT_PATH", "BlockingSubmitter", "WATSApiClient", "report_body"]

SUBMIT_PATH = "/api/Report/WSJF"
_JSON_BODY = {"Content-Type": "application/json"}


class WATSApiClient:
    """Talks to the WATS server of one instance over one keep-alive HTTP client.

    ``http_client`` replaces the client built from ``config`` (tests pass one
    over ``httpx.MockTransport``); a client passed in is not closed here.
    """

    def __init__(self, config: ClientConfig, *, http_client: httpx.AsyncClient | None = None):
        self._config = config
        self._http = http_client if http_client is not None else build_http_client(config)
        self._owns_http = http_client is None
        self._proxy = proxy_for(config)
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"WATSApiClient({self._config.service_address or 'offline'!r})"

    @property
    def service_address(self) -> str:
        return self._config.service_address

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    async def __aenter__(self) -> WATSApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def _url(self, path: str) -> httpx.URL:
        """Absolute URL of ``path``, parsed once (httpx re-parses relative ones per request)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(f"{self._config.service_address}{path}")
        return url

    async def _request(
        self, method: str, path: str, *, what: str, content: bytes | None = None
    ) -> httpx.Response:
        _check_online(self._config)
        url = self._url(path)
        headers = _JSON_BODY if content is not None else None
        try:
            response = await self._http.request(method, url, content=content, headers=headers)
        except (httpx.TransportError, OSError) as exc:  # OSError: ssl errors httpx lets through
            raise _unreachable(self._config, exc, url, self._proxy) from None
        _check_answer(self._config, response, what=what, proxy=self._proxy)
        return response

    async def submit_report(self, report: Mapping[str, Any] | bytes) -> str | None:
        """Submit one WSJF report; returns the id the server stored it under, if it says."""
        body = report if isinstance(report, bytes) else report_body(report)
        response = await self._request("POST", SUBMIT_PATH, what="submit reports", content=body)
        return _stored_id(response)

    async def get_version(self) -> str:
        """The server's version string (``GET /api/App/Version``)."""
        response = await self._request("GET", VERSION_PATH, what="read the server version")
        return _version_text(response)


class BlockingSubmitter:
    """Submits WSJF bodies from a thread of the upload helper, outcomes as :class:`WATSApiClient`.

    Blocking httpx costs about a third less CPU per request than the async
    client (docs/benchmarks.md); the helper has nothing else to do while it
    waits, so its threads block. One per thread: each keeps its own connection.
    """

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._http = build_blocking_http_client(config)
        self._proxy = proxy_for(config)
        self._submit_url = httpx.URL(f"{config.service_address}{SUBMIT_PATH}")

    def __repr__(self) -> str:
        return f"BlockingSubmitter({self._config.service_address or 'offline'!r})"

    def submit(self, body: bytes) -> None:
        _check_online(self._config)
        try:
            response = self._http.post(self._submit_url, content=body, headers=_JSON_BODY)
        except (httpx.TransportError, OSError) as exc:
            raise _unreachable(self._config, exc, self._submit_url, self._proxy) from None
        _check_answer(self._config, response, what="submit reports", proxy=self._proxy)

    def close(self) -> None:
        self._http.close()


def _check_online(config: ClientConfig) -> None:
    if not config.service_address:
        raise ServerUnavailableError(
            f"instance {config.instance_name!r} has no service_address: it is "
            "offline and only queues reports; set service_address to upload them"
        )


def _unreachable(
    config: ClientConfig, exc: BaseException, url: httpx.URL, proxy: str | None
) -> ServerUnavailableError:
    return ServerUnavailableError(
        describe_network_error(exc, url=str(url), proxy=proxy, timeout=config.request_timeout)
    )


def _check_answer(
    config: ClientConfig, response: httpx.Response, *, what: str, proxy: str | None
) -> None:
    """Raise the error family of a response that is not a success."""
    if response.status_code == 401 and not config.effective_token().get_secret_value():
        raise UnauthorizedError(
            f"instance {config.instance_name!r} has no API token (api_token is empty "
            f"and {TOKEN_ENV_VAR} is not set), so the server refused it: paste a token "
            "from WATS into the config's api_token or set the variable"
        )
    raise_for_status(response, what=what, proxy=proxy)


def report_body(report: Mapping[str, Any]) -> bytes:
    """A WSJF report as the bytes to POST."""
    # backslashreplace: a name that is not valid UTF-8, copied into the report by
    # a converter, goes as a JSON \uXXXX escape instead of failing every attempt
    return json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace"
    )


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _stored_id(response: httpx.Response) -> str | None:
    data = _json_or_none(response)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict):
        for key in ("ID", "id", "Id"):
            if data.get(key) is not None:
                return str(data[key])
    return None


def _version_text(response: httpx.Response) -> str:
    data = _json_or_none(response)
    if isinstance(data, str):
        return data.strip()
    if isinstance(data, dict):
        for key in ("Version", "version", "Value", "value"):
            if isinstance(data.get(key), (str, int, float)):
                return str(data[key]).strip()
    return response.text.strip().strip('"')
