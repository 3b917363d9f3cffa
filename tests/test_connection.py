"""ConnectionService: states, reasons in plain words, backoff, immediate checks."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from pywats_client.core import ClientConfig
from pywats_client.core.connection_config import build_http_client
from pywats_client.core.snapshot import ConnectionState
from pywats_client.errors import ServerUnavailableError
from pywats_client.services import ConnectionService, WATSApiClient
from tests.helpers import async_wait_until


class VersionServer:
    def __init__(self) -> None:
        self.mode = "up"  # up | refused | unauthorized | busy
        self.calls = 0
        self.times: list[float] = []  # monotonic time of each check
        self.delay = 0.0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/App/Version"
        self.calls += 1
        self.times.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)  # the scenario: a slow server
        if self.mode == "refused":
            exc = httpx.ConnectError("All connection attempts failed")
            exc.__cause__ = ConnectionRefusedError(111, "Connect call failed")
            raise exc
        if self.mode == "unauthorized":
            return httpx.Response(401, json={"Message": "Authorization has been denied"})
        if self.mode == "busy":
            return httpx.Response(503, text="maintenance")
        return httpx.Response(200, json="24.1.0")


def make(server: VersionServer, **overrides: Any) -> tuple[ClientConfig, WATSApiClient]:
    settings: dict[str, Any] = {"service_address": "https://wats.example.com", "api_token": "dA=="}
    settings.update(overrides)
    config = ClientConfig.from_dict(settings)
    http = build_http_client(config, transport=httpx.MockTransport(server.handler))
    return config, WATSApiClient(config, http_client=http)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def test_connected_after_start_with_version_and_since() -> None:
    server = VersionServer()
    config, api = make(server)

    async def main() -> None:
        conn = ConnectionService(config, api)
        before = time.time()
        await conn.start()
        assert conn.is_connected()
        assert conn.state == "connected"
        assert conn.since >= before
        assert await conn.get_server_version() == "24.1.0"
        assert conn.server_version == "24.1.0"
        assert conn.last_error is None
        await conn.wait_connected()  # returns at once
        await conn.stop()

    run(main())


def test_disconnected_names_the_cause_and_reconnects_quickly() -> None:
    server = VersionServer()
    server.mode = "refused"
    config, api = make(server)
    changes: list[ConnectionState] = []

    async def main() -> None:
        conn = ConnectionService(config, api, retry_min=0.05, retry_max=0.2)
        conn.add_listener(changes.append)
        await conn.start()
        assert conn.state == "disconnected"
        assert "wats.example.com:443 was refused" in (conn.last_error or "")
        with pytest.raises(ServerUnavailableError, match="refused"):
            await conn.get_server_version()
        waiter = asyncio.create_task(conn.wait_connected())
        # the service goes on checking; none of its checks connects the waiter
        checked = server.calls
        await async_wait_until(lambda: server.calls >= checked + 3, 15, message="3 more checks")
        assert not waiter.done()
        server.mode = "up"
        back = time.monotonic()
        await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - back < 1.0  # within the capped reconnect backoff
        assert conn.is_connected()
        await conn.stop()

    run(main())
    assert changes == ["disconnected", "connected"]


def test_reconnect_backoff_grows_and_is_capped() -> None:
    server = VersionServer()
    server.mode = "refused"
    config, api = make(server)

    async def main() -> None:
        conn = ConnectionService(config, api, retry_min=0.025, retry_max=0.2, min_check_gap=0)
        await conn.start()
        await async_wait_until(lambda: server.calls >= 9, 15, message="9 checks")
        await conn.stop()

    run(main())
    gaps = [later - earlier for earlier, later in itertools.pairwise(server.times[:9])]
    # the n-th wait is 80-100 % of min(0.2, 0.025 * 2**(n-1)): 0.025, 0.05, 0.1, 0.2, 0.2 ...
    ceilings = [min(0.2, 0.025 * 2**n) for n in range(len(gaps))]
    assert all(gap >= 0.8 * c - 0.005 for gap, c in zip(gaps, ceilings, strict=True)), gaps
    # capped: uncapped, the last wait would be at least 0.8 * 3.2 s
    assert gaps[-1] < 2.0, gaps


def test_unauthorized_state() -> None:
    server = VersionServer()
    server.mode = "unauthorized"
    config, api = make(server)

    async def main() -> None:
        conn = ConnectionService(config, api)
        await conn.start()
        assert conn.state == "unauthorized"
        assert not conn.is_connected()
        assert "token" in (conn.last_error or "")
        await conn.stop()

    run(main())


def test_5xx_counts_as_disconnected() -> None:
    server = VersionServer()
    server.mode = "busy"
    config, api = make(server)

    async def main() -> None:
        conn = ConnectionService(config, api)
        await conn.start()
        assert conn.state == "disconnected"
        assert "503" in (conn.last_error or "")
        await conn.stop()

    run(main())


def test_report_failure_checks_now_instead_of_at_the_next_ping() -> None:
    server = VersionServer()
    config, api = make(server, ping_interval=3600)

    async def main() -> None:
        conn = ConnectionService(config, api)
        await conn.start()
        assert conn.is_connected()
        server.mode = "refused"
        conn.report_failure()
        await async_wait_until(lambda: conn.state == "disconnected", 15, message="disconnected")
        await conn.stop()

    run(main())


def test_concurrent_checks_share_one_request() -> None:
    server = VersionServer()
    config, api = make(server, ping_interval=3600)

    async def main() -> None:
        conn = ConnectionService(config, api)
        await conn.start()
        calls = server.calls
        server.delay = 0.2
        states = await asyncio.gather(*(conn.check() for _ in range(5)))
        assert states == ["connected"] * 5
        assert server.calls - calls <= 2  # one running plus at most one queued behind it
        await conn.stop()

    run(main())


def test_offline_without_service_address(tmp_path: Path) -> None:
    async def main() -> None:
        conn = ConnectionService(ClientConfig(instance_name="bench"))
        await conn.start()
        assert conn.state == "offline"
        assert not conn.is_connected()
        with pytest.raises(ServerUnavailableError, match="offline"):
            await conn.get_server_version()
        await conn.stop()

    run(main())


def test_verify_tls_false_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    server = VersionServer()
    config, api = make(server, verify_tls=False)

    async def main() -> None:
        conn = ConnectionService(config, api)
        with caplog.at_level(logging.WARNING, logger="pywats_client.connection"):
            await conn.start()
        assert any("NOT checked" in w for w in conn.warnings)
        await conn.stop()

    run(main())
    assert any("verify_tls is false" in r.getMessage() for r in caplog.records)


def test_plain_http_to_a_remote_server_warns() -> None:
    server = VersionServer()
    config, api = make(server, service_address="http://wats.example.com")
    conn = ConnectionService(config, api)
    assert any("unencrypted" in w for w in conn.warnings)
    local, api2 = make(server, service_address="http://127.0.0.1:8080")
    assert ConnectionService(local, api2).warnings == []


@pytest.mark.e2e
def test_seed_usage_against_the_stand_in(standin: Any) -> None:
    config = ClientConfig(
        instance_name="Production Station 1", service_address=standin.url, api_token=standin.token
    )

    async def main() -> None:
        conn = ConnectionService(config)  # the seed README's call
        await conn.start()
        assert conn.is_connected()
        version = await conn.get_server_version()
        assert version and version[0].isdigit()
        await conn.stop()

    run(main())
