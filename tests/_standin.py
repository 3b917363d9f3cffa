"""Test-side handles on a running WATS stand-in server (see the fixtures in conftest.py).

:class:`StandinClient` talks to a stand-in over HTTP: what the server stored,
its counters, and the faults it injects. :class:`PrivateStandin` adds a server
process of the test's own that it may stop, kill and restart.

Typical use::

    def test_upload(standin):                      # shared server, reset for this test
        config = ClientConfig(service_address=standin.url, api_token=standin.token, ...)
        ...
        standin.set_faults(status=503, count=2)    # the next 2 /api requests get 503
        reports = standin.wait_for_reports(3)      # poll until 3 distinct reports stored
        assert [r["times_received"] for r in reports] == [1, 1, 1]

    def test_server_restart(standin_factory):
        server = standin_factory()                 # private server, started
        server.kill()                              # as a crash would
        server.start()                             # same port, same data folder
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from pywats_client.standin import StandinProcess
from tests.helpers import wait_until

__all__ = ["PrivateStandin", "StandinClient", "StandinError"]


class StandinError(AssertionError):
    """The stand-in refused a control request (e.g. a malformed fault)."""


class StandinClient:
    """A stand-in server seen from a test.

    ``url`` and ``token`` are what a client config needs (``service_address``,
    ``api_token``). Faults (``set_faults``) apply to ``/api/`` endpoints only,
    so these helpers keep working while the "server" is down.
    """

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        # trust_env=False: a proxy from the environment must not see loopback test traffic.
        self._http = httpx.Client(timeout=30.0, trust_env=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, token=***)"

    @property
    def headers(self) -> dict[str, str]:
        """The auth header a WATS client sends to this server."""
        return {"Authorization": f"Basic {self.token}"}

    def close(self) -> None:
        self._http.close()

    # --- looking at the server ---------------------------------------------------------

    def reports(self) -> list[dict[str, Any]]:
        """Every stored report: ``{id, type, pn, sn, result, times_received}``, oldest first."""
        result: list[dict[str, Any]] = self._get("/standin/reports")
        return result

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset: requests, accepted, rejected, unauthorized,
        faults_injected, delayed, distinct_reports, total_received, commits, faults."""
        result: dict[str, Any] = self._get("/standin/stats")
        return result

    def report(self, report_id: str) -> dict[str, Any] | None:
        """The stored WSJF report (as the client sent it), or ``None`` (404).

        Goes through ``/api/``, so an active fault applies to it.
        """
        response = self._http.get(f"{self.url}/api/Report/Wsjf/{report_id}", headers=self.headers)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def wait_for_reports(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until at least ``count`` distinct reports are stored; returns them all.

        Polls the cheap counter, not the list: fetching thousands of reports ten
        times a second would load the server (and the 2-core machine) it waits on.
        """
        have = 0

        def enough() -> bool:
            nonlocal have
            have = int(self.stats()["distinct_reports"])
            return have >= count

        wait_until(enough, timeout, 0.1, lambda: f"{count} reports on the stand-in, have {have}")
        return self.reports()

    def is_up(self) -> bool:
        try:
            return self._http.get(f"{self.url}/standin/stats", headers=self.headers).is_success
        except httpx.HTTPError:
            return False

    # --- steering it ----------------------------------------------------------------------

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the faults in force, e.g. ``set_faults(status=503, rate=0.3)``.

        Keys: ``status`` (400-599), ``rate`` (0..1, default 1), ``retry_after`` (s,
        needs status), ``down`` (close connections unanswered), ``latency_ms``,
        ``count`` (clear after this many requests were hit), ``paths`` (prefixes under
        /api/, default ``["/api/"]``), ``message``, ``seed``.
        Raises :class:`StandinError` with the server's reason for a bad fault.
        """
        result: dict[str, Any] = self._post("/standin/faults", faults)
        return result

    def clear_faults(self) -> None:
        self._post("/standin/faults", {})

    def reset(self) -> None:
        """Forget stored reports, counters and faults."""
        self._post("/standin/reset", None)

    #: ``docs/internals.md`` calls it ``clear()``.
    clear = reset

    def submit(
        self, report: dict[str, Any] | str | bytes, token: str | None = None
    ) -> httpx.Response:
        """POST one WSJF report as a client would (``token`` overrides the right one)."""
        body = report if isinstance(report, (str, bytes)) else json.dumps(report)
        headers = {"Authorization": f"Basic {self.token if token is None else token}"}
        headers["Content-Type"] = "application/json"
        return self._http.post(f"{self.url}/api/Report/WSJF", content=body, headers=headers)

    # --- plumbing ------------------------------------------------------------------------

    def _get(self, path: str) -> Any:
        response = self._http.get(f"{self.url}{path}", headers=self.headers)
        self._check(response)
        return response.json()

    def _post(self, path: str, data: Any) -> Any:
        content = b"" if data is None else json.dumps(data).encode()
        response = self._http.post(f"{self.url}{path}", content=content, headers=self.headers)
        self._check(response)
        return response.json()

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if not response.is_success:
            try:
                reason = response.json().get("Message", response.text)
            except ValueError:
                reason = response.text
            raise StandinError(
                f"stand-in answered {response.status_code} to "
                f"{response.request.method} {response.request.url.path}: {reason}"
            )


class PrivateStandin(StandinClient):
    """A stand-in process of one test's own: ``start()``, ``stop()``, ``kill()``, ``restart()``.

    After the first start it keeps its port, so clients configured with
    :attr:`url` reach it again after a restart. Reports live in ``data_dir``
    and survive restarts and kills.
    """

    def __init__(self, data_dir: Path, token: str) -> None:
        super().__init__("http://127.0.0.1:0", token)
        self.data_dir = data_dir
        self._port = 0
        self.process: StandinProcess | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "standin.log"

    def start(self, timeout: float = 60.0) -> PrivateStandin:
        if self.process is not None and self.process.is_running():
            raise RuntimeError("this private stand-in is already running")
        self.process = StandinProcess(self.data_dir, self.token, port=self._port)
        self.process.start(timeout)
        self._port = self.process.port
        self.url = self.process.url
        return self

    def stop(self) -> int | None:
        """Graceful stop (SIGTERM / Ctrl+Break); returns the exit code."""
        return None if self.process is None else self.process.stop()

    def kill(self) -> None:
        """Kill at once (no clean shutdown), as a crash or power cut would."""
        if self.process is not None:
            self.process.kill()

    def restart(self) -> PrivateStandin:
        self.stop()
        return self.start()
