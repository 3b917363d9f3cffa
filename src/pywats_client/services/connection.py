"""``ConnectionService``: is the WATS server reachable right now, and since when?

It asks the server for its version (``GET /api/App/Version``) every
``ping_interval`` seconds while connected, and with a growing backoff while
not. An upload that fails for a network reason calls :meth:`report_failure`
so the next check happens at once; the uploader waits on the state instead
of burning attempts while the server is away and is woken the moment a check
succeeds again. The reason for being disconnected is kept in words an IT
admin can act on (DNS, refused, TLS certificate, proxy, timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from pywats_client.core.config import ClientConfig
from pywats_client.core.connection_config import network_warnings
from pywats_client.core.snapshot import ConnectionState
from pywats_client.errors import PyWATSClientError, ServerUnavailableError, UnauthorizedError
from pywats_client.services.api_client import WATSApiClient

__all__ = ["ConnectionService", "ConnectionState"]

log = logging.getLogger("pywats_client.connection")


class ConnectionService:
    """Connection monitor of one instance (seed API: ``start``, ``is_connected``...).

    ``api_client`` is shared with the uploader when given (and then not closed
    here); otherwise one is built from ``config`` at start. The keyword
    arguments tune the reconnect backoff (tests shorten them).
    """

    def __init__(
        self,
        config: ClientConfig,
        api_client: WATSApiClient | None = None,
        *,
        retry_min: float = 1.0,
        retry_max: float = 30.0,
        unauthorized_interval: float = 60.0,
        min_check_gap: float = 0.2,
        first_check_timeout: float = 5.0,
    ) -> None:
        self._config = config
        self._api = api_client
        self._owns_api = api_client is None
        self._retry_min = retry_min
        self._retry_max = max(retry_min, retry_max)
        self._unauthorized_interval = unauthorized_interval
        self._min_check_gap = min_check_gap
        self._first_check_timeout = first_check_timeout
        self._state: ConnectionState = "unknown" if config.service_address else "offline"
        self._since = time.time()
        self._server_version: str | None = None
        self._last_error: str | None = None
        self._warnings = network_warnings(config)
        self._listeners: list[Callable[[ConnectionState], None]] = []
        self._check_now = asyncio.Event()
        self._connected = asyncio.Event()
        self._check_lock = asyncio.Lock()
        self._checks_done = 0
        self._last_check = -float("inf")
        self._task: asyncio.Task[None] | None = None

    # --- what callers read -------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def since(self) -> float:
        """Wall time (epoch seconds) of the last state change."""
        return self._since

    @property
    def server_version(self) -> str | None:
        return self._server_version

    @property
    def last_error(self) -> str | None:
        """Why the last check failed, in words for an IT admin (``None`` when connected)."""
        return self._last_error

    @property
    def warnings(self) -> list[str]:
        """Risky settings (e.g. ``verify_tls: false``), for log and status."""
        return list(self._warnings)

    def is_connected(self) -> bool:
        return self._state == "connected"

    def add_listener(self, callback: Callable[[ConnectionState], None]) -> None:
        """Call ``callback(state)`` in the event loop on every state change."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[ConnectionState], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    # --- lifecycle -------------------------------------------------------------------

    def _api_client(self) -> WATSApiClient:
        if self._api is None:
            self._api = WATSApiClient(self._config)
        return self._api

    async def start(self) -> None:
        """Start checking; returns after the first check (or ``first_check_timeout``)."""
        for warning in self._warnings:
            log.warning("%s", warning)
        if self._task is not None or not self._config.service_address:
            return
        self._api_client()
        self._task = asyncio.create_task(self._run(), name="pywats-connection")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._first_check(), self._first_check_timeout)

    async def _first_check(self) -> None:
        while self._checks_done == 0:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_api and self._api is not None:
            await self._api.aclose()
            self._api = None

    # --- checking --------------------------------------------------------------------

    def report_failure(self) -> None:
        """An upload failed in a way that may mean the server is gone: check now."""
        self._check_now.set()

    async def wait_connected(self) -> None:
        """Return as soon as the server is reachable (at once if it is)."""
        await self._connected.wait()

    async def get_server_version(self) -> str:
        """Ask the server for its version now (also updates the state)."""
        if not self._config.service_address:
            raise ServerUnavailableError(
                f"instance {self._config.instance_name!r} has no service_address (offline)"
            )
        await self.check()
        if self._state != "connected" or self._server_version is None:
            raise ServerUnavailableError(self._last_error or "the WATS server is not reachable")
        return self._server_version

    async def check(self) -> ConnectionState:
        """Check the connection now and return the state.

        Concurrent callers share one request: whoever waited while another
        check ran gets that check's result.
        """
        if not self._config.service_address:
            return self._state
        seen = self._checks_done
        async with self._check_lock:
            if self._checks_done == seen:
                await self._probe()
        return self._state

    async def _probe(self) -> None:
        self._last_check = time.monotonic()
        try:
            version = await self._api_client().get_version()
        except UnauthorizedError as exc:
            self._set_state("unauthorized", str(exc))
        except PyWATSClientError as exc:
            self._set_state("disconnected", str(exc))
        except Exception as exc:  # a bug must not stop the monitor
            log.exception("unexpected error while checking the connection")
            self._set_state("disconnected", f"unexpected {type(exc).__name__}: {exc}")
        else:
            self._server_version = version
            self._set_state("connected", None)
        finally:
            self._checks_done += 1

    def _set_state(self, state: ConnectionState, error: str | None) -> None:
        changed = state != self._state
        if changed or error != self._last_error:
            address = self._config.service_address
            if state == "connected":
                log.info("connected to WATS %s at %s", self._server_version, address)
            elif state == "unauthorized":
                log.error("WATS server %s refuses this instance: %s", address, error)
            else:
                log.warning("cannot reach WATS server %s: %s", address, error)
        self._last_error = error
        if not changed:
            return
        self._state = state
        self._since = time.time()
        if state == "connected":
            self._connected.set()
        else:
            self._connected.clear()
        for callback in list(self._listeners):
            try:
                callback(state)
            except Exception:
                log.exception("connection listener failed")

    def _next_delay(self, failures: int) -> float:
        if self._state == "connected":
            return self._config.ping_interval
        if self._state == "unauthorized":
            return self._unauthorized_interval
        ceiling = min(self._retry_max, self._retry_min * 2 ** max(0, failures - 1))
        return float(ceiling * random.uniform(0.8, 1.0))

    async def _run(self) -> None:
        failures = 0
        while True:
            self._check_now.clear()
            await self.check()
            failures = 0 if self._state == "connected" else failures + 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._check_now.wait(), self._next_delay(failures))
            gap = self._min_check_gap - (time.monotonic() - self._last_check)
            if gap > 0:
                await asyncio.sleep(gap)
