"""Optional Prometheus endpoint of the supervisor (``[supervisor] metrics_port``).

Off unless configured, bound to 127.0.0.1 unless ``metrics_host`` says
otherwise. A custom collector renders the supervisor's latest status document
at scrape time, so nothing is double-bookkept and a scrape never blocks the
supervisor loop.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from pywats_client.supervisor._states import State

__all__ = ["MetricsServer", "StatusCollector"]

log = logging.getLogger("pywats_client.supervisor")

_SNAPSHOT_COUNTERS = (
    ("files_seen", "Source files seen since the worker started."),
    ("converted", "Source files converted since the worker started."),
    ("errored", "Source files moved to the error folder since the worker started."),
    ("uploaded", "Reports accepted by the server since the worker started."),
    ("rejected", "Reports rejected by the server (400) since the worker started."),
)
_SNAPSHOT_GAUGES = (
    ("pending", "queue_pending", "Reports waiting in the durable queue."),
    ("failed", "queue_failed", "Reports parked in the failed folder."),
    ("quarantined", "queue_quarantined", "Queue files that cannot be read (never sent)."),
    ("in_error", "parked_files", "Source files in the Error folders, not converted (not sent)."),
    ("in_flight", "uploads_in_flight", "Uploads in progress."),
)


class StatusCollector:
    """Prometheus collector over ``get_document()`` (the last status document)."""

    def __init__(self, get_document: Callable[[], dict[str, Any] | None]) -> None:
        self._get = get_document

    def describe(self) -> list[Any]:
        return []  # metrics are dynamic; no registration-time description

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        document = self._get() or {}
        instances = [i for i in document.get("instances", []) if isinstance(i, dict)]
        labels = ["instance"]

        def gauge(name: str, text: str, extra: tuple[str, ...] = ()) -> Any:
            return GaugeMetricFamily(f"pywats_instance_{name}", text, labels=[*labels, *extra])

        up = gauge("up", "1 if the worker is running.")
        state = gauge("state", "1 for the instance's current state.", ("state",))
        restarts = CounterMetricFamily(
            "pywats_instance_restarts",
            "Worker restarts since the supervisor started.",
            labels=labels,
        )
        hb_age = gauge("heartbeat_age_seconds", "Seconds since the last heartbeat.")
        rss = gauge("rss_bytes", "Worker resident memory.")
        cpu = gauge("cpu_percent", "Worker CPU use.")
        connected = gauge("connected", "1 if the WATS server is reachable.")
        counters = {
            key: CounterMetricFamily(f"pywats_instance_{key}", text, labels=labels)
            for key, text in _SNAPSHOT_COUNTERS
        }
        gauges = {key: gauge(metric, text) for key, metric, text in _SNAPSHOT_GAUGES}
        for record in instances:
            name = str(record.get("name"))
            current = str(record.get("state"))
            up.add_metric([name], 1.0 if current in (State.RUNNING, State.PAUSED) else 0.0)
            for s in State:
                state.add_metric([name, s.value], 1.0 if s.value == current else 0.0)
            restarts.add_metric([name], float(record.get("restarts") or 0))
            _maybe(hb_age, name, record.get("heartbeat_age_s"))
            _maybe(rss, name, record.get("rss"))
            _maybe(cpu, name, record.get("cpu"))
            snapshot = record.get("snapshot")
            if isinstance(snapshot, dict) and snapshot:
                connected.add_metric(
                    [name], 1.0 if snapshot.get("connection") == "connected" else 0
                )
                for key, family in counters.items():
                    _maybe(family, name, snapshot.get(key))
                for key, family in gauges.items():
                    _maybe(family, name, snapshot.get(key))
        yield from (up, state, restarts, hb_age, rss, cpu, connected)
        yield from counters.values()
        yield from gauges.values()


def _maybe(family: Any, name: str, value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        family.add_metric([name], float(value))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the supervisor's stderr."""


class _ScrapeServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    #: On Windows SO_REUSEADDR lets a second process bind a port that is already
    #: listening, so two supervisors with one metrics_port would both "start".
    allow_reuse_address = sys.platform != "win32"

    def __init__(self, host: str, port: int) -> None:
        self.address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        super().__init__((host, port), _QuietHandler)


class MetricsServer:
    """The HTTP endpoint; ``url`` tells where it listens (port 0 picks a free one).

    Raises OSError when the port is taken (by anyone, on every OS).
    """

    def __init__(self, host: str, port: int, collector: StatusCollector) -> None:
        from prometheus_client import CollectorRegistry, make_wsgi_app

        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        self._server = _ScrapeServer(host, port)
        self._server.set_app(make_wsgi_app(registry))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()
        bound_port = self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound_port}/metrics"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._server.shutdown()
            self._server.server_close()
        self._thread.join(timeout=2.0)
