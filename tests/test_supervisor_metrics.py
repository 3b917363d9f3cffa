"""The Prometheus collector renders the status document; the endpoint serves it."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pywats_client.supervisor import _metrics
from pywats_client.supervisor._metrics import MetricsServer, StatusCollector


def document() -> dict[str, Any]:
    return {
        "instances": [
            {
                "name": "st-1",
                "state": "running",
                "restarts": 3,
                "heartbeat_age_s": 0.4,
                "rss": 50_000_000,
                "cpu": 0.5,
                "snapshot": {
                    "converted": 12,
                    "errored": 1,
                    "uploaded": 11,
                    "rejected": 0,
                    "files_seen": 13,
                    "pending": 4,
                    "failed": 2,
                    "quarantined": 1,
                    "in_error": 3,
                    "in_flight": 1,
                    "connection": "connected",
                },
            },
            {"name": "st-2", "state": "crash-looping", "restarts": 9, "snapshot": None},
        ]
    }


def render(doc: dict[str, Any] | None) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(lambda: doc))
    return generate_latest(registry).decode()


def test_metrics_per_instance() -> None:
    text = render(document())
    expected = [
        'pywats_instance_up{instance="st-1"} 1.0',
        'pywats_instance_up{instance="st-2"} 0.0',
        'pywats_instance_state{instance="st-2",state="crash-looping"} 1.0',
        'pywats_instance_state{instance="st-2",state="running"} 0.0',
        'pywats_instance_restarts_total{instance="st-2"} 9.0',
        'pywats_instance_heartbeat_age_seconds{instance="st-1"} 0.4',
        'pywats_instance_converted_total{instance="st-1"} 12.0',
        'pywats_instance_errored_total{instance="st-1"} 1.0',
        'pywats_instance_uploaded_total{instance="st-1"} 11.0',
        'pywats_instance_queue_pending{instance="st-1"} 4.0',
        'pywats_instance_queue_failed{instance="st-1"} 2.0',
        'pywats_instance_queue_quarantined{instance="st-1"} 1.0',
        'pywats_instance_parked_files{instance="st-1"} 3.0',
        'pywats_instance_connected{instance="st-1"} 1.0',
        'pywats_instance_rss_bytes{instance="st-1"} 5e+07',
    ]
    for line in expected:
        assert line in text, line
    assert 'pywats_instance_queue_pending{instance="st-2"}' not in text  # no snapshot: no guess


def test_no_document_yet_gives_empty_families() -> None:
    text = render(None)
    assert "# TYPE pywats_instance_up gauge" in text
    assert "instance=" not in text


def test_server_serves_the_document_and_refuses_a_taken_port() -> None:
    server = MetricsServer("127.0.0.1", 0, StatusCollector(document))
    try:
        text = httpx.get(server.url, timeout=10).text
        assert 'pywats_instance_restarts_total{instance="st-2"} 9.0' in text
        port = httpx.URL(server.url).port
        assert port is not None
        with pytest.raises(OSError):
            MetricsServer("127.0.0.1", port, StatusCollector(document))
    finally:
        server.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url, timeout=2)


def test_port_is_exclusive_where_reuse_would_share_it() -> None:
    """Windows' SO_REUSEADDR would let a second supervisor bind the same port."""
    assert _metrics._ScrapeServer.allow_reuse_address is (sys.platform != "win32")
